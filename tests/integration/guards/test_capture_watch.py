"""Screen capture seen at the X server: renamed ``xwd -root`` and ``ffmpeg -f x11grab``
and an ``mss`` script, started outside our process tree, each journalled with its pid
(X RECORD + X Resource) and handed to the prohibited-app policy."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from lockdown.config.settings import Organisation, Settings, layer
from lockdown.guards.capture_watch import ScreenCaptureWatchGuard
from lockdown.guards.processes import EVENT_CLOSED, EVENT_DETECTED, ProcessWatcherGuard
from lockdown.platform.linux import X11Platform
from tests.support.processes import (
    TEST_APPS,
    TEST_SCOPE,
    Detached,
    Recorder,
    alive,
    launch_detached,
    renamed_copy,
)
from tests.support.xserver import Xvfb

pytestmark = pytest.mark.x11

MSS_SCRIPT = "import mss\nwith mss.MSS() as s:\n    s.grab(s.monitors[0])\n"
#: Generous under a loaded machine: the measured figures are in docs/x11-detection.md.
DETECTION_LIMIT_S = 5.0


def _tools(tmp_path: Path, xserver: Xvfb, out: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Each capture tool under a name no list knows, with its arguments."""
    xwd = shutil.which("xwd")
    ffmpeg = shutil.which("ffmpeg")
    if xwd is None or ffmpeg is None:
        pytest.fail("xwd and ffmpeg are needed (x11-apps, ffmpeg: scripts/bootstrap.sh)")
    return {
        "xwd": (renamed_copy(tmp_path, "notes-a", xwd), ("-root", "-silent", "-out", str(out))),
        "ffmpeg": (
            renamed_copy(tmp_path, "notes-b", ffmpeg),
            (
                "-loglevel",
                "error",
                "-y",
                "-f",
                "x11grab",
                "-i",
                xserver.display,
                "-frames:v",
                "1",
                "-update",
                "1",
                str(out.with_suffix(".png")),
            ),
        ),
        "mss": (Path(sys.executable), ("-c", MSS_SCRIPT)),
    }


def _wait(guard: ScreenCaptureWatchGuard, pid: int, timeout: float) -> tuple[float, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for at, payload in list(guard.detected):
            if payload.get("pid") == pid:
                return at, payload
        time.sleep(0.005)
    raise AssertionError(f"pid {pid} not journalled within {timeout} s: {guard.detected}")


def test_xwd_ffmpeg_and_mss_are_journalled_with_their_pid(
    tmp_path: Path, xserver: Xvfb, platform: X11Platform, detached: Detached
) -> None:
    journal = Recorder()
    handed: list[tuple[int, str]] = []
    guard = ScreenCaptureWatchGuard(
        Settings.defaults(), platform, lambda pid, req: handed.append((pid, req))
    )
    guard.start(journal)
    latencies: dict[str, float] = {}
    try:
        for name, (program, args) in _tools(tmp_path, xserver, tmp_path / "shot.xwd").items():
            pid, before_exec = launch_detached(program, *args)
            detached.pids.append(pid)
            at, payload = _wait(guard, pid, DETECTION_LIMIT_S)
            latencies[name] = round((at - before_exec) * 1000, 1)
            assert payload["drawable"] == "root", payload
            assert payload["request"] in ("GetImage", "ShmGetImage"), payload
            assert payload["executable"] == str(program.resolve()), payload
            assert (pid, payload["request"]) in handed
    finally:
        guard.stop()
    print(f"\ndetection after exec (ms): {latencies}")
    captures = journal.of("guards.screen_capture")
    assert {e.payload["pid"] for e in captures} >= set(detached.pids)
    summary = journal.of("guards.screen_capture_summary")
    assert summary and summary[0].payload["clients"]


def test_without_the_watch_the_same_capture_succeeds_unseen(
    tmp_path: Path, xserver: Xvfb, platform: X11Platform, detached: Detached
) -> None:
    # the positive control: screenshots allowed, no watch; the capture tool gets its image
    settings = layer(Organisation(values={"guards.screenshots": False}), {})
    journal = Recorder()
    guard = ScreenCaptureWatchGuard(settings, platform)
    guard.start(journal)
    out = tmp_path / "shot.xwd"
    program, args = _tools(tmp_path, xserver, out)["xwd"]
    detached.start(program, *args)
    deadline = time.monotonic() + 10
    while not (out.exists() and out.stat().st_size > 1_000_000) and time.monotonic() < deadline:
        time.sleep(0.05)
    guard.stop()
    assert out.stat().st_size > 1_000_000  # the whole screen
    assert journal.events == []


def test_our_own_screen_reads_are_not_journalled(platform: X11Platform) -> None:
    import mss

    journal = Recorder()
    guard = ScreenCaptureWatchGuard(Settings.defaults(), platform)
    guard.start(journal)
    try:
        with mss.MSS() as screen:
            screen.grab(screen.monitors[0])
        time.sleep(0.3)
    finally:
        guard.stop()
    assert journal.of("guards.screen_capture") == []


def test_a_renamed_recorder_is_closed_by_the_prohibited_app_policy(
    tmp_path: Path, xserver: Xvfb, platform: X11Platform, detached: Detached
) -> None:
    # ffmpeg under another name escapes the name and argument matching; the X server
    # still sees it read the screen
    watcher = ProcessWatcherGuard(TEST_APPS, terminate=True, grace=1.0, scope=TEST_SCOPE)
    journal = Recorder()
    watcher.start(journal)
    guard = ScreenCaptureWatchGuard(Settings.defaults(), platform, watcher.capture_seen)
    guard.start(journal)
    try:
        ffmpeg = renamed_copy(tmp_path, "notes-c", shutil.which("ffmpeg") or "ffmpeg")
        pid = detached.start(
            ffmpeg,
            *("-loglevel", "error", "-f", "x11grab", "-framerate", "5", "-i", xserver.display),
            *("-f", "null", "-"),
        )
        detected = journal.wait_for(EVENT_DETECTED, pid, timeout=DETECTION_LIMIT_S)
        assert detected.payload["app"] == "x11-screen-capture"
        assert detected.payload["matched_on"] == "x11_request"
        assert detected.payload["action"] == "terminate"
        closed = journal.wait_for(EVENT_CLOSED, pid, timeout=10)
        assert closed.payload["how"] in ("terminated", "killed")
    finally:
        guard.stop()
        watcher.stop()
    assert not alive(pid)
