"""Test support: start real programs outside our process tree, and record journal events.

Used by the process-watcher tests and ``bench/bench_guards.py``: a copy of a harmless
binary renamed like a listed app (``obs``, ``anydesk``) is started detached from the
caller (double fork, as if the candidate started it from the desktop), optionally with
another ``argv[0]`` (``exec -a``) or as another user.

This machine has no logind, and other test runs (as root, like ours) start copies named
like ours: :func:`fake_logind` is the fake logind. Every program of this test run
carries the run's session token in its environment (:data:`TEST_SESSION`, set by
``tests/conftest.py`` as ``LOCKDOWN_DEV_PROCESS_SESSION``, the development switch a real
``lockdown`` started by a test obeys too); the fake puts every process without it in
another session, so a watcher scoped with :data:`TEST_SCOPE` never touches another
run's processes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from lockdown.events import Event
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import CandidateScope
from lockdown.platform.proc_linux import EnvironmentSessions

#: A few listed Linux apps the tests start renamed copies of.
TEST_APPS = AppList.load(os_name="linux").restricted_to(["obs", "simplescreenrecorder", "anydesk"])

#: The environment variable the fake logind reads, and this test run's session.
SESSION_VARIABLE = "LOCKDOWN_DEV_PROCESS_SESSION"
#: (A child process of a test inherits its parent's session through the variable; set
#: here too, as a folder's conftest importing this module can load before the root one's
#: ``pytest_configure`` when pytest is given that folder's files.)
TEST_SESSION = os.environ.setdefault(SESSION_VARIABLE, uuid.uuid4().hex[:12])
#: The environment that puts a child process in this run's session.
SESSION_ENV = {SESSION_VARIABLE: TEST_SESSION}


def fake_logind() -> EnvironmentSessions:
    """Fake logind: a process is in the session its ``LOCKDOWN_DEV_PROCESS_SESSION`` names;
    one without the variable is in a session of its own (never this run's)."""
    return EnvironmentSessions(SESSION_VARIABLE)


#: The candidate as tests see them: our user, this run's (fake) login session.
TEST_SCOPE = CandidateScope(os.getuid(), fake_logind(), TEST_SESSION)
#: A prohibited name of this run's own (an exam's extra, like
#: ``guards.prohibited_apps_extra``): no other test run's guard on this shared machine
#: knows it, so only this run's watchers can close a copy named so. (Runs whose guard is
#: not scoped yet close every ``obs`` copy on the machine within milliseconds.)
RUN_RECORDER = f"rec-{TEST_SESSION}"
#: :data:`TEST_APPS` plus :data:`RUN_RECORDER`, and the id of that app.
RUN_APPS = TEST_APPS.extended([RUN_RECORDER])
RUN_APP = f"extra:{RUN_RECORDER}"

# Double fork: the grandchild waits until it is orphaned, prints its pid and the
# monotonic time, then execs the program, so it is not part of our process tree.
# Options before the program: --ignore-sigterm, --argv0=NAME (exec -a), --user=UID:GID.
LAUNCHER = r"""
import os, signal, sys, time
argv0 = user = None
while sys.argv[1].startswith("--"):
    opt = sys.argv.pop(1)
    if opt == "--ignore-sigterm":  # inherited across exec: no race with the watcher
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif opt.startswith("--argv0="):
        argv0 = opt.split("=", 1)[1]
    elif opt.startswith("--user="):
        user = [int(x) for x in opt.split("=", 1)[1].split(":")]
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
        if user is not None:
            os.setgroups([])
            os.setgid(user[1])
            os.setuid(user[0])
        os.execv(sys.argv[1], [argv0 or sys.argv[1], *sys.argv[2:]])
    os._exit(0)
os.close(w)
os.waitpid(child, 0)
sys.stdout.write(os.read(r, 100).decode())
"""


def launch_detached(
    program: Path,
    *args: str,
    ignore_sigterm: bool = False,
    argv0: str | None = None,
    user: tuple[int, int] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[int, float]:
    """Start ``program`` outside our process tree; its pid and the time just before exec.

    ``argv0`` replaces its ``argv[0]`` (``exec -a``); ``user`` (uid, gid) runs it as that
    user; it runs in :data:`TEST_SESSION` (plus ``env``).
    """
    flags = ["--ignore-sigterm"] if ignore_sigterm else []
    if argv0 is not None:
        flags.append(f"--argv0={argv0}")
    if user is not None:
        flags.append(f"--user={user[0]}:{user[1]}")
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *flags, str(program), *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
        env={**os.environ, SESSION_VARIABLE: TEST_SESSION, **(env or {})},
    ).stdout.split()
    return int(out[0]), float(out[1])


def renamed_copy(folder: Path, name: str, binary: str = "/bin/sleep") -> Path:
    """A copy of ``binary`` at ``folder/name/name`` (its own folder: names may repeat);
    the copy made before when there is one."""
    target = folder / name / name
    target.parent.mkdir(exist_ok=True)
    if not target.exists():
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

    def start(
        self,
        program: Path,
        *args: str,
        ignore_sigterm: bool = False,
        argv0: str | None = None,
        user: tuple[int, int] | None = None,
        env: dict[str, str] | None = None,
    ) -> int:
        pid, _ = launch_detached(
            program, *args, ignore_sigterm=ignore_sigterm, argv0=argv0, user=user, env=env
        )
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
