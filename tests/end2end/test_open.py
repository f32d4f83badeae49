"""The real `lockdown open` process: an exam ends through its quit URL, a second instance is
refused, bad targets exit 2 with one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lockdown.events import read_records, verify
from tests.support.httpserver import LocalServer
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


_started: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _reap() -> Any:
    """Kill what a failed test left running and close every pipe (no ResourceWarning)."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def lockdown(tmp_path: Path, x: Xvfb | None, *argv: str, instance: str) -> subprocess.Popen[str]:
    org = tmp_path / "organisation.toml"
    org.write_text("[settings]\nconfig.allow_unsigned = true\n", encoding="utf-8")
    env = {**os.environ, "LOCKDOWN_INSTANCE_NAME": instance}
    if x is not None:
        env.update(x.env)
    env["QT_QPA_PLATFORM"] = "xcb"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lockdown.cli",
            "--temp-basedir",
            "--json-logging",
            "--organisation",
            str(org),
            *argv,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _started.append(proc)
    return proc


def config(tmp_path: Path, start: str, quit_url: str = "") -> Path:
    path = tmp_path / "exam.toml"
    path.write_text(
        f'format = 1\n[exam]\ntitle = "E2E"\n[browser]\nstart_url = "{start}"\n'
        f'[quit]\nurl = "{quit_url}"\n',
        encoding="utf-8",
    )
    return path


def wait_for_line(
    proc: subprocess.Popen[str], needle: str, timeout: float = 30
) -> list[dict[str, Any]]:
    assert proc.stderr is not None
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        if line.startswith("{"):
            seen.append(json.loads(line))
            if needle in seen[-1]["message"]:
                return seen
    raise AssertionError(f"no log line with {needle!r}; saw {[s['message'] for s in seen]}")


def journal_of(lines: list[dict[str, Any]]) -> Path:
    message = next(m["message"] for m in lines if m["message"].startswith("Journal at "))
    return Path(message.removeprefix("Journal at "))


def test_exam_ends_through_its_quit_url_and_the_session_is_reverted(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer
) -> None:
    http_server.page(
        "/", "<p>exam</p><script>setTimeout(() => location.href = '/done', 800)</script>"
    )
    cfg = config(tmp_path, http_server.url("/"), http_server.url("/done"))
    proc = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=f"e2e-{uuid.uuid4().hex}")
    lines = wait_for_line(proc, "Page loaded")
    lines += wait_for_line(proc, "Session finished")
    assert proc.wait(30) == 0
    path = journal_of(lines)
    assert verify(path).records >= 4
    types = [r["type"] for r in read_records(path)]
    assert types[0] == "session.started"
    assert types[-3:] == ["kiosk.ended", "kiosk.closed", "session.ended"]
    assert read_records(path)[-1]["payload"]["reason"] == "quit_url"


def test_second_instance_is_refused_and_the_first_keeps_running(
    tmp_path: Path, fresh_xserver: Xvfb, http_server: LocalServer
) -> None:
    http_server.page("/", "<p>exam</p>")
    cfg = config(tmp_path, http_server.url("/"))
    instance = f"e2e-{uuid.uuid4().hex}"
    first = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=instance)
    try:
        lines = wait_for_line(first, "Page loaded")
        second = lockdown(tmp_path, fresh_xserver, "open", str(cfg), instance=instance)
        _, err = second.communicate(timeout=30)
        assert second.returncode == 2
        last = err.strip().splitlines()[-1]
        assert last.startswith("lockdown: ") and "one session can run at a time" in last
        lines += wait_for_line(first, "asked to open")
        assert first.poll() is None
        first.send_signal(signal.SIGTERM)
        lines += wait_for_line(first, "Session finished")
        assert first.wait(30) == 0
    finally:
        if first.poll() is None:
            first.kill()
    types = [r["type"] for r in read_records(journal_of(lines))]
    assert "kiosk.second_instance_refused" in types


@pytest.mark.parametrize(
    ("path", "response", "expected"),
    [
        ("/missing.toml", None, "answered 404"),
        ("/page.html", b"<html><body>Welcome</body></html>", "not valid TOML"),
    ],
)
def test_bad_lockdown_links_exit_2_with_one_line(
    tmp_path: Path, http_server: LocalServer, path: str, response: bytes | None, expected: str
) -> None:
    if response is not None:
        http_server.page(path, response.decode())
    link = http_server.url(path).replace("http://", "lockdown://")
    proc = lockdown(tmp_path, None, "open", link, instance=f"e2e-{uuid.uuid4().hex}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    errors = [line for line in err.splitlines() if line.startswith("lockdown: ")]
    assert len(errors) == 1 and expected in errors[0]
    assert "Traceback" not in err


def test_corrupt_seb_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "exam.seb"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage-not-really-gzip")
    proc = lockdown(tmp_path, None, "open", str(bad), instance=f"e2e-{uuid.uuid4().hex}")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("lockdown: ")]) == 1
