"""Crash-safe writes: whole records or nothing, atomic files, durable folders."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown import durable
from lockdown.durable import AppendLog, DiskError


def test_records_are_appended_whole_and_read_back(tmp_path: Path) -> None:
    log = AppendLog.open(tmp_path / "new" / "deeper" / "log")
    for i in range(3):
        log.append(f"record {i}\n".encode())
    log.sync()
    assert log.read_all() == b"record 0\nrecord 1\nrecord 2\n"
    assert log.end == len(log.read_all())
    log.close()
    assert oct((tmp_path / "new").stat().st_mode & 0o777) == "0o700"


def test_a_refused_write_cuts_back_to_the_last_whole_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = AppendLog.open(tmp_path / "log")
    log.append(b"whole\n")
    real = os.pwrite

    def half_then_full(fd: int, data: bytes, offset: int) -> int:
        real(fd, bytes(data[:3]), offset)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable.os, "pwrite", half_then_full)
    with pytest.raises(DiskError) as caught:
        log.append(b"second record\n")
    assert caught.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert log.read_all() == b"whole\n"
    log.append(b"third\n")
    assert log.read_all() == b"whole\nthird\n"


def test_short_writes_are_continued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.pwrite
    monkeypatch.setattr(durable.os, "pwrite", lambda fd, data, off: real(fd, bytes(data[:2]), off))
    log = AppendLog.open(tmp_path / "log")
    log.append(b"a longer record\n")
    assert log.read_all() == b"a longer record\n"


# A child with a file size limit: EFBIG after a short write (Python ignores SIGXFSZ).
LIMITED = """
import resource, sys
from pathlib import Path
from lockdown.durable import AppendLog, DiskError
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
log = AppendLog.open(Path(sys.argv[1]))
written = 0
try:
    for i in range(10):
        log.append(b"%02d" % i + b"x" * 37 + b"\\n")  # 40 bytes
        written += 1
except DiskError as exc:
    print(written, exc.errno)
"""


def test_the_file_size_limit_leaves_only_whole_records(tmp_path: Path) -> None:
    path = tmp_path / "log"
    out = subprocess.run(
        [sys.executable, "-c", LIMITED, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert out == ["2", str(errno.EFBIG)]  # the third would cross 100 bytes
    assert path.read_bytes().count(b"\n") == 2 and len(path.read_bytes()) == 80


def test_atomic_write_replaces_whole_or_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    durable.atomic_write(path, b"one")
    durable.atomic_write(path, b"two", 0o600)
    assert path.read_bytes() == b"two"
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    def refuse(*_: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(durable.os, "write", refuse)
    with pytest.raises(DiskError, match="No space left"):
        durable.atomic_write(path, b"three")
    monkeypatch.undo()
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left
