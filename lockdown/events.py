"""Append-only, hash-chained session journal (JSON lines).

Each record: ``seq`` (0, 1, 2, …), ``utc`` (ISO 8601), ``mono`` (monotonic seconds),
``type``, ``payload``, ``prev`` (the previous record's ``hash``; 64 zeros for the first)
and ``hash``: the SHA-256 of the record's canonical JSON without ``hash``. Each record is
written with one ``write()`` and fsynced, so a ``kill -9`` loses at most the record being
written; the next :meth:`Journal.open` cuts a torn tail and journals that it did.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lockdown import log
from lockdown.errors import UserError, VerificationFailed

if TYPE_CHECKING:
    from lockdown.paths import Paths

GENESIS: Final = "0" * 64
MAX_RECORD_BYTES: Final = 64 * 1024
_FIELDS: Final = ("seq", "utc", "mono", "type", "payload", "prev", "hash")


@dataclass(frozen=True)
class Event:
    """Something that happened, reported by a guard, recorder or the UI."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(_canonical(body)).hexdigest()


class JournalError(UserError):
    """The journal file cannot be opened or read."""


class Journal:
    """One session's journal. Thread-safe; ``append`` is the :data:`EventSink`."""

    def __init__(self, path: Path, fd: int, seq: int, last_hash: str) -> None:
        self.path = path
        self._fd = fd
        self._seq = seq
        self._last_hash = last_hash
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> Journal:
        """Open (or create) a journal, repairing a torn tail left by a crash."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            raise JournalError(f"{path}: cannot open the journal ({exc.strerror})") from None
        data = b""
        with open(fd, "rb", closefd=False) as fh:
            data = fh.read()
        good_end = 0
        seq, last_hash = 0, GENESIS
        for line_end in _line_ends(data):
            line = data[good_end:line_end]
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                break
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("hash"), str)
                or type(record.get("seq")) is not int
            ):
                break
            seq, last_hash = record["seq"] + 1, record["hash"]
            good_end = line_end + 1
        torn = len(data) - good_end
        if torn:
            os.ftruncate(fd, good_end)
            log.session.warning("Journal %s had a torn tail of %d bytes; cut", path, torn)
        journal = cls(path, fd, seq, last_hash)
        if torn:
            journal.append(Event("journal.repaired", {"dropped_bytes": torn}))
        return journal

    def append(self, event: Event) -> None:
        with self._lock:
            record: dict[str, Any] = {
                "seq": self._seq,
                "utc": datetime.now(UTC).isoformat(timespec="microseconds"),
                "mono": round(time.monotonic(), 6),
                "type": event.type,
                "payload": dict(event.payload),
                "prev": self._last_hash,
            }
            record["hash"] = record_hash(record)
            line = _canonical(record) + b"\n"
            if len(line) > MAX_RECORD_BYTES:
                record["payload"] = {"truncated": True, "bytes": len(line)}
                record["hash"] = record_hash(record)
                line = _canonical(record) + b"\n"
            os.write(self._fd, line)
            os.fsync(self._fd)
            self._seq += 1
            self._last_hash = record["hash"]

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _line_ends(data: bytes) -> Iterator[int]:
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        yield end
        start = end + 1


@dataclass(frozen=True)
class VerifyReport:
    records: int
    first_utc: str | None
    last_utc: str | None


def verify(path: Path) -> VerifyReport:
    """Check the hash chain; raise :class:`VerificationFailed` naming the first bad record."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal ({exc.strerror})") from None
    if data and not data.endswith(b"\n"):
        raise VerificationFailed(
            f"{path}: the last line is cut off (torn by a crash); open the journal once to repair it"
        )
    expected_seq, last_hash = 0, GENESIS
    first_utc = last_utc = None
    for number, raw in enumerate(data.splitlines(), start=1):
        where = f"{path}: line {number}"
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            raise VerificationFailed(
                f"{where}: not a journal record (garbage or a partial edit)"
            ) from None
        if not isinstance(record, dict) or sorted(record) != sorted(_FIELDS):
            raise VerificationFailed(f"{where}: not a journal record (fields missing or added)")
        seq = record["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise VerificationFailed(f"{where}: record has no valid sequence number")
        if record_hash(record) != record["hash"]:
            raise VerificationFailed(f"{where}: record {seq} was edited (its hash does not match)")
        if seq > expected_seq:
            if _appears_later(data, expected_seq, number):
                raise VerificationFailed(
                    f"{where}: records reordered (record {seq} stands before record {expected_seq})"
                )
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
            raise VerificationFailed(f"{where}: record {missing} deleted (next is {seq})")
        if seq < expected_seq:
            raise VerificationFailed(
                f"{where}: record {seq} is out of order or inserted (expected {expected_seq})"
            )
        if record["prev"] != last_hash:
            raise VerificationFailed(
                f"{where}: record {seq} does not follow record {seq - 1} "
                "(a record was edited, inserted or reordered before it)"
            )
        expected_seq, last_hash = seq + 1, record["hash"]
        first_utc = first_utc or record["utc"]
        last_utc = record["utc"]
    return VerifyReport(records=expected_seq, first_utc=first_utc, last_utc=last_utc)


def _appears_later(data: bytes, seq: int, after_line: int) -> bool:
    for raw in data.splitlines()[after_line:]:
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict) and record.get("seq") == seq:
            return True
    return False


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a journal, in order (for tests and reports)."""
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def record_refusal(paths: Paths, target: str, error: Exception) -> None:
    """Keep a refused start in a journal of its own (no session journal was opened yet).

    Never raises: a start refused on a full disk is still refused, with its one line.
    """
    try:
        paths.ensure()
        journal = Journal.open(paths.new_journal())
        journal.append(
            Event("session.refused", {"target": target[:2048], "reason": str(error)[:2048]})
        )
        journal.close()
    except OSError:
        log.init.exception("Cannot journal the refused start")
