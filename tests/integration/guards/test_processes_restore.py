"""Crash safety of the process watcher: a termination is recorded before its signal,
and a start the journal rate limit holds back is counted on disk.

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

import pytest

from lockdown.events import Event, Journal, read_records, verify
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
    RUN_APPS,
    RUN_RECORDER,
    SESSION_ENV,
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
from tests.support.processes import RUN_RECORDER, TEST_SCOPE
apps = AppList.load(os_name="linux").restricted_to([]).extended([RUN_RECORDER])
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


def _guarding(script: str, *args: str) -> subprocess.Popen[str]:
    """A real process running a guard (``script``) in this run's login session."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        env={**os.environ, **SESSION_ENV},
    )
    assert proc.stdout is not None
    return proc


def test_a_termination_is_recorded_before_the_kill_and_summarised_at_stop(
    tmp_path: Path, detached: Detached
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    stubborn = renamed_copy(tmp_path, RUN_RECORDER)
    guard = ProcessWatcherGuard(
        RUN_APPS, terminate=True, grace=1.5, restore=restore, scope=TEST_SCOPE
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
        assert record.data["name"] == RUN_RECORDER
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
    assert (entry["pid"], entry["name"], entry["how"]) == (pid, RUN_RECORDER, "killed")
    assert restore.pending() == []


def test_a_process_gone_before_the_signal_leaves_no_record(
    tmp_path: Path, detached: Detached
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
    facts = inspect(pid)
    assert facts is not None
    match = RUN_APPS.matcher().match(facts)
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
    obs = renamed_copy(tmp_path, RUN_RECORDER)
    guarding = _guarding(CHILD, str(restore_dir))
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
    assert (data["pid"], data["name"], data["exe"]) == (pid, RUN_RECORDER, str(obs))
    assert data["reason"] == REASON_DURING
    assert RestoreLog(restore_dir).pending() == []


HOLDING_CHILD = r"""
import sys
import time
from pathlib import Path
from typing import Any
from lockdown.events import Journal
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import ProcessWatcherGuard
from lockdown.guards.restore import RestoreLog, RestoreRecord
from tests.support.processes import TEST_SCOPE

journal_path, restore_dir, name, keep = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]


class Announcing(RestoreLog):
    # keep=disk: writes like the real one; keep=memory: the count lives only in memory
    def record(self, kind: str, data: Any) -> RestoreRecord:
        if keep == "disk" or kind != "journal_held":
            out = super().record(kind, data)
        else:
            out = RestoreRecord(restore_dir / "none", kind, dict(data), 0, 0.0)
        print("held", data.get("suppressed"), flush=True)
        return out

    def update(self, record: RestoreRecord, data: Any) -> RestoreRecord:
        out = super().update(record, data) if keep == "disk" else record
        print("held", data.get("suppressed"), flush=True)
        return out


apps = AppList.load(os_name="linux").restricted_to([]).extended([name])
journal = Journal.open(Path(journal_path))
guard = ProcessWatcherGuard(
    apps, terminate=False, rate_interval=600, restore=Announcing(restore_dir), scope=TEST_SCOPE
)
guard.start(journal.append)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("keep", ["disk", "memory"], ids=["written", "positive-control"])
def test_every_start_reaches_the_journal_although_lockdown_is_killed(
    tmp_path: Path, detached: Detached, keep: str
) -> None:
    name = RUN_RECORDER
    journal_path, restore_dir = tmp_path / "journal.jsonl", tmp_path / "restore"
    program = renamed_copy(tmp_path, name)
    guarding = _guarding(HOLDING_CHILD, str(journal_path), str(restore_dir), name, keep)
    try:
        lines = iter(guarding.stdout.readline, "")
        assert any(line.strip() == "ready" for line in lines)
        first = detached.start(program, "30")
        _wait(lambda: any(r["payload"].get("pid") == first for r in read_records(journal_path)))
        second = detached.start(program, "30")  # within the rate-limit window: held back
        assert any(line.split() == ["held", "1"] for line in lines)
        os.kill(guarding.pid, signal.SIGKILL)
        guarding.wait(10)
    finally:
        guarding.kill()
        guarding.wait()
        guarding.stdout.close()
    # The next start journals what the dead run left, as app startup does.
    with Journal.open(journal_path) as journal:
        undo_leftovers(restore_dir, journal.append, NullPlatform())
    records = read_records(journal_path)
    started = [r for r in records if r["type"] == EVENT_DETECTED]
    assert [r["payload"]["pid"] for r in started] == [first]
    held = [
        r["payload"]["data"]
        for r in records
        if r["type"] == "guards.restore_undone" and r["payload"]["kind"] == "journal_held"
    ]
    if keep == "disk":
        assert [(h["payload"]["pid"], h["suppressed"]) for h in held] == [(second, 1)]
    else:
        assert held == [], "the positive control lost the repeat (held only in memory)"
    assert verify(journal_path).records == len(records)
