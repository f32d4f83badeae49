"""The exam display's cookie, held the way Lockdown holds it (a close-on-exec memory file
named by XAUTHORITY=/proc/self/fd/N, the process not dumpable), cannot be read by another
process of the same user; without PR_SET_DUMPABLE=0 (the positive control) it can."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.integration.platform.test_trust import _as_nobody, readable_package

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run both processes as the user nobody"
)

# The exam process: the cookie arrives on stdin (as from the display helper's pipe).
EXAM = """
import os, sys, time
from lockdown.platform import exam_server
from lockdown.platform.trust import LinuxNative, PosixTrust
if sys.argv[1] == "deny":
    assert PosixTrust(LinuxNative(), platform="linux").deny_debugging().denied
cookie = bytes.fromhex(sys.stdin.readline().strip())
fd = exam_server.memory_file("lockdown-xauth", exam_server.authority(cookie, 5), inheritable=False)
os.environ["XAUTHORITY"] = f"/proc/self/fd/{fd}"
del cookie
assert open(os.environ["XAUTHORITY"], "rb").read().count(b"MIT-MAGIC-COOKIE-1") == 2
print("ready", flush=True)
time.sleep(60)
"""
# Another process of the same user looks for the cookie in every place it could reach.
SNOOP = """
import os, sys
pid, cookie = sys.argv[1], bytes.fromhex(sys.argv[2])
found, denied = [], []
places = [f"/proc/{pid}/environ", f"/proc/{pid}/cmdline"]
try:
    places += [f"/proc/{pid}/fd/{fd}" for fd in os.listdir(f"/proc/{pid}/fd")]
except PermissionError:
    denied.append("fd")
for path in places:
    try:
        with open(path, "rb") as f:
            if cookie in f.read(1 << 20):
                found.append(path.rsplit("/", 2)[-2])
    except OSError:
        denied.append(path.rsplit("/", 1)[-1])
print("read" if found else "denied" if denied else "absent")
"""


@pytest.fixture
def exam_process() -> Iterator[Callable[[str, bytes], int]]:
    started: list[subprocess.Popen[str]] = []
    children: list[int] = []

    def start(mode: str, cookie: bytes) -> int:
        env = {**os.environ, "PYTHONPATH": readable_package()}
        proc = subprocess.Popen(
            _as_nobody("-c", EXAM, mode),
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(cookie.hex() + "\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "ready"
        child = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        children.append(int(child[0]))
        return children[-1]

    yield start
    for pid in children:
        os.kill(pid, 9)
    for proc in started:
        proc.kill()
        proc.communicate(timeout=10)


def _snoop(pid: int, cookie: bytes) -> str:
    return subprocess.run(
        _as_nobody("-c", SNOOP, str(pid), cookie.hex()),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()


def test_a_process_of_the_same_user_cannot_obtain_the_cookie(
    exam_process: Callable[[str, bytes], int],
) -> None:
    cookie = secrets.token_bytes(16)
    # the positive control: a dumpable process's memory file is open to its user
    assert _snoop(exam_process("open", cookie), cookie) == "read"
    other = secrets.token_bytes(16)
    assert _snoop(exam_process("deny", other), other) == "denied"
