"""The process watcher with real processes: renamed copies of harmless binaries.

A copy of /bin/sleep named like a prohibited app is started detached from the test
process (double fork, as if the candidate started it from the desktop): it is detected,
journalled and — with the close policy — terminated; an unlisted name is left alone; a
child of our own process is never touched. The name is this run's own prohibited extra
(:data:`~tests.support.processes.RUN_RECORDER`): other runs on this shared machine whose
guard is not yet scoped close every ``obs`` or ``anydesk`` copy within milliseconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from lockdown.guards import processes
from lockdown.guards.appslist import AppList
from lockdown.guards.base import GuardUnavailable
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_DETECTED,
    PollingExecSource,
    ProcessWatcherGuard,
    choose_exec_source,
    scan_running,
)
from lockdown.platform.proc_linux import NetlinkExecSource
from tests.support.processes import (
    RUN_APP,
    RUN_APPS,
    RUN_RECORDER,
    SESSION_ENV,
    TEST_APPS,
    TEST_SCOPE,
    Detached,
    Recorder,
    alive,
    renamed_copy,
)


@contextmanager
def watching(
    *, terminate: bool, netlink: bool = True, grace: float = 2.0, apps: AppList = RUN_APPS
) -> Iterator[tuple[ProcessWatcherGuard, Recorder]]:
    """A started watcher over ``apps`` and its journal; stopped on leaving."""
    factory: Callable[[], processes.ExecSource] = lambda: choose_exec_source(  # noqa: E731
        allow_netlink=netlink
    )
    guard = ProcessWatcherGuard(
        apps, terminate=terminate, grace=grace, source_factory=factory, scope=TEST_SCOPE
    )
    journal = Recorder()
    guard.start(journal)
    try:
        yield guard, journal
    finally:
        guard.stop()


@pytest.mark.parametrize("netlink", [True, False], ids=["netlink", "polling"])
def test_a_started_prohibited_app_is_journalled_and_terminated(
    tmp_path: Path, detached: Detached, netlink: bool
) -> None:
    obs = renamed_copy(tmp_path, RUN_RECORDER)
    notes = renamed_copy(tmp_path, "notes")
    with watching(terminate=True, netlink=netlink) as (_, journal):
        expected = "netlink-proc-connector" if netlink else "poll-proc"
        assert journal.of("guards.process_watcher")[0].payload["backend"] == expected
        harmless = detached.start(notes, "30")
        pid = detached.start(obs, "30")
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert detected.payload["app"] == RUN_APP
        assert detected.payload["action"] == "terminate"
        assert detected.payload["exe"] == str(obs)
        closed = journal.wait_for(EVENT_CLOSED, pid)
        assert closed.payload["how"] == "terminated"
        assert not alive(pid)
        assert alive(harmless), "an unlisted app was touched"
        assert not journal.of(EVENT_DETECTED, harmless)


def test_ask_policy_journals_but_leaves_the_app_running(tmp_path: Path, detached: Detached) -> None:
    assert len(RUN_RECORDER) > 15  # longer than the 15-char comm
    recorder = renamed_copy(tmp_path, RUN_RECORDER)
    with watching(terminate=False) as (_, journal):
        pid = detached.start(recorder, "30")
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert detected.payload["app"] == RUN_APP
        assert detected.payload["matched_on"] == "exe"
        assert detected.payload["action"] == "journal"
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        assert comm == RUN_RECORDER[:15]  # the kernel's name is truncated; the exe matched
    assert alive(pid)


def test_an_app_ignoring_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, detached: Detached
) -> None:
    stubborn = renamed_copy(tmp_path, RUN_RECORDER)
    with watching(terminate=True, grace=0.3) as (_, journal):
        pid = detached.start(stubborn, "30", ignore_sigterm=True)
        closed = journal.wait_for(EVENT_CLOSED, pid)
        assert closed.payload["how"] == "killed"
        assert "0.3 s" in closed.payload["reason"]
        assert not alive(pid)


def test_our_own_child_processes_are_never_touched(tmp_path: Path, detached: Detached) -> None:
    recorder = renamed_copy(tmp_path, RUN_RECORDER)
    # in this run's (fake) session, so only the own-tree rule keeps it alive
    ours = subprocess.Popen([str(recorder), "30"], env={**os.environ, **SESSION_ENV})
    try:
        found = scan_running(RUN_APPS.matcher(), scope=TEST_SCOPE)
        assert all(m.process.pid != ours.pid for m in found)
        with watching(terminate=True, apps=RUN_APPS) as (_, journal):
            outside = detached.start(recorder, "30")
            journal.wait_for(EVENT_CLOSED, outside)  # the watcher is working …
            assert ours.poll() is None  # … and our own child was left alone
            assert not journal.of(EVENT_DETECTED, ours.pid)
    finally:
        ours.kill()
        ours.wait()


def test_a_flood_is_rate_limited_without_losing_the_count(
    tmp_path: Path, detached: Detached
) -> None:
    recorder = renamed_copy(tmp_path, RUN_RECORDER)  # no other run's guard knows the name
    launched = 8
    with watching(terminate=True, grace=1.0, apps=RUN_APPS) as (_, journal):
        pids = [detached.start(recorder, "30") for _ in range(launched)]
        deadline = time.monotonic() + 10
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not any(alive(p) for p in pids), "every copy is terminated, journalled or not"
    # (other runs' copies of listed apps are journalled too, as reports: not ours to count)
    detected = [
        e for e in journal.of(EVENT_DETECTED) if e.payload["key"] == f"extra:{RUN_RECORDER}"
    ]
    assert len(detected) < launched, "the flood reached the journal unthrottled"
    # each record stands for one start, a summary for the "suppressed" starts it replaces
    represented = sum(int(e.payload.get("suppressed", 1)) for e in detected)
    assert represented == launched, detected


def test_scan_running_lists_a_prohibited_app_started_before(
    tmp_path: Path, detached: Detached
) -> None:
    pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
    running = scan_running(RUN_APPS.matcher(), scope=TEST_SCOPE)
    assert [m.app.id for m in running if m.process.pid == pid] == [RUN_APP]
    assert os.getpid() not in {m.process.pid for m in running}


def test_polling_sees_a_process_that_execs_a_listed_app_after_it_appeared(
    tmp_path: Path, detached: Detached
) -> None:
    # The pid shows up as a harmless python first and becomes the recorder 0.3 s later
    # (a launcher that forks, then execs): polling must look at young pids again, not
    # wait for the slow full rescan.
    obs = renamed_copy(tmp_path, RUN_RECORDER)
    code = f"import os, time; time.sleep(0.3); os.execv({str(obs)!r}, ['rec', '30'])"
    source = PollingExecSource("test", rescan_interval=3600)
    guard = ProcessWatcherGuard(
        RUN_APPS, terminate=False, source_factory=lambda: source, scope=TEST_SCOPE
    )
    journal = Recorder()
    guard.start(journal)
    try:
        pid = detached.start(Path(sys.executable), "-c", code)
        detected = journal.wait_for(EVENT_DETECTED, pid, timeout=3.0)
        assert detected.payload["app"] == RUN_APP
    finally:
        guard.stop()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_watcher_whose_source_fails_to_start_releases_it(tmp_path: Path) -> None:
    class FailsAfterStarting(NetlinkExecSource):
        def start(self, on_exec: Any, on_overflow: Any, *more: Any) -> None:
            super().start(on_exec, on_overflow, *more)
            raise OSError("no more threads")

    before = _open_fds()
    guard = ProcessWatcherGuard(
        TEST_APPS, terminate=False, source_factory=FailsAfterStarting, scope=TEST_SCOPE
    )
    with pytest.raises(GuardUnavailable, match="no more threads"):
        guard.start(Recorder())
    assert _open_fds() == before, "the netlink socket or its wake-up pipe leaked"
    assert not any(t.name == "proc-connector" for t in threading.enumerate())
    guard.stop()  # nothing started: a no-op


def test_a_failing_netlink_source_is_journalled_and_polling_takes_over(
    tmp_path: Path, detached: Detached
) -> None:
    with watching(terminate=False) as (guard, journal):
        guard_source = guard._source
        assert isinstance(guard_source, NetlinkExecSource)
        sock = guard_source._sock
        assert sock is not None
        # Put a regular file where the socket was: select() says readable, recv() fails.
        with open(tmp_path / "not-a-socket", "wb+") as junk:
            os.dup2(junk.fileno(), sock.fileno())
        # A select() already waiting holds the old socket and wakes only on its next
        # event: start a process (an exec event) so the test does not depend on others.
        deadline = time.monotonic() + 5.0
        while not journal.of("guards.process_watcher_failed") and time.monotonic() < deadline:
            subprocess.run(["/bin/true"], check=True)
            time.sleep(0.05)
        failed = journal.wait_for("guards.process_watcher_failed")
        assert "Socket operation on non-socket" in failed.payload["reason"]
        backends = [e.payload["backend"] for e in journal.of("guards.process_watcher")]
        assert backends == ["netlink-proc-connector", "poll-proc"]
        pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
        assert journal.wait_for(EVENT_DETECTED, pid).payload["backend"] == "poll-proc"
