"""Crash safety of the process watcher: a termination is recorded before its signal.

Real processes: renamed copies of /bin/sleep started detached, a real watcher closing
them, and a real ``kill -9`` of the guarding process before the end of its session.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lockdown.events import Event
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_DETECTED,
    EVENT_TERMINATED_SUMMARY,
    REASON_DURING,
    RECORD_KIND,
    ProcessWatcherGuard,
    TerminationLedger,
    close_process,
    inspect,
)
from lockdown.guards.restore import RestoreLog, undo_leftovers
from lockdown.platform.null import NullPlatform
from tests.support.processes import (
    SESSION_ENV,
    TEST_APPS,
    TEST_SCOPE,
    Detached,
    Recorder,
    alive,
    renamed_copy,
)

CHILD = r"""
import sys, time
from pathlib import Path
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import ProcessWatcherGuard
from lockdown.guards.restore import RestoreLog
from tests.support.processes import TEST_SCOPE
apps = AppList.load(os_name="linux").restricted_to(["obs"])
guard = ProcessWatcherGuard(
    apps, terminate=True, restore=RestoreLog(Path(sys.argv[1])), scope=TEST_SCOPE
)
guard.start(lambda event: print(event.type, event.payload.get("pid"), flush=True))
print("ready", flush=True)
time.sleep(60)
"""


def _wait(condition: object, timeout: float = 5.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_a_termination_is_recorded_before_the_kill_and_summarised_at_stop(
    tmp_path: Path, detached: Detached
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    stubborn = renamed_copy(tmp_path, "anydesk")
    guard = ProcessWatcherGuard(
        TEST_APPS, terminate=True, grace=1.5, restore=restore, scope=TEST_SCOPE
    )
    journal = Recorder()
    guard.start(journal)
    try:
        pid = detached.start(stubborn, "30", ignore_sigterm=True)
        journal.wait_for(EVENT_DETECTED, pid)
        # It ignores SIGTERM, so it still runs during the grace period: the record is there.
        _wait(lambda: bool(restore.pending()))
        assert alive(pid)
        (record,) = restore.pending()
        assert record.kind == RECORD_KIND
        assert record.pid == os.getpid()
        assert record.data["pid"] == pid
        assert record.data["name"] == "anydesk"
        assert record.data["exe"] == str(stubborn)
        assert record.data["reason"] == REASON_DURING
        assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "killed"
        assert not alive(pid)
        assert restore.pending(), "the record must stay until the end of the session"
        assert not journal.of(EVENT_TERMINATED_SUMMARY)
    finally:
        guard.stop()
    (summary,) = journal.of(EVENT_TERMINATED_SUMMARY)
    assert summary.payload["count"] == 1
    (entry,) = summary.payload["processes"]
    assert (entry["pid"], entry["name"], entry["how"]) == (pid, "anydesk", "killed")
    assert restore.pending() == []


def test_a_process_gone_before_the_signal_leaves_no_record(
    tmp_path: Path, detached: Detached
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    pid = detached.start(renamed_copy(tmp_path, "obs"), "30")
    facts = inspect(pid)
    assert facts is not None
    match = TEST_APPS.matcher().match(facts)
    assert match is not None
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not alive(pid))
    ledger = TerminationLedger(restore)
    assert close_process(match, 0.5, ledger).how == "gone"
    assert restore.pending() == []
    journal = Recorder()
    ledger.finish(journal)
    assert journal.events == []


def test_a_kill_9_before_the_end_leaves_the_record_for_the_next_start(
    tmp_path: Path, detached: Detached
) -> None:
    restore_dir = tmp_path / "restore"
    obs = renamed_copy(tmp_path, "obs")
    guarding = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(restore_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, **SESSION_ENV},
    )
    assert guarding.stdout is not None
    try:
        lines = iter(guarding.stdout.readline, "")
        assert any(line.strip() == "ready" for line in lines)
        pid = detached.start(obs, "30")
        assert any(line.split() == [EVENT_CLOSED, str(pid)] for line in lines)
        assert not alive(pid)
        (record,) = RestoreLog(restore_dir).pending()
        assert record.data["pid"] == pid
        # While the guarding process lives, its record is not a leftover.
        assert undo_leftovers(restore_dir, lambda e: None, NullPlatform()) == 0
        os.kill(guarding.pid, signal.SIGKILL)
        guarding.wait(10)
    finally:
        guarding.kill()
        guarding.wait()
        guarding.stdout.close()
    events: list[Event] = []
    assert undo_leftovers(restore_dir, events.append, NullPlatform()) == 1
    (event,) = events
    assert event.type == "guards.restore_undone"
    assert event.payload["kind"] == RECORD_KIND
    assert event.payload["pid"] == guarding.pid
    data = event.payload["data"]
    assert (data["pid"], data["name"], data["exe"]) == (pid, "obs", str(obs))
    assert data["reason"] == REASON_DURING
    assert RestoreLog(restore_dir).pending() == []
