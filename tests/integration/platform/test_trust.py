"""Keeping the candidate's own processes out of ours, tried with real processes of one user."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockdown.platform.trust import LinuxNative, PosixTrust

ROOT = Path(__file__).resolve().parents[3]

# The exam process: denies debugging (or not, for the control) and waits.
EXAM = """
import sys, time
from lockdown.platform.trust import LinuxNative, PosixTrust
if sys.argv[1] == "deny":
    state = PosixTrust(LinuxNative(), platform="linux").deny_debugging()
    assert state.denied, state
print("ready", flush=True)
time.sleep(60)
"""
# Another process of the same user reads the exam process's memory map and environment.
SNOOP = """
import sys
try:
    with open(f"/proc/{sys.argv[1]}/environ", "rb") as f:
        data = f.read()
    with open(f"/proc/{sys.argv[1]}/maps", "rb") as f:
        f.read()
except PermissionError:
    print("denied")
else:
    print("read" if b"SECRET_TOKEN=s3cr3t" in data else "empty")
"""

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root to run both processes as the user nobody"
)


_READABLE: list[str] = []


def readable_package() -> str:
    """A copy of the package the user nobody can read (the checkout may sit in a folder
    only root can enter, such as a fresh `mktemp -d` clone); made once per run."""
    if not _READABLE:
        folder = Path(tempfile.mkdtemp(prefix="lockdown-for-nobody-"))
        folder.chmod(0o755)
        atexit.register(shutil.rmtree, folder, True)
        shutil.copytree(
            ROOT / "lockdown", folder / "lockdown", ignore=shutil.ignore_patterns("__pycache__")
        )
        for path in folder.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)
        _READABLE.append(str(folder))
    return _READABLE[0]


def _python_for_nobody() -> str:
    """An interpreter the user nobody may run (ours may sit in root's home)."""
    for candidate in (sys.executable, "/usr/bin/python3"):
        probe = ["runuser", "-u", "nobody", "--", candidate, "-c", "pass"]
        if subprocess.run(probe, capture_output=True, timeout=30, check=False).returncode == 0:
            return candidate
    pytest.fail("no Python interpreter the user nobody can run (install python3)")


def _as_nobody(*argv: str) -> list[str]:
    return ["runuser", "-u", "nobody", "--", _python_for_nobody(), *argv]


@pytest.fixture
def exam_process() -> Iterator[object]:
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> int:
        env = {**os.environ, "PYTHONPATH": readable_package(), "SECRET_TOKEN": "s3cr3t"}
        proc = subprocess.Popen(
            _as_nobody("-c", EXAM, mode), env=env, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        # runuser's child is the python process
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=True
        ).stdout.split()
        children_of[proc.pid] = int(children[0])
        return children_of[proc.pid]

    children_of: dict[int, int] = {}
    yield start
    for proc in started:
        if proc.pid in children_of:
            os.kill(children_of[proc.pid], 9)
        proc.kill()
        proc.communicate(timeout=10)


def _snoop(pid: int) -> str:
    return subprocess.run(
        _as_nobody("-c", SNOOP, str(pid)), capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()


def test_a_process_of_the_same_user_cannot_read_the_exam_process(exam_process: object) -> None:
    start = exam_process  # type: ignore[assignment]
    # positive control: without the protection another process of the user reads it all
    assert _snoop(start("open")) == "read"  # type: ignore[operator]
    assert _snoop(start("deny")) == "denied"  # type: ignore[operator]


def test_the_journalled_state_says_how_debugging_was_denied() -> None:
    native = LinuxNative()
    state = PosixTrust(native, platform="linux").deny_debugging()
    try:
        assert state.denied and not native.dumpable()
        assert state.as_record()["mechanism"] == "prctl(PR_SET_DUMPABLE, 0)"
        assert state.ptrace_scope == native.ptrace_scope()
    finally:
        native.set_dumpable(True)  # the test process itself goes on as before
