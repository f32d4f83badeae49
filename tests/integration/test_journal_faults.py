"""The journal on a failing disk: it never raises or blocks, and says what it lost."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from lockdown import durable, events
from lockdown.events import Event, Health, Journal, read_records, verify
from tests.support.disk import fill


def _types(path: Path) -> list[str]:
    return [r["type"] for r in read_records(path)]


def test_a_full_disk_never_reaches_the_caller_and_the_gap_is_journalled(
    tmpfs: Callable[[str], Path],
) -> None:
    disk = tmpfs("64k")
    journal = Journal.open(disk / "journal.jsonl")
    journal.append(Event("before", {"i": 0}))
    assert journal.flush()
    filler = fill(disk)
    for i in range(50):  # never raises, never waits
        journal.append(Event("during", {"i": i, "text": "x" * 200}))
    assert not journal.flush(timeout=0.5)
    assert journal.health is Health.DEGRADED
    # what reached the disk (the file's last page had room for a few) is whole records
    fitted = verify(disk / "journal.jsonl").records - 1
    assert 0 <= fitted < 50
    filler.unlink()
    assert journal.flush(timeout=5)
    assert journal.health is Health.OK
    journal.append(Event("after"))
    journal.close()
    records = read_records(disk / "journal.jsonl")
    types = [r["type"] for r in records]
    assert types == [
        "before",
        *["during"] * fitted,
        "journal.degraded",
        *["during"] * (50 - fitted),
        "after",
        "journal.closed",
    ]
    assert [r["payload"]["i"] for r in records if r["type"] == "during"] == list(range(50))
    gap = records[1 + fitted]["payload"]
    assert gap["held"] == 50 - fitted and gap["lost"] == 0
    assert gap["reason"] == "No space left on device"
    assert verify(disk / "journal.jsonl").records == 54


def test_records_past_the_memory_bound_are_counted_and_named(
    tmpfs: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Journal, "MAX_PENDING", 10)
    disk = tmpfs("64k")
    journal = Journal.open(disk / "journal.jsonl")
    filler = fill(disk)
    for i in range(25):
        journal.append(Event("guards.focus_lost" if i % 2 else "kiosk.blocked", {"i": i}))
    filler.unlink()
    assert journal.flush(timeout=5)
    journal.close()
    records = read_records(disk / "journal.jsonl")
    gap = records[0]["payload"]
    assert records[0]["type"] == "journal.degraded"
    assert gap["held"] == 10 and gap["lost"] == 15
    assert gap["lost_types"] == {"guards.focus_lost": 7, "kiosk.blocked": 8}
    assert [r["payload"]["i"] for r in records[1:-1]] == list(range(10))  # the first kept
    assert records[-1]["type"] == "journal.closed"


def test_a_deleted_journal_folder_does_not_stop_the_session(tmp_path: Path) -> None:
    folder = tmp_path / "journals"
    journal = Journal.open(folder / "j.jsonl")
    journal.append(Event("one"))
    assert journal.flush()
    subprocess.run(["rm", "-rf", str(folder)], check=True)
    journal.append(Event("two"))  # the open file still takes it (the folder entry is gone)
    assert journal.flush()
    journal.close()


# A child writes records under a file size limit: the journal degrades, never raises,
# and what reached the disk verifies up to the last whole record.
LIMITED = """
import resource, sys
from pathlib import Path
from lockdown.events import Event, Journal, Health
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))
journal = Journal.open(Path(sys.argv[1]))
for i in range(40):
    journal.append(Event("test.event", {"i": i, "pad": "p" * 40}))
journal.flush(timeout=2)
print(journal.health.value)
journal.close(timeout=1)
"""


def test_short_writes_leave_a_chain_that_verifies_to_the_last_whole_record(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.jsonl"
    out = subprocess.run(
        [sys.executable, "-c", LIMITED, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "degraded"
    assert "records not written" in out.stderr  # close() says how many were lost
    data = path.read_bytes()
    assert 0 < len(data) <= 2000 and data.endswith(b"\n")
    report = verify(path)
    assert 5 <= report.records < 40
    assert [r["payload"]["i"] for r in read_records(path)] == list(range(report.records))


def test_appending_never_waits_for_a_slow_disk(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    slow = threading.Event()
    real_sync = durable.AppendLog.sync

    def sync(self: durable.AppendLog) -> None:
        slow.wait(2.0)  # a disk that takes 2 s per fsync
        real_sync(self)

    monkeypatch.setattr(durable.AppendLog, "sync", sync)
    journal = Journal.open(tmp_path / "j.jsonl")
    started = time.perf_counter()
    for i in range(200):
        journal.append(Event("tick", {"i": i}))
    took = time.perf_counter() - started
    assert took < 0.5, f"200 appends took {took:.3f} s behind a 2 s fsync"
    slow.set()
    assert journal.flush(timeout=10)
    journal.close()
    assert verify(tmp_path / "j.jsonl").records == 201  # and the closing record


def test_a_caller_can_wait_until_its_record_is_on_the_disk(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.jsonl")
    assert journal.append_durable(Event("restore.recorded", {"kind": "xkb"}))
    assert _types(tmp_path / "j.jsonl") == ["restore.recorded"]
    journal.close()
    assert events.verify(tmp_path / "j.jsonl").records == 2
