"""Append-only, hash-chained session journal (JSON lines): a sink that never raises and
never blocks the GUI.

Each record: ``seq`` (0, 1, 2, …), ``utc`` (ISO 8601, when the event was appended),
``mono`` (monotonic seconds), ``type``, ``payload``, ``prev`` (the previous record's
``hash``; 64 zeros for the first) and ``hash``: the SHA-256 of the record's canonical
JSON without ``hash``. One writer thread appends whole records and fsyncs each batch
(:class:`Journal`), so a ``kill -9`` loses at most the records not yet synced; the next
:meth:`Journal.open` cuts a torn tail and journals that it did. A full disk never reaches
the caller: records wait in memory and the gap is journalled when writing works again.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lockdown import log
from lockdown.durable import AppendLog, DiskError
from lockdown.errors import UserError, VerificationFailed

if TYPE_CHECKING:
    from lockdown.paths import Paths

GENESIS: Final = "0" * 64
MAX_RECORD_BYTES: Final = 64 * 1024
_FIELDS: Final = ("seq", "utc", "mono", "type", "payload", "prev", "hash")
#: A keyed journal's records also carry the previous record's MAC and their own.
_KEYED_FIELDS: Final = (*_FIELDS, "prev_mac", "mac")
#: The first record of a keyed chain: the MAC key wrapped for the recipient, and the head
#: of the chain before it (the previous session's journal), so the history stays linked.
KEYS_RECORD: Final = "journal.keys"
#: The last record of a journal that was closed cleanly.
CLOSED_RECORD: Final = "journal.closed"
#: A closed journal opened and written to again.
REOPENED_RECORD: Final = "journal.reopened"


@dataclass(frozen=True)
class Event:
    """Something that happened, reported by a guard, recorder or the UI."""

    type: str
    payload: Mapping[str, Any] = field(default_factory=dict)


EventSink = Callable[[Event], None]


def _canonical(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 of the record without its ``hash`` and ``mac``."""
    body = {k: v for k, v in record.items() if k not in ("hash", "mac")}
    return hashlib.sha256(_canonical(body)).hexdigest()


def record_mac(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 under the session's MAC key of the record without its ``mac``."""
    body = {k: v for k, v in record.items() if k != "mac"}
    return hmac.new(key, _canonical(body), hashlib.sha256).hexdigest()


class JournalError(UserError):
    """The journal file cannot be opened or read."""


class Health(enum.Enum):
    """Whether the journal's records reach the disk."""

    OK = "ok"
    #: the disk refuses (full, read-only, gone): records wait in memory, bounded
    DEGRADED = "degraded"
    CLOSED = "closed"


@dataclass
class _Pending:
    event: Event
    utc: str
    mono: float


@dataclass
class _Outage:
    """What happened while the disk refused, journalled once writing works again."""

    since: str
    reason: str
    lost: int = 0
    lost_types: dict[str, int] = field(default_factory=dict)
    first_lost: str | None = None
    last_lost: str | None = None


class Journal:
    """One session's journal. ``append`` is the :data:`EventSink`: it never raises and
    never blocks on the disk.

    Appends are queued to one writer thread, which chains them (``seq``, ``prev``,
    ``hash``), appends them through :class:`lockdown.durable.AppendLog` and fsyncs once
    per batch (group commit: the latency is one fsync). A caller that must know a record
    is on the disk before it acts waits with :meth:`append_durable` or :meth:`flush`.

    When the disk refuses, the batch is cut back to the last whole record, the health
    turns :attr:`Health.DEGRADED` and the records wait in memory (at most
    :attr:`MAX_PENDING`; later ones are counted, by type, and lost). The writer retries
    every :attr:`RETRY_S` seconds; once writing works again it first journals
    ``journal.degraded`` (since when, why, how many records were held and lost), then the
    held records with their own times.
    """

    MAX_PENDING: Final = 10_000
    RETRY_S: Final = 1.0

    def __init__(
        self,
        path: Path,
        log_file: AppendLog,
        seq: int,
        last_hash: str,
        *,
        mac_key: bytes | None = None,
        last_mac: str = GENESIS,
    ) -> None:
        self.path = path
        self._file = log_file
        self._seq = seq
        self._last_hash = last_hash
        self._mac_key = mac_key
        self._last_mac = last_mac
        self._cond = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._accepted = 0
        self._durable = 0
        self._closing = False
        self._close_deadline = 0.0
        self._health = Health.OK
        self._outage: _Outage | None = None
        self._health_listeners: list[Callable[[Health], None]] = []
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        mac_key: bytes | None = None,
        keys: Mapping[str, Any] | None = None,
    ) -> Journal:
        """Open (or create) a journal, repairing a torn tail left by a crash.

        Args:
            mac_key: the session's MAC key (held in memory only): every record is also
                HMAC-chained under it.
            keys: with ``mac_key``, the payload of the ``journal.keys`` record that opens
                a new chain (the key wrapped for the recipient, the previous chain's head).
        """
        try:
            log_file = AppendLog.open(path)
            data = log_file.read_all()
        except OSError as exc:
            raise JournalError(f"{path}: cannot open the journal ({exc.strerror})") from None
        good_end = 0
        seq, last_hash, last_mac = 0, GENESIS, GENESIS
        was_closed = False
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
            last_mac = str(record.get("mac", GENESIS))
            was_closed = record.get("type") == CLOSED_RECORD
            good_end = line_end + 1
        torn = len(data) - good_end
        if torn:
            try:
                log_file.truncate(good_end)
            except OSError as exc:
                log_file.close()
                raise JournalError(f"{path}: cannot repair the journal ({exc.strerror})") from None
            log.session.warning("Journal %s had a torn tail of %d bytes; cut", path, torn)
        journal = cls(path, log_file, seq, last_hash, mac_key=mac_key, last_mac=last_mac)
        if mac_key is not None and seq == 0:
            journal.append(Event(KEYS_RECORD, dict(keys or {})))
        if was_closed:  # a closed journal written to again says so
            journal.append(Event(REOPENED_RECORD, {}))
        if torn:
            journal.append(Event("journal.repaired", {"dropped_bytes": torn}))
        return journal

    def head(self) -> dict[str, Any]:
        """The chain's current head (what the proctoring service anchors): records
        written so far, the last record's hash and MAC."""
        with self._cond:
            return {"records": self._seq, "hash": self._last_hash, "mac": self._last_mac}

    # -- the sink ---------------------------------------------------------------------

    @property
    def health(self) -> Health:
        return self._health

    def on_health(self, listener: Callable[[Health], None]) -> None:
        """Call ``listener`` (on the writer thread) whenever the health changes."""
        self._health_listeners.append(listener)

    def append(self, event: Event) -> None:
        """Queue ``event``; never raises, never waits for the disk."""
        self._accept(event)

    def _accept(self, event: Event) -> int:
        pending = _Pending(
            event,
            datetime.now(UTC).isoformat(timespec="microseconds"),
            round(time.monotonic(), 6),
        )
        with self._cond:
            if self._closing and not self._thread.is_alive():
                log.session.error("Journal closed; event %s not journalled", event.type)
                return self._accepted
            if len(self._queue) >= self.MAX_PENDING:
                self._lose(pending)
                return self._accepted
            self._queue.append(pending)
            self._accepted += 1
            self._cond.notify_all()
            return self._accepted

    def _lose(self, pending: _Pending) -> None:
        outage = self._outage or _Outage(pending.utc, "too many records waiting")
        self._outage = outage
        outage.lost += 1
        outage.lost_types[pending.event.type] = outage.lost_types.get(pending.event.type, 0) + 1
        outage.first_lost = outage.first_lost or pending.utc
        outage.last_lost = pending.utc

    def append_durable(self, event: Event, timeout: float = 5.0) -> bool:
        """Append ``event`` and wait until it is on the disk; False after ``timeout``."""
        target = self._accept(event)
        return self._wait(target, timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record appended so far is on the disk; False after ``timeout``."""
        with self._cond:
            target = self._accepted
        return self._wait(target, timeout)

    def _wait(self, target: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._durable < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(left)
            return True

    def close(self, timeout: float = 5.0) -> None:
        """Write what waits (for at most ``timeout`` s), stop the writer, close the file."""
        with self._cond:
            if self._closing:
                return
            self._queue.append(
                _Pending(
                    Event(CLOSED_RECORD, {}),
                    datetime.now(UTC).isoformat(timespec="microseconds"),
                    round(time.monotonic(), 6),
                )
            )
            self._accepted += 1
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            self._cond.notify_all()
        self._thread.join(timeout + 1.0)
        with self._cond:
            left = len(self._queue)
        if left:
            log.session.error(
                "Journal %s closed with %d records not written (%s)",
                self.path,
                left,
                self._outage.reason if self._outage else "the disk was too slow",
            )
        self._file.close()
        self._set_health(Health.CLOSED)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writer thread ------------------------------------------------------------

    def _set_health(self, health: Health) -> None:
        if health is self._health:
            return
        self._health = health
        for listener in self._health_listeners:
            try:
                listener(health)
            except Exception:  # a listener must not stop the journal
                log.session.exception("Journal health listener failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue and self._closing:
                    return
                batch = list(self._queue)
                outage = self._outage
            written = self._write(batch, outage)
            with self._cond:
                for _ in range(written):
                    self._queue.popleft()
                self._durable += written
                self._cond.notify_all()
                failed = written < len(batch)
            if not failed:
                self._set_health(Health.OK)
                continue
            with self._cond:
                left = self._close_deadline - time.monotonic()
                if self._closing and left <= 0:
                    return  # close() reports what is left
                self._cond.wait(min(self.RETRY_S, left) if self._closing else self.RETRY_S)

    def _write(self, batch: list[_Pending], outage: _Outage | None) -> int:
        """Append and fsync ``batch`` (after the outage's record); how many got written.

        Records are appended one by one; the first one the disk refuses stops the batch
        (the file is cut back to the record before it), and the ones before are synced.
        """
        records: list[tuple[str, float, str, Mapping[str, Any]]] = []
        if outage is not None:
            now = datetime.now(UTC).isoformat(timespec="microseconds")
            payload: dict[str, Any] = {
                "since": outage.since,
                "until": now,
                "reason": outage.reason,
                "held": len(batch),
                "lost": outage.lost,
                "lost_types": dict(outage.lost_types),
                "first_lost": outage.first_lost,
                "last_lost": outage.last_lost,
            }
            records.append((now, round(time.monotonic(), 6), "journal.degraded", payload))
        records.extend((p.utc, p.mono, p.event.type, p.event.payload) for p in batch)
        start, seq, last_hash, last_mac = (
            self._file.end,
            self._seq,
            self._last_hash,
            self._last_mac,
        )
        appended = 0
        failure: DiskError | None = None
        for utc, mono, kind, given in records:
            values = (  # the closing record counts what came before it
                {"records": seq, "last_hash": last_hash, "last_mac": last_mac}
                if kind == CLOSED_RECORD
                else given
            )
            line, next_hash, next_mac = _line(
                seq=seq,
                utc=utc,
                mono=mono,
                kind=kind,
                payload=values,
                prev=(last_hash, last_mac),
                mac_key=self._mac_key,
            )
            try:
                self._file.append(line)
            except DiskError as exc:
                failure = exc
                break
            seq, last_hash, last_mac = seq + 1, next_hash, next_mac
            appended += 1
        if appended:
            try:
                self._file.sync()
            except DiskError as exc:
                failure, appended = exc, 0
                seq, last_hash, last_mac = self._seq, self._last_hash, self._last_mac
                with contextlib.suppress(OSError):
                    self._file.truncate(start)
        with self._cond:
            self._seq, self._last_hash, self._last_mac = seq, last_hash, last_mac
        written = appended - (1 if outage is not None and appended else 0)
        if outage is not None and appended:
            with self._cond:
                if self._outage is outage:
                    self._outage = None
        if failure is not None:
            with self._cond:
                if self._outage is None:
                    pending = batch[written] if written < len(batch) else batch[-1]
                    self._outage = _Outage(pending.utc, failure.strerror or str(failure))
            if self._health is not Health.DEGRADED:
                log.session.error(
                    "Journal %s cannot be written (%s); records wait in memory",
                    self.path,
                    failure.strerror,
                )
            self._set_health(Health.DEGRADED)
        return written


def _line(
    *,
    seq: int,
    utc: str,
    mono: float,
    kind: str,
    payload: Mapping[str, Any],
    prev: tuple[str, str],
    mac_key: bytes | None,
) -> tuple[bytes, str, str]:
    """One chained journal line, its hash and its MAC (GENESIS when unkeyed)."""
    record: dict[str, Any] = {
        "seq": seq,
        "utc": utc,
        "mono": mono,
        "type": kind,
        "payload": dict(payload),
        "prev": prev[0],
    }
    if mac_key is not None:
        record["prev_mac"] = prev[1]

    def seal() -> bytes:
        record["hash"] = record_hash(record)
        if mac_key is not None:
            record["mac"] = record_mac(record, mac_key)
        return _canonical(record) + b"\n"

    line = seal()
    if len(line) > MAX_RECORD_BYTES:
        record["payload"] = {"truncated": True, "bytes": len(line)}
        line = seal()
    return line, str(record["hash"]), str(record.get("mac", GENESIS))


def _line_ends(data: bytes) -> Iterator[int]:
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        yield end
        start = end + 1


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify` found in a journal whose chain is intact."""

    records: int
    first_utc: str | None
    last_utc: str | None
    #: the journal ends with its closing record (and nothing after it)
    closed: bool = False
    #: the records carry MACs (a keyed chain)
    keyed: bool = False
    #: the MACs were checked with the MAC key
    macs_checked: bool = False
    #: the head of the chain this one continues (from its ``journal.keys`` record)
    continues: Mapping[str, Any] | None = None

    @property
    def status(self) -> str:
        if not self.records:
            return "empty"
        return "intact and closed" if self.closed else "intact but not closed"


def keys_record(path: Path) -> Mapping[str, Any] | None:
    """The payload of a keyed journal's ``journal.keys`` record (None when unkeyed)."""
    try:
        with path.open("rb") as fh:
            first = json.loads(fh.readline() or b"null")
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(first, dict) and first.get("type") == KEYS_RECORD:
        payload = first.get("payload")
        return payload if isinstance(payload, dict) else None
    return None


def verify(path: Path, mac_key: bytes | None = None) -> VerifyReport:
    """Check the hash chain (and with ``mac_key`` the MAC chain).

    Raises:
        VerificationFailed: naming the first bad record (edited, deleted, inserted,
            reordered, or — with the key — re-chained by someone without it).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"{path}: cannot read the journal ({exc.strerror})") from None
    if data and not data.endswith(b"\n"):
        raise VerificationFailed(
            f"{path}: the last line is cut off (torn by a crash); open the journal once to repair it"
        )
    expected_seq, last_hash, last_mac = 0, GENESIS, GENESIS
    first_utc = last_utc = None
    keyed = False
    closed = False
    continues: Mapping[str, Any] | None = None
    for number, raw in enumerate(data.splitlines(), start=1):
        where = f"{path}: line {number}"
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            raise VerificationFailed(
                f"{where}: not a journal record (garbage or a partial edit)"
            ) from None
        if number == 1 and isinstance(record, dict):
            keyed = "mac" in record
        fields = _KEYED_FIELDS if keyed else _FIELDS
        if not isinstance(record, dict) or sorted(record) != sorted(fields):
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
        if (
            keyed
            and mac_key is not None
            and (record["prev_mac"] != last_mac or record_mac(record, mac_key) != record["mac"])
        ):
            raise VerificationFailed(
                f"{where}: record {seq} was edited or the journal re-chained from there "
                "(its MAC does not match the session's key)"
            )
        if closed and record["type"] != REOPENED_RECORD:
            raise VerificationFailed(f"{where}: record {seq} stands after the closing record")
        if record["type"] == KEYS_RECORD and seq == 0 and isinstance(record["payload"], dict):
            continues = record["payload"].get("previous")
        if record["type"] == REOPENED_RECORD:
            closed = False
        if record["type"] == CLOSED_RECORD:
            payload = record["payload"]
            if not isinstance(payload, dict) or payload.get("records") != seq:
                raise VerificationFailed(f"{where}: the closing record does not count {seq}")
            closed = True
        expected_seq, last_hash = seq + 1, record["hash"]
        last_mac = str(record.get("mac", GENESIS))
        first_utc = first_utc or record["utc"]
        last_utc = record["utc"]
    return VerifyReport(
        records=expected_seq,
        first_utc=first_utc,
        last_utc=last_utc,
        closed=closed,
        keyed=keyed,
        macs_checked=keyed and mac_key is not None,
        continues=continues,
    )


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
            Event(
                "session.refused",
                {"target": log.redact(target)[:2048], "reason": log.redact(str(error))[:2048]},
            )
        )
        journal.close()
    except OSError:
        log.init.exception("Cannot journal the refused start")
