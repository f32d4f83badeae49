"""`lockdown spool verify DIR` run as a real process on spools made here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown.capture.base import Stream
from lockdown.upload import crypto
from lockdown.upload.spool import MANIFEST_FILE, SEGMENTS_DIR, Spool
from tests.unit.upload.factory import Events, segment

REPO = Path(__file__).resolve().parents[3]


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockdown.cli", "spool", "verify", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def spool_dir(tmp_path: Path) -> Path:
    """A spool sealed for the recipient ``tmp_path/it`` (its private key: ``it.key``)."""
    folder = tmp_path / "rec"
    _, _, public = crypto.generate_recipient(tmp_path / "it")
    recipient = crypto.parse_recipient(public)
    with Spool.open(folder, report=Events(), max_bytes=10**9, recipient=recipient) as spool:
        for seq in range(3):
            spool.add(segment(Stream.CAMERA, seq, size=20_000, length=30.0))
            spool.add(segment(Stream.MICROPHONE, seq, size=4_000, length=30.0))
        spool.add(segment(Stream.SCREEN, 0, size=10_000, length=30.0))
    return folder


def test_an_intact_spool_is_summarised_with_exit_0(spool_dir: Path) -> None:
    done = verify(str(spool_dir))
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith(f"{spool_dir}: intact and closed; 3 stream(s), 7 segment(s), 3m30s")
    camera = next(line for line in rest if line.split()[0] == "camera")
    assert "3 segment(s)" in camera
    assert "1m30s" in camera
    assert done.stderr == ""


def test_json_output_lists_streams(spool_dir: Path) -> None:
    done = verify(str(spool_dir), "--json")
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert report["streams"]["microphone"]["segments"] == 3
    assert report["streams"]["microphone"]["bytes"] == 12_000
    assert report["streams"]["camera"]["duration"] == 90.0
    assert report["problems"] == []


def test_corruption_and_a_torn_manifest_are_each_reported_with_exit_1(spool_dir: Path) -> None:
    path = spool_dir / SEGMENTS_DIR / "camera-000001.seg"
    blob = bytearray(path.read_bytes())
    blob[-100] ^= 0xFF
    path.write_bytes(bytes(blob))
    manifest = spool_dir / MANIFEST_FILE
    data = manifest.read_bytes()
    manifest.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1][:-20])  # a crash
    key = str(spool_dir.parent / "it.key")
    done = verify(str(spool_dir), "--key", key)
    assert done.returncode == 1
    problems = [line for line in done.stdout.splitlines() if "problem:" in line]
    assert any("camera segment 1 (camera-000001.seg): corrupted" in p for p in problems)
    assert any("manifest.jsonl line 7 is torn" in p for p in problems)
    assert any("screen-000000.seg: not in the manifest" in p for p in problems)
    assert json.loads(verify(str(spool_dir), "--json").stdout)["ok"] is False
    # without the recipient's key the sealed contents cannot be decrypted, but the stored
    # file's digest (body_sha256, what the upload sends) still finds the flipped byte
    structure = verify(str(spool_dir))
    assert "camera segment 1 (camera-000001.seg): corrupted (its file is not the one" in (
        structure.stdout
    )
    assert "line 7 is torn" in structure.stdout


def test_another_recipients_key_is_one_line_exit_2(spool_dir: Path, tmp_path: Path) -> None:
    other, _, _ = crypto.generate_recipient(tmp_path / "other")
    done = verify(str(spool_dir), "--key", str(other))
    assert done.returncode == 2
    assert "not the recording's recipient" in done.stderr and done.stderr.count("\n") == 1


def test_a_folder_that_is_not_a_spool_exits_2_with_one_line(tmp_path: Path) -> None:
    for target in (tmp_path / "missing", tmp_path):
        done = verify(str(target))
        assert done.returncode == 2
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1
        assert done.stderr.startswith("lockdown: ")
        assert "Traceback" not in done.stderr
