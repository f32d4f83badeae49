"""The process watcher with real processes: renamed copies of harmless binaries.

A copy of /bin/sleep named like a listed app (``obs``, ``anydesk``) is started detached
from the test process (double fork, as if the candidate started it from the desktop):
it is detected, journalled and — with the close policy — terminated; an unlisted name
is left alone; a child of our own process is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from lockdown.events import Event
from lockdown.guards import processes
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_DETECTED,
    ProcessWatcherGuard,
    choose_exec_source,
    scan_running,
)

# Double fork: the grandchild waits until it is orphaned, prints its pid and the
# monotonic time, then execs the program, so it is not part of our process tree.
LAUNCHER = r"""
import os, signal, sys, time
if sys.argv[1] == "--ignore-sigterm":  # inherited across exec: no race with the watcher
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    del sys.argv[1]
r, w = os.pipe()
child = os.fork()
if child == 0:
    os.setsid()
    middle = os.getpid()
    if os.fork() == 0:
        os.close(r)
        while os.getppid() == middle:
            time.sleep(0.0005)
        os.write(w, f"{os.getpid()} {time.monotonic()}\n".encode())
        os.close(w)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.execv(sys.argv[1], sys.argv[1:])
    os._exit(0)
os.close(w)
os.waitpid(child, 0)
sys.stdout.write(os.read(r, 100).decode())
"""


def launch_detached(program: Path, *args: str, ignore_sigterm: bool = False) -> tuple[int, float]:
    """Start ``program`` outside our process tree; its pid and the time just before exec."""
    flag = ["--ignore-sigterm"] if ignore_sigterm else []
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *flag, str(program), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout.split()
    return int(out[0]), float(out[1])


def renamed_copy(tmp: Path, name: str, binary: str = "/bin/sleep") -> Path:
    folder = tmp / name
    folder.mkdir()
    target = folder / name
    shutil.copy2(binary, target)
    return target


class Recorder:
    """An EventSink that keeps events and the time each arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append((time.monotonic(), event))

    def of(self, kind: str, pid: int | None = None) -> list[Event]:
        with self._lock:
            return [
                e
                for _, e in self.events
                if e.type == kind and (pid is None or e.payload.get("pid") == pid)
            ]

    def wait_for(self, kind: str, pid: int, timeout: float = 5.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.of(kind, pid):
                return found[0]
            time.sleep(0.01)
        pytest.fail(f"no {kind} event for pid {pid} within {timeout} s: {self.events}")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def cleanup() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            psutil.Process(pid).kill()
        except psutil.Error:
            pass


TEST_APPS = AppList.load(os_name="linux").restricted_to(["obs", "simplescreenrecorder", "anydesk"])


def _guard(terminate: bool, netlink: bool = True, grace: float = 2.0) -> ProcessWatcherGuard:
    factory: Callable[[], processes.ExecSource] = lambda: choose_exec_source(  # noqa: E731
        allow_netlink=netlink
    )
    return ProcessWatcherGuard(TEST_APPS, terminate=terminate, grace=grace, source_factory=factory)


@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "polling"])
def test_a_started_prohibited_app_is_journalled_and_terminated(
    tmp_path: Path, cleanup: list[int], netlink: bool
) -> None:
    obs = renamed_copy(tmp_path, "obs")
    notes = renamed_copy(tmp_path, "notes")
    journal = Recorder()
    guard = _guard(terminate=True, netlink=netlink)
    guard.start(journal)
    try:
        expected = "netlink-proc-connector" if netlink else "poll-proc"
        assert journal.of("guards.process_watcher")[0].payload["backend"] == expected
        harmless, _ = launch_detached(notes, "30")
        cleanup.append(harmless)
        pid, _ = launch_detached(obs, "30")
        cleanup.append(pid)
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert detected.payload["app"] == "obs"
        assert detected.payload["action"] == "terminate"
        assert detected.payload["exe"] == str(obs)
        closed = journal.wait_for(EVENT_CLOSED, pid)
        assert closed.payload["how"] == "terminated"
        assert not _alive(pid)
        assert _alive(harmless), "an unlisted app was touched"
        assert not journal.of(EVENT_DETECTED, harmless)
    finally:
        guard.stop()


def test_ask_policy_journals_but_leaves_the_app_running(tmp_path: Path, cleanup: list[int]) -> None:
    ssr = renamed_copy(tmp_path, "simplescreenrecorder")  # longer than the 15-char comm
    journal = Recorder()
    guard = _guard(terminate=False)
    guard.start(journal)
    try:
        pid, _ = launch_detached(ssr, "30")
        cleanup.append(pid)
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert detected.payload["app"] == "simplescreenrecorder"
        assert detected.payload["matched_on"] == "exe"
        assert detected.payload["action"] == "journal"
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        assert comm == "simplescreenrec"  # the kernel's name is truncated; the exe matched
    finally:
        guard.stop()
    assert _alive(pid)


def test_an_app_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, cleanup: list[int]
) -> None:
    stubborn = renamed_copy(tmp_path, "anydesk")
    journal = Recorder()
    guard = _guard(terminate=True, grace=0.3)
    guard.start(journal)
    try:
        pid, _ = launch_detached(stubborn, "30", ignore_sigterm=True)
        cleanup.append(pid)
        closed = journal.wait_for(EVENT_CLOSED, pid)
        assert closed.payload["how"] == "killed"
        assert "0.3 s" in closed.payload["reason"]
        assert not _alive(pid)
    finally:
        guard.stop()


def test_our_own_child_processes_are_never_touched(tmp_path: Path, cleanup: list[int]) -> None:
    obs = renamed_copy(tmp_path, "obs")
    ours = subprocess.Popen([str(obs), "30"])
    cleanup.append(ours.pid)
    try:
        assert scan_running(TEST_APPS.matcher()) == [] or all(
            m.process.pid != ours.pid for m in scan_running(TEST_APPS.matcher())
        )
        journal = Recorder()
        guard = _guard(terminate=True)
        guard.start(journal)
        try:
            outside, _ = launch_detached(obs, "30")
            cleanup.append(outside)
            journal.wait_for(EVENT_CLOSED, outside)  # the watcher is working …
            assert ours.poll() is None  # … and our own child was left alone
            assert not journal.of(EVENT_DETECTED, ours.pid)
        finally:
            guard.stop()
    finally:
        ours.kill()
        ours.wait()


def test_a_flood_is_rate_limited_without_losing_the_count(
    tmp_path: Path, cleanup: list[int]
) -> None:
    obs = renamed_copy(tmp_path, "obs")
    journal = Recorder()
    guard = _guard(terminate=True, grace=1.0)
    guard.start(journal)
    launched = 8
    pids = []
    try:
        for _ in range(launched):
            pid, _ = launch_detached(obs, "30")
            cleanup.append(pid)
            pids.append(pid)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(_alive(p) for p in pids), "every copy is terminated, journalled or not"
    finally:
        guard.stop()
    detected = journal.of(EVENT_DETECTED)
    assert len(detected) < launched, "the flood reached the journal unthrottled"
    # each record stands for one start, a summary for the "suppressed" starts it replaces
    represented = sum(int(e.payload.get("suppressed", 1)) for e in detected)
    assert represented == launched, detected


def test_scan_running_lists_a_prohibited_app_started_before(
    tmp_path: Path, cleanup: list[int]
) -> None:
    anydesk = renamed_copy(tmp_path, "anydesk")
    pid, _ = launch_detached(anydesk, "30")
    cleanup.append(pid)
    found = [m for m in scan_running(TEST_APPS.matcher()) if m.process.pid == pid]
    assert [m.app.id for m in found] == ["anydesk"]
    assert os.getpid() not in {m.process.pid for m in scan_running(TEST_APPS.matcher())}
