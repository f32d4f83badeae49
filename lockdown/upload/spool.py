"""The durable, encrypted on-disk spool of recorded segments (format and policy: docs/spool.md).

A spool folder holds ``spool.json`` (format, session id, key fingerprint and where the key
lives), ``manifest.jsonl`` (one JSON line per finalized or dropped segment, appended and
fsynced) and ``segments/<stream>-<seq>.seg`` (a clear, authenticated header and the
AES-256-GCM sealed media). :meth:`Spool.add` writes a segment to a temporary file, fsyncs,
renames, fsyncs the folder and only then appends the manifest record, so a ``kill -9`` at
any moment leaves every finalized segment intact. :meth:`Spool.open` on an existing folder
cuts a torn manifest tail, discards unfinished ``.tmp`` files and recovers a renamed
segment whose manifest record was lost, journalling each repair. The size cap drops the
least valuable stream first (:data:`DROP_ORDER`), journalling every drop.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import struct
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from lockdown import durable, log
from lockdown.capture.base import Segment, Stream
from lockdown.durable import AppendLog
from lockdown.events import GENESIS, Event, EventSink, record_hash, record_mac
from lockdown.upload import crypto
from lockdown.upload.base import SpoolError

FORMAT: Final = "lockdown-spool"
VERSION: Final = 2
HEADER_FILE: Final = "spool.json"
MANIFEST_FILE: Final = "manifest.jsonl"
SEGMENTS_DIR: Final = "segments"
SEGMENT_MAGIC: Final = b"LDSPSEG1"
MAX_SEGMENT_HEADER: Final = 64 * 1024
#: Warn (``spool.near_full``) when the stored segments reach this share of the cap.
NEAR_FULL: Final = 0.8
#: Least valuable first: when full, the oldest screen segments go first, then the oldest
#: camera segments, then the oldest microphone segments. A new segment may only push out
#: segments of its own or a less valuable stream; otherwise it is dropped itself.
DROP_ORDER: Final = (Stream.SCREEN, Stream.CAMERA, Stream.MICROPHONE)

_RANK: Final = {stream: rank for rank, stream in enumerate(DROP_ORDER)}
_HEADER_FIELDS: Final = (
    "stream",
    "seq",
    "start_utc",
    "end_utc",
    "duration",
    "units",
    "mime",
    "bytes",
    "sha256",
)


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestRecord:
    """One finalized segment as listed in the manifest."""

    stream: Stream
    seq: int
    start_utc: datetime
    end_utc: datetime
    duration: float
    #: video frames or audio samples
    units: int
    mime: str
    #: plaintext media size
    bytes: int
    #: SHA-256 (hex) of the plaintext media
    sha256: str
    ciphertext_bytes: int
    #: file name inside ``segments/``
    file: str

    @property
    def key(self) -> tuple[Stream, int]:
        return (self.stream, self.seq)

    def header_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream.value,
            "seq": self.seq,
            "start_utc": self.start_utc.isoformat(),
            "end_utc": self.end_utc.isoformat(),
            "duration": self.duration,
            "units": self.units,
            "mime": self.mime,
            "bytes": self.bytes,
            "sha256": self.sha256,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "segment",
            **self.header_json(),
            "ciphertext_bytes": self.ciphertext_bytes,
            "file": self.file,
        }


@dataclass(frozen=True)
class DroppedRecord:
    """A segment removed (or never stored) because of the size cap."""

    stream: Stream
    seq: int
    file: str
    reason: str
    utc: str

    @property
    def key(self) -> tuple[Stream, int]:
        return (self.stream, self.seq)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "dropped",
            "stream": self.stream.value,
            "seq": self.seq,
            "file": self.file,
            "reason": self.reason,
            "utc": self.utc,
        }


ManifestEntry = ManifestRecord | DroppedRecord


@dataclass
class ManifestParse:
    """What :func:`parse_manifest` made of a manifest file."""

    #: (byte offset of the line, entry) for every well-formed line, in file order
    entries: list[tuple[int, ManifestEntry]] = field(default_factory=list)
    #: (line number, what is wrong) for every bad line
    problems: list[tuple[int, str]] = field(default_factory=list)
    #: byte offset of the first bad line (where a repair cuts), or None
    first_bad: int | None = None
    #: (line number, the line's object) of every well-formed line, closing lines included
    lines: list[tuple[int, dict[str, Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class StreamSummary:
    stream: str
    segments: int = 0
    duration: float = 0.0
    #: plaintext media bytes
    bytes: int = 0
    ciphertext_bytes: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class SpoolReport:
    """The result of :func:`verify_folder`."""

    folder: Path
    session_id: str
    streams: dict[str, StreamSummary]
    problems: list[str]
    #: False when the key was not available and segment contents were not decrypted
    contents_checked: bool
    #: the manifest ends with its closing line
    closed: bool = False
    #: the manifest lines carry MACs, and whether they were checked
    keyed: bool = False
    macs_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "folder": str(self.folder),
            "session_id": self.session_id,
            "contents_checked": self.contents_checked,
            "closed": self.closed,
            "keyed": self.keyed,
            "macs_checked": self.macs_checked,
            "streams": {name: s.__dict__ for name, s in self.streams.items()},
            "problems": list(self.problems),
        }


@dataclass(frozen=True)
class SpoolHeader:
    """``spool.json``: what a reader needs before it can open a segment."""

    session_id: str
    created_utc: str
    key_id: str
    #: "wrapped" (for the recipient, in ``key_wrapping``) or "caller" (held by the program
    #: that wrote the spool: tests and benchmarks); a clear key is never stored
    key_location: str
    key_wrapping: crypto.KeyWrapping = field(default_factory=crypto.KeyWrapping)
    #: the session's MAC key (the manifest's MAC chain), wrapped for the same recipient
    mac_key_wrapping: crypto.KeyWrapping | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "session_id": self.session_id,
            "created_utc": self.created_utc,
            "cipher": crypto.CIPHER,
            "key_id": self.key_id,
            "key": {"location": self.key_location},
            "key_wrapping": self.key_wrapping.to_json(),
            **(
                {"mac_key_wrapping": self.mac_key_wrapping.to_json()}
                if self.mac_key_wrapping
                else {}
            ),
        }


# -- parsing (never raises anything but SpoolError / returns problems) -------------------


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError("not a non-negative integer")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("not a string")
    return value


def _file_name(value: object) -> str:
    name = _str(value)
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ValueError("not a plain file name")
    return name


def _header_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    duration = obj["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError("duration is not a number")
    if not math.isfinite(duration) or duration < 0:
        raise ValueError("duration out of range")
    sha = _str(obj["sha256"])
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ValueError("sha256 is not 64 hex digits")
    return {
        "stream": Stream(obj["stream"]),
        "seq": _int(obj["seq"]),
        "start_utc": datetime.fromisoformat(_str(obj["start_utc"])),
        "end_utc": datetime.fromisoformat(_str(obj["end_utc"])),
        "duration": float(duration),
        "units": _int(obj["units"]),
        "mime": _str(obj["mime"]),
        "bytes": _int(obj["bytes"]),
        "sha256": sha,
    }


#: Manifest lines that are part of the chain but list no segment.
CHAIN_KINDS: Final = frozenset({"closed", "reopened"})


def _chain_fields(obj: Mapping[str, Any]) -> None:
    if not isinstance(obj.get("prev"), str) or not isinstance(obj.get("hash"), str):
        raise ValueError("no chain fields")


def chain_line(
    obj: Mapping[str, Any], prev: tuple[str, str], mac_key: bytes | None
) -> tuple[bytes, str, str]:
    """A manifest line chained after ``prev`` (hash, MAC): its bytes, hash and MAC.

    Every line carries the previous line's hash and its own (structure, checked without
    a key); with the session's MAC key also the previous line's MAC and its own.
    """
    record: dict[str, Any] = {**obj, "prev": prev[0]}
    if mac_key is not None:
        record["prev_mac"] = prev[1]
    record["hash"] = record_hash(record)
    if mac_key is not None:
        record["mac"] = record_mac(record, mac_key)
    line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return line.encode() + b"\n", str(record["hash"]), str(record.get("mac", GENESIS))


@dataclass(frozen=True)
class ChainReport:
    """What the manifest's chains say."""

    closed: bool
    keyed: bool
    macs_checked: bool
    problems: list[str]
    #: the last line's hash and MAC (where appending goes on)
    head: tuple[str, str]


def check_chain(lines: list[tuple[int, dict[str, Any]]], mac_key: bytes | None) -> ChainReport:
    """Check the hash chain (and with ``mac_key`` the MAC chain) of the manifest lines."""
    problems: list[str] = []
    last_hash, last_mac = GENESIS, GENESIS
    keyed = bool(lines) and "mac" in lines[0][1]
    closed = False
    for count, (number, obj) in enumerate(lines):
        where = f"{MANIFEST_FILE} line {number}"
        if obj.get("prev") != last_hash:
            problems.append(
                f"{where} does not follow the line before (a line deleted, inserted or reordered)"
            )
        elif record_hash(obj) != obj.get("hash"):
            problems.append(f"{where} was edited (its hash does not match)")
        elif (
            keyed
            and mac_key is not None
            and (obj.get("prev_mac") != last_mac or record_mac(obj, mac_key) != obj.get("mac"))
        ):
            problems.append(
                f"{where} was edited or the manifest re-chained from there (its MAC does not "
                "match the session's key)"
            )
        kind = obj.get("kind")
        if closed and kind != "reopened":
            problems.append(f"{where} stands after the closing line")
        closed = kind == "closed" or (closed and kind != "reopened")
        if kind == "closed" and obj.get("lines") != count:
            problems.append(f"{where}: the closing line does not count {count} lines")
        last_hash, last_mac = str(obj.get("hash")), str(obj.get("mac", GENESIS))
    return ChainReport(
        closed, keyed, keyed and mac_key is not None, problems, (last_hash, last_mac)
    )


def _entry(obj: object) -> ManifestEntry:
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    kind = obj.get("kind")
    if kind == "segment":
        return ManifestRecord(
            **_header_fields(obj),
            ciphertext_bytes=_int(obj["ciphertext_bytes"]),
            file=_file_name(obj["file"]),
        )
    if kind == "dropped":
        return DroppedRecord(
            stream=Stream(obj["stream"]),
            seq=_int(obj["seq"]),
            file=_file_name(obj["file"]),
            reason=_str(obj["reason"]),
            utc=_str(obj["utc"]),
        )
    raise ValueError("unknown kind")


def parse_manifest(data: bytes) -> ManifestParse:
    """Every well-formed line of a manifest and every bad one. Never raises."""
    result = ManifestParse()
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        end = data.find(b"\n", offset)
        problem = None
        if end == -1:
            next_offset = len(data)
            problem = "is torn (cut off by a crash; opening the spool repairs it)"
        else:
            line, next_offset = data[offset:end], end + 1
            try:
                obj = json.loads(line)
                if isinstance(obj, dict) and obj.get("kind") in CHAIN_KINDS:
                    _chain_fields(obj)
                else:
                    result.entries.append((offset, _entry(obj)))
                result.lines.append((number, obj))
            except (ValueError, KeyError, TypeError, RecursionError):
                problem = "is not a manifest record (garbled; opening the spool cuts it)"
        if problem:
            result.problems.append((number, problem))
            if result.first_bad is None:
                result.first_bad = offset
        offset = next_offset
    return result


def _count_lines(data: bytes) -> int:
    return data.count(b"\n")


def segment_file_name(stream: Stream, seq: int) -> str:
    return f"{stream.value}-{seq:06d}.seg"


def _aad(session_id: str, clear: bytes) -> bytes:
    return b"lockdown-spool/1\0" + session_id.encode("ascii", "replace") + b"\0" + clear


def encode_segment(key: bytes, session_id: str, record: ManifestRecord, data: bytes) -> bytes:
    """The bytes of a segment file: magic, header length, clear JSON header, sealed media."""
    header = json.dumps(record.header_json(), sort_keys=True, separators=(",", ":")).encode()
    clear = SEGMENT_MAGIC + struct.pack(">I", len(header)) + header
    return clear + crypto.seal(key, data, _aad(session_id, clear))


def decode_segment(key: bytes | None, session_id: str, blob: bytes) -> tuple[dict[str, Any], bytes]:
    """The header fields and (with a key) the verified plaintext media of a segment file.

    Raises:
        SpoolError: not a segment file, the tag does not match, or the SHA-256 or size of
            the plaintext differs from the header.
    """
    if not blob.startswith(SEGMENT_MAGIC) or len(blob) < len(SEGMENT_MAGIC) + 4:
        raise SpoolError("not a spool segment file")
    (size,) = struct.unpack(">I", blob[len(SEGMENT_MAGIC) : len(SEGMENT_MAGIC) + 4])
    start = len(SEGMENT_MAGIC) + 4
    if size > MAX_SEGMENT_HEADER or start + size > len(blob):
        raise SpoolError("segment header is cut short or too long")
    try:
        header = _header_fields(json.loads(blob[start : start + size]))
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SpoolError("segment header is garbled") from None
    if key is None:
        return header, b""
    clear = blob[: start + size]
    data = crypto.unseal(key, blob[start + size :], _aad(session_id, clear))
    if len(data) != header["bytes"] or hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise SpoolError("the media does not match its SHA-256")
    return header, data


def _read_header(folder: Path) -> SpoolHeader:
    path = folder / HEADER_FILE
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SpoolError(f"{folder}: not a Lockdown spool ({HEADER_FILE} is missing)") from None
    except OSError as exc:
        raise SpoolError(f"{path}: cannot read the spool header ({exc.strerror})") from None
    except (ValueError, RecursionError):
        raise SpoolError(f"{path}: the spool header is garbled") from None
    try:
        if obj["format"] != FORMAT or obj["version"] != VERSION:
            raise ValueError("format")
        return SpoolHeader(
            session_id=_str(obj["session_id"]),
            created_utc=_str(obj["created_utc"]),
            key_id=_str(obj["key_id"]),
            key_location=_str(obj["key"]["location"]),
            key_wrapping=crypto.KeyWrapping.from_json(obj.get("key_wrapping") or {}),
            mac_key_wrapping=(
                crypto.KeyWrapping.from_json(obj["mac_key_wrapping"])
                if obj.get("mac_key_wrapping")
                else None
            ),
        )
    except (ValueError, KeyError, TypeError, AttributeError, crypto.SpoolKeyError):
        raise SpoolError(
            f"{path}: not a spool header of this version ({FORMAT} v{VERSION})"
        ) from None


def _label(session_id: str) -> str:
    """What the wrapped key is bound to (the spool's session id)."""
    return f"lockdown-spool/{session_id}"


def _mac_label(session_id: str) -> str:
    return f"lockdown-spool-mac/{session_id}"


def open_keys(folder: Path, private: X25519PrivateKey) -> tuple[bytes, bytes | None]:
    """The spool's session key and MAC key, unwrapped with the recipient's private key."""
    key = open_key(folder, private)
    header = _read_header(folder)
    if header.mac_key_wrapping is None:
        return key, None
    try:
        mac_key = crypto.unwrap(
            header.mac_key_wrapping, private, label=_mac_label(header.session_id)
        )
    except crypto.SpoolKeyError as exc:
        raise crypto.SpoolKeyError(f"{folder}: {exc}") from None
    return key, mac_key


def open_key(folder: Path, private: X25519PrivateKey) -> bytes:
    """The spool's session key, unwrapped with the recipient's private key.

    Raises:
        SpoolError: not a spool, or the key is not wrapped for this recipient.
    """
    header = _read_header(folder)
    if header.key_location != "wrapped":
        raise crypto.SpoolKeyError(
            f"{folder}: the spool key was held by the program that wrote it and is gone"
        )
    try:
        key = crypto.unwrap(header.key_wrapping, private, label=_label(header.session_id))
    except crypto.SpoolKeyError as exc:
        raise crypto.SpoolKeyError(f"{folder}: {exc}") from None
    if crypto.key_id(key) != header.key_id:
        raise crypto.SpoolKeyError(f"{folder}: the unwrapped key does not fit this spool")
    return key


def _apply(
    entries: Iterable[ManifestEntry],
) -> tuple[dict[tuple[Stream, int], ManifestRecord], dict[tuple[Stream, int], DroppedRecord]]:
    live: dict[tuple[Stream, int], ManifestRecord] = {}
    dropped: dict[tuple[Stream, int], DroppedRecord] = {}
    for entry in entries:
        if isinstance(entry, DroppedRecord):
            live.pop(entry.key, None)
            dropped[entry.key] = entry
        elif entry.key not in dropped:
            live.setdefault(entry.key, entry)
    return live, dropped


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free space or lower proctoring.spool_max_mb"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR):
        return f"the folder is not writable ({exc.strerror}); choose a writable spool folder"
    return exc.strerror or str(exc)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- the spool ----------------------------------------------------------------------------


class Spool:
    """One session's spool folder. Thread-safe: recorders call :meth:`add` from their threads."""

    def __init__(
        self,
        folder: Path,
        header: SpoolHeader,
        key: bytes,
        *,
        report: EventSink,
        max_bytes: int,
        manifest: AppendLog,
        mac_key: bytes | None = None,
    ) -> None:
        self.folder = folder
        self.header = header
        self.max_bytes = max_bytes
        self._key = key
        self._mac_key = mac_key
        #: the manifest chain's last line (hash, MAC)
        self._head = (GENESIS, GENESIS)
        self._report = report
        self._manifest: AppendLog | None = manifest
        self._segments = folder / SEGMENTS_DIR
        self._lock = threading.Lock()
        self._live: dict[tuple[Stream, int], ManifestRecord] = {}
        self._dropped: dict[tuple[Stream, int], DroppedRecord] = {}
        self._used = 0
        self._warned = False

    @property
    def session_id(self) -> str:
        return self.header.session_id

    @property
    def used_bytes(self) -> int:
        """Ciphertext bytes of the stored segments (what the cap limits)."""
        with self._lock:
            return self._used

    # -- opening and recovery ------------------------------------------------------------

    @classmethod
    def open(
        cls,
        folder: Path,
        *,
        report: EventSink,
        max_bytes: int,
        recipient: X25519PublicKey | None = None,
        key: bytes | None = None,
        mac_key: bytes | None = None,
    ) -> Spool:
        """Create or reopen the spool in ``folder``, repairing what a crash left behind.

        Args:
            folder: the spool folder (created if missing).
            report: where spool events are journalled.
            max_bytes: the size cap (ciphertext bytes of stored segments).
            recipient: a new spool's session key is made in memory and stored only
                wrapped for this public key (the proctoring service's or the
                organisation's). No recipient, no recording.
            key: else (and to reopen a spool) the 32-byte session key, held by the
                caller (unwrapped with :func:`open_keys`, or a test's own); never stored.
            mac_key: to reopen a keyed spool and go on with its MAC chain (a new spool
                with a recipient makes its own).

        Raises:
            SpoolError: the folder cannot be created or written, is not a spool, or the
                key does not fit; journalled as ``spool.error``.
        """
        folder = Path(folder)
        try:
            if max_bytes <= 0:
                raise SpoolError(f"{folder}: the spool size cap must be positive")
            return cls._open(folder, report, max_bytes, key, recipient, mac_key=mac_key)
        except SpoolError as exc:
            report(Event("spool.error", {"folder": str(folder), "error": str(exc)}))
            log.upload.error("%s", exc)
            raise

    @classmethod
    def _open(
        cls,
        folder: Path,
        report: EventSink,
        max_bytes: int,
        key: bytes | None,
        recipient: X25519PublicKey | None,
        *,
        mac_key: bytes | None = None,
    ) -> Spool:
        if key is not None:
            crypto.check_key(key)
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            (folder / SEGMENTS_DIR).mkdir(exist_ok=True, mode=0o700)
        except OSError as exc:
            raise SpoolError(f"{folder}: cannot create the spool folder: {_why(exc)}") from None
        if (folder / HEADER_FILE).exists():
            header = _read_header(folder)
            if key is None:
                raise crypto.SpoolKeyError(
                    f"{folder}: an existing spool opens only with its session key (unwrap it "
                    "with the recipient's private key)"
                )
            if crypto.key_id(key) != header.key_id:
                raise crypto.SpoolKeyError(f"{folder}: the key given does not fit this spool")
            created = False
        else:
            if (folder / MANIFEST_FILE).exists() or any((folder / SEGMENTS_DIR).iterdir()):
                raise SpoolError(f"{folder}: not a Lockdown spool ({HEADER_FILE} is missing)")
            header, key, mac_key = cls._create(folder, key, recipient)
            created = True
        try:
            manifest = AppendLog.open(folder / MANIFEST_FILE)
        except OSError as exc:
            raise SpoolError(f"{folder}: cannot open the manifest: {_why(exc)}") from None
        spool = cls(
            folder,
            header,
            key,
            report=report,
            max_bytes=max_bytes,
            manifest=manifest,
            mac_key=mac_key,
        )
        try:
            spool._recover()
        except OSError as exc:
            manifest.close()
            raise SpoolError(f"{folder}: cannot repair the spool: {_why(exc)}") from None
        except SpoolError:
            manifest.close()
            raise
        report(
            Event(
                "spool.opened",
                {
                    "folder": str(folder),
                    "session_id": header.session_id,
                    "created": created,
                    "segments": len(spool._live),
                    "used_bytes": spool._used,
                    "max_bytes": max_bytes,
                    "key_location": header.key_location,
                },
            )
        )
        log.upload.info(
            "Spool %s opened: %d segments, %d of %d bytes",
            folder,
            len(spool._live),
            spool._used,
            max_bytes,
        )
        return spool

    @classmethod
    def _create(
        cls, folder: Path, key: bytes | None, recipient: X25519PublicKey | None
    ) -> tuple[SpoolHeader, bytes, bytes | None]:
        session_id = os.urandom(16).hex()
        wrapping = crypto.KeyWrapping()
        mac_key: bytes | None = None
        mac_wrapping: crypto.KeyWrapping | None = None
        if recipient is not None:
            key = crypto.new_key()
            mac_key = crypto.new_key()
            wrapping = crypto.wrap(key, recipient, label=_label(session_id))
            mac_wrapping = crypto.wrap(mac_key, recipient, label=_mac_label(session_id))
            location = "wrapped"
        elif key is not None:
            location = "caller"
        else:
            raise crypto.SpoolKeyError(
                f"{folder}: no recipient key for the recording; set proctoring.recipient_key "
                "in the organisation file (or --recipient), from `lockdown keys generate "
                "--recipient`"
            )
        header = SpoolHeader(
            session_id=session_id,
            created_utc=_now(),
            key_id=crypto.key_id(key),
            key_location=location,
            key_wrapping=wrapping,
            mac_key_wrapping=mac_wrapping,
        )
        try:
            text = json.dumps(header.to_json(), indent=2) + "\n"
            durable.atomic_write(folder / HEADER_FILE, text.encode("utf-8"), 0o644)
        except OSError as exc:
            raise SpoolError(f"{folder}: cannot write the spool header: {_why(exc)}") from None
        return header, key, mac_key

    def _recover(self) -> None:
        manifest = self._open_manifest()
        data = manifest.read_all()
        parsed = parse_manifest(data)
        entries = [entry for _, entry in parsed.entries]
        if parsed.first_bad is not None:
            entries = [entry for offset, entry in parsed.entries if offset < parsed.first_bad]
            manifest.truncate(parsed.first_bad)
            manifest.sync()
            line = parsed.problems[0][0]
            cut = len(data) - parsed.first_bad
            self._report(
                Event("spool.repaired", {"file": MANIFEST_FILE, "line": line, "cut_bytes": cut})
            )
            log.upload.warning("Spool manifest: cut %d bytes from line %d on", cut, line)
        kept = [
            (n, obj)
            for n, obj in parsed.lines
            if parsed.first_bad is None or n < parsed.problems[0][0]
        ]
        self._head = check_chain(kept, None).head
        if kept and kept[-1][1].get("kind") == "closed":  # written to again: say so
            self._append_line({"kind": "reopened", "utc": _now()})
        self._live, self._dropped = _apply(entries)
        for gone in self._dropped.values():  # finish a drop cut short by a crash
            (self._segments / gone.file).unlink(missing_ok=True)
        for rec in list(self._live.values()):
            if not (self._segments / rec.file).exists():
                del self._live[rec.key]
                self._report(
                    Event(
                        "spool.missing",
                        {"stream": rec.stream.value, "seq": rec.seq, "file": rec.file},
                    )
                )
        known = {rec.file for rec in self._live.values()}
        for path in sorted(self._segments.iterdir()):
            if path.name.endswith(".tmp"):
                size = path.stat().st_size
                path.unlink()
                self._report(
                    Event(
                        "spool.discarded",
                        {"file": path.name, "bytes": size, "reason": "unfinished write (crash)"},
                    )
                )
                log.upload.warning("Spool: discarded unfinished %s", path.name)
            elif path.name.endswith(".seg") and path.name not in known:
                self._recover_orphan(path)
        durable.fsync_folder(self._segments)
        self._used = sum(rec.ciphertext_bytes for rec in self._live.values())

    def _recover_orphan(self, path: Path) -> None:
        blob = path.read_bytes()
        try:
            header, _ = decode_segment(self._key, self.session_id, blob)
            record = ManifestRecord(**header, ciphertext_bytes=len(blob), file=path.name)
            if path.name != segment_file_name(record.stream, record.seq):
                raise SpoolError("its header names another segment")
            if record.key in self._live or record.key in self._dropped:
                raise SpoolError("a segment with that number is already listed")
        except SpoolError as exc:
            path.replace(path.with_name(path.name + ".corrupt"))
            self._report(
                Event(
                    "spool.discarded", {"file": path.name, "bytes": len(blob), "reason": str(exc)}
                )
            )
            log.upload.warning("Spool: set aside %s: %s", path.name, exc)
            return
        self._append(record)
        self._live[record.key] = record
        self._report(
            Event(
                "spool.recovered",
                {"stream": record.stream.value, "seq": record.seq, "file": record.file},
            )
        )
        log.upload.warning("Spool: recovered %s (its manifest record was lost)", path.name)

    # -- adding -----------------------------------------------------------------------------

    def add(self, segment: Segment) -> None:
        """Encrypt and store ``segment`` durably, then record it in the manifest.

        Raises:
            SpoolError: closed, a segment with this stream and seq exists, the disk is
                full or the folder unwritable (journalled; earlier segments unharmed).
        """
        if not isinstance(segment.stream, Stream) or segment.seq < 0:
            raise SpoolError(
                f"{self.folder}: not a valid segment ({segment.stream!r} {segment.seq})"
            )
        record = ManifestRecord(
            stream=segment.stream,
            seq=segment.seq,
            start_utc=segment.start_utc,
            end_utc=segment.end_utc,
            duration=float(segment.duration),
            units=segment.units,
            mime=segment.mime,
            bytes=len(segment.data),
            sha256=hashlib.sha256(segment.data).hexdigest(),
            ciphertext_bytes=0,
            file=segment_file_name(segment.stream, segment.seq),
        )
        blob = encode_segment(self._key, self.session_id, record, segment.data)
        record = ManifestRecord(**{**record.__dict__, "ciphertext_bytes": len(blob)})
        with self._lock:
            if self._manifest is None:
                raise SpoolError(f"{self.folder}: the spool is closed")
            if record.key in self._live or record.key in self._dropped:
                raise SpoolError(
                    f"{self.folder}: {record.stream.value} segment {record.seq} is already stored"
                )
            if not self._make_room(record):
                return
            self._store(record, blob)
            self._live[record.key] = record
            self._used += record.ciphertext_bytes
            # the journal covers the media: each stored segment's digests are journalled
            self._report(
                Event(
                    "spool.stored",
                    {
                        "stream": record.stream.value,
                        "seq": record.seq,
                        "start": record.start_utc.isoformat(),
                        "duration": record.duration,
                        "bytes": record.bytes,
                        "sha256": record.sha256,
                        "ciphertext_bytes": record.ciphertext_bytes,
                        "ciphertext_sha256": hashlib.sha256(blob).hexdigest(),
                    },
                )
            )
            self._check_near_full()

    def _make_room(self, incoming: ManifestRecord) -> bool:
        """Drop segments by :data:`DROP_ORDER` until ``incoming`` fits; False: drop it instead."""
        if incoming.ciphertext_bytes > self.max_bytes:
            self._drop(incoming, "larger than the spool cap", stored=False)
            return False
        while self._used + incoming.ciphertext_bytes > self.max_bytes:
            victim = self._victim(incoming.stream)
            if victim is None:
                self._drop(incoming, "spool full of more valuable streams", stored=False)
                return False
            self._drop(victim, "spool full", stored=True)
        return True

    def _victim(self, incoming: Stream) -> ManifestRecord | None:
        for stream in DROP_ORDER[: _RANK[incoming] + 1]:
            candidates = [rec for rec in self._live.values() if rec.stream is stream]
            if candidates:
                return min(candidates, key=lambda rec: rec.seq)
        return None

    def _drop(self, rec: ManifestRecord, reason: str, *, stored: bool) -> None:
        dropped = DroppedRecord(rec.stream, rec.seq, rec.file, reason, _now())
        self._report(
            Event(
                "spool.dropped",
                {
                    "stream": rec.stream.value,
                    "seq": rec.seq,
                    "bytes": rec.ciphertext_bytes,
                    "duration": rec.duration,
                    "reason": reason,
                },
            )
        )
        log.upload.warning("Spool: dropped %s segment %d (%s)", rec.stream.value, rec.seq, reason)
        try:
            self._append(dropped)  # the record first: a crash in between finishes the drop
        except OSError as exc:
            raise self._error(rec, exc) from None
        self._dropped[rec.key] = dropped
        if stored:
            del self._live[rec.key]
            self._used -= rec.ciphertext_bytes
            (self._segments / rec.file).unlink(missing_ok=True)
            durable.fsync_folder(self._segments)
        if self._used < NEAR_FULL * self.max_bytes:
            self._warned = False

    def _store(self, record: ManifestRecord, blob: bytes) -> None:
        final = self._segments / record.file
        renamed = False
        try:
            durable.atomic_write(final, blob, 0o600)
            renamed = True
            self._append(record)
        except OSError as exc:
            if renamed:
                with contextlib.suppress(OSError):
                    final.unlink(missing_ok=True)
            durable.fsync_folder(self._segments)
            raise self._error(record, exc) from None

    def _append(self, entry: ManifestEntry) -> None:
        self._append_line(entry.to_json())

    def _append_line(self, obj: Mapping[str, Any]) -> None:
        """Append one chained manifest line (a whole line or nothing) and sync it."""
        line, digest, mac = chain_line(obj, self._head, self._mac_key)
        manifest = self._open_manifest()
        manifest.append(line)  # a whole line or nothing (cut back on a full disk)
        manifest.sync()
        self._head = (digest, mac)

    def head(self) -> dict[str, str]:
        """The manifest chain's head (what the proctoring service anchors)."""
        with self._lock:
            return {"hash": self._head[0], "mac": self._head[1]}

    def _open_manifest(self) -> AppendLog:
        if self._manifest is None:
            raise SpoolError(f"{self.folder}: the spool is closed")
        return self._manifest

    def _error(self, rec: ManifestRecord, exc: OSError) -> SpoolError:
        message = f"{self.folder}: cannot store {rec.stream.value} segment {rec.seq}: {_why(exc)}"
        self._report(
            Event(
                "spool.error",
                {
                    "folder": str(self.folder),
                    "stream": rec.stream.value,
                    "seq": rec.seq,
                    "error": message,
                },
            )
        )
        log.upload.error("%s", message)
        return SpoolError(message)

    def _check_near_full(self) -> None:
        if self._used >= NEAR_FULL * self.max_bytes and not self._warned:
            self._warned = True
            self._report(
                Event(
                    "spool.near_full",
                    {
                        "used_bytes": self._used,
                        "max_bytes": self.max_bytes,
                        "percent": round(100 * self._used / self.max_bytes, 1),
                    },
                )
            )
            log.upload.warning(
                "Spool %s is %d%% full", self.folder, 100 * self._used // self.max_bytes
            )

    # -- reading ----------------------------------------------------------------------------

    def records(self) -> list[ManifestRecord]:
        """The stored segments, in the order they were finalized."""
        with self._lock:
            return list(self._live.values())

    def dropped(self) -> list[DroppedRecord]:
        with self._lock:
            return list(self._dropped.values())

    def next_seq(self, stream: Stream) -> int:
        """The first sequence number of ``stream`` not used yet (to continue after a restart)."""
        with self._lock:
            seqs = [k[1] for k in (*self._live, *self._dropped) if k[0] is stream]
        return max(seqs, default=-1) + 1

    def read(self, stream: Stream, seq: int) -> bytes:
        """The plaintext media of a stored segment, checked against its tag and SHA-256.

        Raises:
            SpoolError: unknown or dropped segment, missing file, or corruption.
        """
        with self._lock:
            rec = self._live.get((stream, seq))
        where = f"{self.folder}: {stream.value} segment {seq}"
        if rec is None:
            raise SpoolError(f"{where} is not in the spool")
        try:
            blob = (self._segments / rec.file).read_bytes()
        except OSError as exc:
            raise SpoolError(f"{where}: cannot read {rec.file} ({exc.strerror})") from None
        try:
            header, data = decode_segment(self._key, self.session_id, blob)
        except SpoolError as exc:
            raise SpoolError(f"{where} ({rec.file}) is corrupted: {exc}") from None
        if header != {k: v for k, v in rec.__dict__.items() if k in _HEADER_FIELDS}:
            raise SpoolError(f"{where} ({rec.file}) does not match its manifest record")
        return data

    def close(self) -> None:
        """Write the closing line (counts and the last MAC), then close the manifest."""
        with self._lock:
            if self._manifest is None:
                return
            try:
                self._append_line(
                    {
                        "kind": "closed",
                        "utc": _now(),
                        "lines": _count_lines(self._manifest.read_all()),
                        "segments": len(self._live),
                        "dropped": len(self._dropped),
                        "last_mac": self._head[1],
                    }
                )
            except OSError as exc:
                log.upload.error(
                    "Spool %s: the closing line cannot be written: %s", self.folder, exc
                )
            self._manifest.close()
            self._manifest = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- verification (read-only) -----------------------------------------------------------


def listing(folder: Path) -> tuple[list[ManifestRecord], list[DroppedRecord]]:
    """The segments and drops a spool's manifest lists, read without changing anything."""
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise SpoolError(f"{folder}: cannot read the manifest ({exc.strerror})") from None
    live, dropped = _apply(entry for _, entry in parse_manifest(data).entries)
    return sorted(live.values(), key=lambda r: (r.stream.value, r.seq)), list(dropped.values())


def read_segment(folder: Path, key: bytes, session_id: str, record: ManifestRecord) -> bytes:
    """One segment's verified media, read without changing anything.

    Raises:
        SpoolError: missing, unreadable, corrupted, or not matching its record.
    """
    where = f"{record.stream.value} segment {record.seq} ({record.file})"
    try:
        blob = (folder / SEGMENTS_DIR / record.file).read_bytes()
    except OSError as exc:
        raise SpoolError(f"{where}: cannot read ({exc.strerror})") from None
    try:
        header, data = decode_segment(key, session_id, blob)
    except SpoolError as exc:
        raise SpoolError(f"{where} is corrupted: {exc}") from None
    if header != {k: v for k, v in record.__dict__.items() if k in _HEADER_FIELDS}:
        raise SpoolError(f"{where} does not match its manifest record")
    return data


def verify_folder(
    folder: Path, key: bytes | None = None, mac_key: bytes | None = None
) -> SpoolReport:
    """Check every segment of a spool folder without changing it.

    Args:
        folder: the spool folder.
        key: the session key (:func:`open_key` unwraps it with the recipient's private
            key); without it the structure is checked (header, manifest, segment files
            and their clear headers) but not the sealed contents.
        mac_key: the session's MAC key (:func:`open_keys`): also every manifest line's MAC.

    Raises:
        SpoolError: the folder is not a readable spool (no header, unreadable).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpoolError(f"{folder}: no such spool folder")
    header = _read_header(folder)
    problems: list[str] = []
    if key is not None and crypto.key_id(key) != header.key_id:
        problems.append("segment contents not checked: the key given does not fit this spool")
        key = None
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
    except FileNotFoundError:
        data = b""
        problems.append(f"{MANIFEST_FILE} is missing")
    except OSError as exc:
        raise SpoolError(f"{folder}: cannot read the manifest ({exc.strerror})") from None
    parsed = parse_manifest(data)
    problems.extend(f"{MANIFEST_FILE} line {n} {what}" for n, what in parsed.problems)
    chain = check_chain(parsed.lines, mac_key)
    problems.extend(chain.problems)
    live, dropped = _apply(entry for _, entry in parsed.entries)
    totals: dict[str, dict[str, Any]] = {}

    def total(stream: Stream) -> dict[str, Any]:
        return totals.setdefault(
            stream.value,
            {"segments": 0, "duration": 0.0, "bytes": 0, "ciphertext_bytes": 0, "dropped": 0},
        )

    segments = folder / SEGMENTS_DIR
    for rec in live.values():
        name = f"{rec.stream.value} segment {rec.seq} ({rec.file})"
        t = total(rec.stream)
        t["segments"] += 1
        t["duration"] += rec.duration
        t["bytes"] += rec.bytes
        t["ciphertext_bytes"] += rec.ciphertext_bytes
        try:
            blob = (segments / rec.file).read_bytes()
        except FileNotFoundError:
            problems.append(f"{name}: file missing")
            continue
        except OSError as exc:
            problems.append(f"{name}: cannot read ({exc.strerror})")
            continue
        if len(blob) != rec.ciphertext_bytes:
            problems.append(
                f"{name}: corrupted (size {len(blob)}, manifest says {rec.ciphertext_bytes})"
            )
            continue
        try:
            head, _ = decode_segment(key, header.session_id, blob)
        except SpoolError as exc:
            problems.append(f"{name}: corrupted ({exc})")
            continue
        if head != {k: v for k, v in rec.__dict__.items() if k in _HEADER_FIELDS}:
            problems.append(f"{name}: does not match its manifest record")
    for rec_d in dropped.values():
        total(rec_d.stream)["dropped"] += 1
    known = {rec.file for rec in live.values()} | {rec.file for rec in dropped.values()}
    if segments.is_dir():
        for path in sorted(segments.iterdir()):
            if path.name.endswith(".tmp"):
                problems.append(
                    f"{path.name}: unfinished segment left by a crash "
                    "(opening the spool discards it)"
                )
            elif path.name.endswith(".corrupt"):
                problems.append(f"{path.name}: set aside as corrupt when the spool was reopened")
            elif path.name.endswith(".seg") and path.name not in known:
                problems.append(
                    f"{path.name}: not in the manifest (left by a crash; "
                    "opening the spool recovers it)"
                )
    else:
        problems.append(f"{SEGMENTS_DIR}/ is missing")
    streams = {
        name: StreamSummary(stream=name, **t)
        for name, t in sorted(totals.items(), key=lambda kv: _RANK[Stream(kv[0])])
    }
    return SpoolReport(
        folder=folder,
        session_id=header.session_id,
        streams=streams,
        problems=problems,
        contents_checked=key is not None,
        closed=chain.closed,
        keyed=chain.keyed,
        macs_checked=chain.macs_checked,
    )
