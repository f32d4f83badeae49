"""The privileged display helper invoked directly (as root, which CI is), with a real Xorg on
the dummy video driver and the fake virtual terminals (the machine's console is never
switched). polkit and pkexec do not exist here: that path is unit-tested through fakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockdown.platform import exam_server
from lockdown.platform.exam_server import RESTORE_DIR

pytestmark = [
    pytest.mark.x11,
    pytest.mark.skipif(os.geteuid() != 0, reason="the display helper runs Xorg as root"),
    pytest.mark.skipif(
        exam_server.find_xorg() is None,
        reason="Xorg is not installed: run make test (bootstrap installs xserver-xorg-core)",
    ),
]

HELPER = [sys.executable, "-m", "lockdown.platform.display_helper"]
ENV = {**os.environ, "LOCKDOWN_DEV_FAKE_VT": "1"}

#: A caller that runs the helper, passes its first line on and waits to be killed.
CALLER = """
import subprocess, sys, time
helper = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(helper.pid, flush=True)
print(helper.stdout.readline().decode().strip(), flush=True)
time.sleep(120)
"""

#: Connects with the cookie given as hex in argv[1]; prints "ok" or the error.
CONNECT = """
import os, sys
from lockdown.platform import exam_server
display = sys.argv[1]
if len(sys.argv) > 2:
    cookie = bytes.fromhex(sys.argv[2])
    fd = exam_server.memory_file("t", exam_server.authority(cookie, int(display[1:])), inheritable=False)
    os.environ["XAUTHORITY"] = f"/proc/self/fd/{fd}"
else:
    os.environ["XAUTHORITY"] = "/dev/null"
from Xlib import display as xd, error
try:
    d = xd.Display(display)
    print("ok", d.screen().width_in_pixels, d.screen().height_in_pixels)
except Exception as exc:
    print("refused", type(exc).__name__)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 15) -> float:
    started = time.monotonic()
    while _alive(pid):
        assert time.monotonic() - started < timeout, f"process {pid} still running"
        time.sleep(0.02)
    return time.monotonic() - started


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _connect(display: str, cookie: str | None = None) -> str:
    argv = [sys.executable, "-c", CONNECT, display, *([cookie] if cookie else [])]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def helpers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Helpers a test starts; stopped (and their servers with them) afterwards."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None and proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None and not stream.closed:
                stream.close()


def _start(
    helpers: list[subprocess.Popen[bytes]],
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    proc = subprocess.Popen(HELPER, env=ENV, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    helpers.append(proc)
    assert proc.stdout is not None
    ready = json.loads(proc.stdout.readline())
    assert ready["event"] == "ready", ready
    return proc, ready


def _events(proc: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    assert proc.stdout is not None
    return [json.loads(line) for line in proc.stdout.read().splitlines()]


def test_the_server_is_ours_alone_and_stops_when_the_caller_is_killed(
    record_property: Any,
) -> None:
    caller = subprocess.Popen(
        [sys.executable, "-c", CALLER, *HELPER], env=ENV, stdout=subprocess.PIPE, text=True
    )
    try:
        assert caller.stdout is not None
        helper_pid = int(caller.stdout.readline())
        ready = json.loads(caller.stdout.readline())
        assert ready["event"] == "ready", ready
        server = ready["server_pid"]
        assert ready["vt_kind"] == "fake" and ready["vt"] != ready["previous_vt"]
        argv = _argv(server)
        # the fixed command: no caller-chosen paths, no TCP, no VT switching
        assert argv[argv.index("-nolisten") + 1] == "tcp"
        assert "-novtswitch" in argv and "-noreset" in argv
        assert argv[argv.index("-auth") + 1].startswith("/proc/self/fd/")
        assert argv[argv.index("-config") + 1].startswith("/run/lockdown/exam-display-")
        assert "DontVTSwitch" in Path(argv[argv.index("-config") + 1]).read_text()
        assert (RESTORE_DIR / f"{helper_pid}.json").exists()
        # only the cookie opens it (the control: the same client with the cookie gets in)
        assert _connect(ready["display"]).startswith("refused")
        assert _connect(ready["display"], ready["cookie"]) == "ok 1280 800"
        caller.kill()  # kill -9 of the caller: the helper reads the end of its pipe
        took = _wait_gone(server)
        record_property("caller_killed_to_server_gone_s", round(took, 3))
        _wait_gone(helper_pid)
        assert not (RESTORE_DIR / f"{helper_pid}.json").exists()
        assert not Path(argv[argv.index("-config") + 1]).exists()
    finally:
        caller.kill()
        caller.communicate(timeout=10)


def test_a_helper_that_died_leaves_its_server_to_the_next_helper(
    helpers: list[subprocess.Popen[bytes]],
) -> None:
    first, ready = _start(helpers)
    server = ready["server_pid"]
    first.kill()  # the helper itself dies: nothing stops its server…
    first.wait(10)
    time.sleep(0.3)
    assert _alive(server)
    assert (RESTORE_DIR / f"{first.pid}.json").exists()
    # …until the next helper undoes the leftover before it starts its own
    second, again = _start(helpers)
    assert again["restored"] == [
        {
            "display": ready["display"],
            "server_pid": server,
            "server_stopped": True,
            "vt_switched_back": False,  # another process's fake terminals
        }
    ]
    assert not _alive(server)
    assert not (RESTORE_DIR / f"{first.pid}.json").exists()
    assert second.stdin is not None
    second.stdin.write(b"stop\n")
    second.stdin.flush()
    assert second.wait(20) == 0
    stopped = _events(second)[-1]
    assert stopped["event"] == "stopped" and stopped["reason"] == "stop"
    assert stopped["vt_back"] == again["previous_vt"]
    assert not _alive(again["server_pid"])


def test_a_server_that_dies_is_reported_and_the_terminal_switched_back(
    helpers: list[subprocess.Popen[bytes]],
) -> None:
    proc, ready = _start(helpers)
    os.kill(ready["server_pid"], signal.SIGKILL)
    assert proc.wait(20) == 3
    events = _events(proc)
    assert events[0]["event"] == "server_exited"
    assert events[-1]["event"] == "stopped" and events[-1]["vt_back"] == ready["previous_vt"]
    assert not (RESTORE_DIR / f"{proc.pid}.json").exists()


def test_the_helper_takes_no_arguments() -> None:
    done = subprocess.run(
        [*HELPER, "-modulepath", "/tmp/evil"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert json.loads(done.stdout) == {
        "event": "failed",
        "reason": "lockdown-display-helper takes no arguments",
    }
