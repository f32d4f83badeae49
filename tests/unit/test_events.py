"""Session journal: hash chain, verification of edits/deletions/insertions/reordering, torn tails."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdown.errors import VerificationFailed
from lockdown.events import GENESIS, Event, Journal, read_records, record_hash, verify


def make(path: Path, count: int = 5) -> Path:
    with Journal.open(path) as journal:
        for i in range(count):
            journal.append(Event("test.event", {"i": i, "text": "é ✓"}))
    return path


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_records_form_a_hash_chain(tmp_path: Path) -> None:
    records = read_records(make(tmp_path / "j.jsonl"))
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert records[-1]["type"] == "journal.closed"
    assert records[-1]["payload"] == {
        "records": 5,
        "last_hash": records[4]["hash"],
        "last_mac": GENESIS,  # an unkeyed journal
    }
    assert records[0]["prev"] == GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev"] == before["hash"] == record_hash(before)
    assert set(records[0]) == {"seq", "utc", "mono", "type", "payload", "prev", "hash"}
    assert records[0]["utc"].endswith("+00:00")
    report = verify(tmp_path / "j.jsonl")
    assert report.records == 6
    assert report.status == "intact and closed" and not report.keyed


def test_reopen_continues_the_chain(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl", 2)
    with Journal.open(path) as journal:
        journal.append(Event("again"))
    types = [r["type"] for r in read_records(path)]
    assert types == ["test.event"] * 2 + [
        "journal.closed",
        "journal.reopened",
        "again",
        "journal.closed",
    ]
    assert verify(path).records == 6 and verify(path).closed


def test_edited_record_is_named(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    data = lines(path)
    data[2] = data[2].replace(b'"i":2', b'"i":7')
    path.write_bytes(b"".join(data))
    with pytest.raises(VerificationFailed, match="line 3: record 2 was edited"):
        verify(path)


def test_edited_record_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    records = read_records(path)
    records[1]["payload"]["i"] = 99
    records[1]["hash"] = record_hash(records[1])
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    with pytest.raises(VerificationFailed, match="line 3: record 2 does not follow record 1"):
        verify(path)


def test_deleted_record_is_named(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    data = lines(path)
    del data[2]
    path.write_bytes(b"".join(data))
    with pytest.raises(VerificationFailed, match="line 3: record 2 deleted"):
        verify(path)


def test_reordered_records_are_named(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    data = lines(path)
    data[1], data[2] = data[2], data[1]
    path.write_bytes(b"".join(data))
    with pytest.raises(
        VerificationFailed, match=r"line 2: records reordered \(record 2 stands before record 1\)"
    ):
        verify(path)


def test_inserted_record_is_named(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    data = lines(path)
    data.insert(3, data[1])
    path.write_bytes(b"".join(data))
    with pytest.raises(VerificationFailed, match="line 4: record 1 is out of order or inserted"):
        verify(path)


def test_garbage_line_is_named(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl")
    data = lines(path)
    data.insert(1, b"hello world\n")
    path.write_bytes(b"".join(data))
    with pytest.raises(VerificationFailed, match="line 2: not a journal record"):
        verify(path)


def test_torn_tail_is_reported_then_repaired_on_open(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl", 3)
    path.write_bytes(b"".join(lines(path)[:-1]))  # a crash: no closing record
    assert verify(path).status == "intact but not closed"
    with path.open("ab") as fh:
        fh.write(b'{"seq":3,"utc":"2026-')
    with pytest.raises(VerificationFailed, match="last line is cut off"):
        verify(path)
    with Journal.open(path) as journal:
        journal.append(Event("after"))
    records = read_records(path)
    types = [r["type"] for r in records]
    assert types == ["test.event"] * 3 + ["journal.repaired", "after", "journal.closed"]
    assert records[3]["payload"] == {"dropped_bytes": len(b'{"seq":3,"utc":"2026-')}
    assert verify(path).records == 6


WRITER = """
import sys
from pathlib import Path
from lockdown.events import Event, Journal
journal = Journal.open(Path(sys.argv[1]))
print("ready", flush=True)
i = 0
while True:
    journal.append(Event("tick", {"i": i, "pad": "x" * (i % 3000)}))
    i += 1
"""


@pytest.mark.slow
def test_kill_9_while_writing_loses_at_most_one_record(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    for round_ in range(3):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.2 + 0.13 * round_)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        before = read_records_tolerant(path)
        with Journal.open(path) as journal:
            journal.append(Event("restart", {"round": round_}))
        report = verify(path)
        assert report.records >= before + 1
    assert report.records > 10


def read_records_tolerant(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if line.endswith(b"}"))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(max_size=300))
def test_fuzz_verify_and_open_never_crash(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(junk)
    try:
        verify(path)
    except VerificationFailed as exc:
        assert "\n" not in str(exc)
    with Journal.open(path) as journal:
        journal.append(Event("after.fuzz"))
    path.unlink()


def test_open_stops_at_a_record_without_valid_sequence(tmp_path: Path) -> None:
    path = make(tmp_path / "j.jsonl", 2)
    with path.open("ab") as fh:
        fh.write(b'{"seq":"x","hash":"y"}\n' + b"[" * 100_000 + b"\n")
    with Journal.open(path) as journal:
        journal.append(Event("after"))
    # 2 records, closed, reopened, the repair of the bad tail, after, closed again
    assert verify(path).records == 7


def test_a_refused_launch_link_is_journalled_without_its_token(tmp_path: Path) -> None:
    from lockdown.events import record_refusal
    from lockdown.launch import LaunchError
    from lockdown.paths import temp_paths

    secret = "eyJ2IjoxfQ.bGF1bmNoLXRva2VuLXNlY3JldA"
    link = f"lockdowns://exam.example.org/launch?token={secret}"
    paths = temp_paths(tmp_path)
    record_refusal(paths, link, LaunchError(f"{link}: the server answered 404"))
    (journal,) = paths.journals.glob("*.jsonl")
    (record,) = [r for r in read_records(journal) if r["type"] == "session.refused"]
    assert secret not in journal.read_text(encoding="utf-8")
    assert record["payload"]["target"].startswith("lockdowns://exam.example.org/launch?token=")
