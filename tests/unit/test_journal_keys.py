"""The keyed journal: an HMAC chain under the session's key, a closing record, and what
`lockdown journal verify` reports with and without the recipient's key."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown import cli
from lockdown.app import _open_journal
from lockdown.config.settings import Organisation, layer
from lockdown.errors import VerificationFailed
from lockdown.events import Event, read_records, record_hash, verify
from lockdown.paths import temp_paths
from lockdown.upload import crypto

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def recipient(tmp_path: Path) -> tuple[Path, str]:
    private, _, public = crypto.generate_recipient(tmp_path / "it")
    return private, public


def keyed_journal(tmp_path: Path, public: str, count: int = 5) -> Path:
    paths = temp_paths(tmp_path / "lockdown")
    paths.ensure()
    settings = layer(Organisation(values={"proctoring.recipient_key": public}), {})
    journal = _open_journal(paths, settings)
    for i in range(count):
        journal.append(Event("guards.focus_lost", {"i": i, "reason": "alt-tab"}))
    journal.close()
    return journal.path


def verify_cli(path: Path, *key: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "lockdown", "journal", "verify", str(path), *key],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    return done.returncode, done.stdout + done.stderr


def rechain(lines: list[dict[str, object]]) -> str:
    """What someone without the key can do: fix up seq, prev and hash after an edit."""
    prev = "0" * 64
    out = []
    for seq, record in enumerate(lines):
        record["seq"], record["prev"] = seq, prev
        if record["type"] == "journal.closed":
            record["payload"] = {**record["payload"], "records": seq}  # type: ignore[dict-item]
        record["hash"] = record_hash(record)
        prev = str(record["hash"])
        out.append(json.dumps(record))
    return "\n".join(out) + "\n"


def test_a_keyed_journal_is_intact_and_closed_with_its_macs_checked(
    tmp_path: Path, recipient: tuple[Path, str]
) -> None:
    path = keyed_journal(tmp_path, recipient[1])
    records = read_records(path)
    assert records[0]["type"] == "journal.keys" and records[-1]["type"] == "journal.closed"
    assert all("mac" in r and "prev_mac" in r for r in records)
    code, out = verify_cli(path, "--key", str(recipient[0]))
    assert code == 0 and "intact and closed, 7 records" in out
    assert "MACs checked with the recipient's key" in out
    code, out = verify_cli(path)
    assert code == 0 and "MACs not checked: pass --key" in out


def test_tail_removal_is_not_closed_even_without_the_key(
    tmp_path: Path, recipient: tuple[Path, str]
) -> None:
    path = keyed_journal(tmp_path, recipient[1])
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-3]))
    code, out = verify_cli(path)
    assert code == 1 and "intact but not closed, 4 records" in out
    assert "ended abnormally" in out


def test_middle_removal_with_rechaining_is_found_with_the_key(
    tmp_path: Path, recipient: tuple[Path, str]
) -> None:
    path = keyed_journal(tmp_path, recipient[1])
    records = read_records(path)
    del records[3]  # a guard event goes
    records[2]["payload"]["reason"] = "the window manager"  # and another is reworded
    path.write_text(rechain(records))
    assert verify(path).status == "intact and closed"  # the plain chain was fixed up
    code, out = verify_cli(path, "--key", str(recipient[0]))
    assert code == 1 and "line 3: record 2 was edited or the journal re-chained" in out


def test_another_recipients_key_and_an_unkeyed_journal_are_one_line(
    tmp_path: Path, recipient: tuple[Path, str]
) -> None:
    path = keyed_journal(tmp_path, recipient[1])
    other, _, _ = crypto.generate_recipient(tmp_path / "other")
    code, out = verify_cli(path, "--key", str(other))
    assert code == 2 and "not the recording's recipient" in out and out.count("\n") == 1
    paths = temp_paths(tmp_path / "plain")
    paths.ensure()
    journal = _open_journal(paths, layer(Organisation(), {}))
    journal.append(Event("x"))
    journal.close()
    code, out = verify_cli(journal.path, "--key", str(recipient[0]))
    assert code == 2 and "not keyed" in out


def test_an_empty_journal_is_not_intact(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert verify(empty).status == "empty"
    code, out = verify_cli(empty)
    assert code == 1 and "empty, 0 records" in out
    assert "intact" not in out


CRASH = """
import os, signal, sys
from pathlib import Path
from lockdown.app import _open_journal
from lockdown.config.settings import Organisation, layer
from lockdown.events import Event
from lockdown.paths import temp_paths
paths = temp_paths(Path(sys.argv[1]))
paths.ensure()
journal = _open_journal(paths, layer(Organisation(values={"proctoring.recipient_key": sys.argv[2]}), {}))
for i in range(3):
    journal.append(Event("guards.focus_lost", {"i": i}))
journal.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_after_a_crash_the_next_chain_names_the_old_head(
    tmp_path: Path, recipient: tuple[Path, str]
) -> None:
    base = tmp_path / "lockdown"
    crashed = subprocess.run(
        [sys.executable, "-c", CRASH, str(base), recipient[1]], timeout=60, check=False, cwd=ROOT
    )
    assert crashed.returncode == -signal.SIGKILL
    (old,) = (base / "data" / "journals").glob("*.jsonl")
    assert verify(old).status == "intact but not closed"
    last = read_records(old)[-1]
    paths = temp_paths(base)
    journal = _open_journal(
        paths, layer(Organisation(values={"proctoring.recipient_key": recipient[1]}), {})
    )
    journal.append(Event("session.started"))
    journal.close()
    report = verify(journal.path)
    assert report.continues == {
        "file": old.name,
        "records": 4,  # the keys record and three events
        "hash": last["hash"],
        "mac": last["mac"],
        "closed": False,
    }
    code, out = verify_cli(journal.path, "--key", str(recipient[0]))
    assert code == 0 and f"continues {old.name} after its record 3 (not closed" in out
    code, out = verify_cli(old, "--key", str(recipient[0]))
    assert code == 1 and "intact but not closed, 4 records" in out


def test_json_report_says_what_was_found(
    tmp_path: Path, recipient: tuple[Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = keyed_journal(tmp_path, recipient[1], count=1)
    assert cli.main(["journal", "verify", str(path), "--json", "--key", str(recipient[0])]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "intact and closed" and report["macs_checked"] is True
    path.write_text(path.read_text().replace('"i":0', '"i":1'))
    with pytest.raises(VerificationFailed, match="record 1 was edited"):
        verify(path)
