"""Test support: start real programs outside our process tree, and record journal events.

Used by the process-watcher tests and ``bench/bench_guards.py``: a copy of a harmless
binary renamed like a listed app (``obs``, ``anydesk``) is started detached from the
caller (double fork, as if the candidate started it from the desktop).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from lockdown.events import Event
from lockdown.guards.appslist import AppList

#: A few listed Linux apps the tests start renamed copies of.
TEST_APPS = AppList.load(os_name="linux").restricted_to(["obs", "simplescreenrecorder", "anydesk"])

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


def renamed_copy(folder: Path, name: str, binary: str = "/bin/sleep") -> Path:
    """A copy of ``binary`` at ``folder/name/name`` (its own folder: names may repeat)."""
    target = folder / name / name
    target.parent.mkdir()
    shutil.copy2(binary, target)
    return target


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Detached:
    """Starts detached programs and kills whatever is left of them at the end."""

    def __init__(self) -> None:
        self.pids: list[int] = []

    def start(self, program: Path, *args: str, ignore_sigterm: bool = False) -> int:
        pid, _ = launch_detached(program, *args, ignore_sigterm=ignore_sigterm)
        self.pids.append(pid)
        return pid

    def kill_all(self) -> None:
        for pid in self.pids:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        self.pids.clear()


@contextmanager
def detached_processes() -> Iterator[Detached]:
    """A :class:`Detached` whose processes are killed on leaving the block."""
    processes = Detached()
    try:
        yield processes
    finally:
        processes.kill_all()


class Recorder:
    """An EventSink that keeps events and the time each arrived (thread-safe)."""

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

    def wait_for(self, kind: str, pid: int | None = None, timeout: float = 5.0) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := self.of(kind, pid):
                return found[0]
            time.sleep(0.01)
        about = f" for pid {pid}" if pid is not None else ""
        raise AssertionError(f"no {kind} event{about} within {timeout} s: {self.events}")
