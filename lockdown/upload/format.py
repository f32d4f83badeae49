"""The spool's file format, Qt-free and without policy: what the service imports to verify.

Segment files (encode/decode), ``spool.json`` (header parsing, key unwrapping),
``manifest.jsonl`` (record parsing, the hash/MAC chain of its lines) and the
``acknowledged.jsonl`` log of the uploader. Nothing here writes a file or keeps state;
every parser returns problems or raises :class:`~lockdown.upload.base.SpoolError` only.
The format is described in docs/spool.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from lockdown.events import GENESIS, record_hash, record_mac
from lockdown.upload import crypto
from lockdown.upload.base import SpoolError, Stream

FORMAT: Final = "lockdown-spool"
#: 3: every segment line carries ``body_sha256`` (the stored file's SHA-256).
VERSION: Final = 3
HEADER_FILE: Final = "spool.json"
MANIFEST_FILE: Final = "manifest.jsonl"
#: The uploader's acknowledgements: an append-only log of their own, outside the MAC
#: chain, so a spool whose MAC key is gone (an earlier session's) still takes them.
ACK_FILE: Final = "acknowledged.jsonl"
#: The lock file one process holds (flock) while it has the spool open.
LOCK_FILE: Final = "lock"
SEGMENTS_DIR: Final = "segments"
SEGMENT_MAGIC: Final = b"LDSPSEG1"
MAX_SEGMENT_HEADER: Final = 64 * 1024
#: Least valuable first: when full, the oldest screen segments go first, then the oldest
#: camera segments, then the oldest microphone segments. A new segment may only push out
#: segments of its own or a less valuable stream; otherwise it is dropped itself.
DROP_ORDER: Final = (Stream.SCREEN, Stream.CAMERA, Stream.MICROPHONE)
RANK: Final = {stream: rank for rank, stream in enumerate(DROP_ORDER)}
HEADER_FIELDS: Final = (
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
#: Manifest lines that are part of the chain but list no segment.
CHAIN_KINDS: Final = frozenset({"closed", "reopened"})


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
    #: SHA-256 (hex) of the stored, encrypted file exactly as it is uploaded (the
    #: protocol's Content-Digest: :func:`content_digest`)
    body_sha256: str

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

    def header_fields(self) -> dict[str, Any]:
        """The fields a segment file's clear header repeats (to compare with it)."""
        return {k: v for k, v in self.__dict__.items() if k in HEADER_FIELDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "segment",
            **self.header_json(),
            "ciphertext_bytes": self.ciphertext_bytes,
            "file": self.file,
            "body_sha256": self.body_sha256,
        }


@dataclass(frozen=True)
class DroppedRecord:
    """A segment removed (or never stored) because of the size cap or a full disk."""

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
    #: byte offset of a torn last line (no newline: a crash cut it; a repair cuts it), or None
    torn: int | None = None
    #: (line number, byte offset, the line) of every damaged whole line (corruption:
    #: reported and kept apart, never cut)
    damaged: list[tuple[int, int, bytes]] = field(default_factory=list)
    #: (line number, the line's object) of every well-formed line, closing lines included
    lines: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    @property
    def first_bad(self) -> int | None:
        """The byte offset of the first bad line (damaged or torn), or None."""
        offsets = [offset for _, offset, _ in self.damaged]
        if self.torn is not None:
            offsets.append(self.torn)
        return min(offsets, default=None)


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


def _hex64(value: object, what: str) -> str:
    text = _str(value)
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValueError(f"{what} is not 64 hex digits")
    return text


def _file_name(value: object) -> str:
    name = _str(value)
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\0" in name:
        raise ValueError("not a plain file name")
    return name


def header_fields(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a segment header (or the same fields of a manifest line), checked.

    Raises:
        ValueError, KeyError, TypeError: a field is missing or out of range.
    """
    duration = obj["duration"]
    if isinstance(duration, bool) or not isinstance(duration, int | float):
        raise ValueError("duration is not a number")
    if not math.isfinite(duration) or duration < 0:
        raise ValueError("duration out of range")
    return {
        "stream": Stream(obj["stream"]),
        "seq": _int(obj["seq"]),
        "start_utc": datetime.fromisoformat(_str(obj["start_utc"])),
        "end_utc": datetime.fromisoformat(_str(obj["end_utc"])),
        "duration": float(duration),
        "units": _int(obj["units"]),
        "mime": _str(obj["mime"]),
        "bytes": _int(obj["bytes"]),
        "sha256": _hex64(obj["sha256"], "sha256"),
    }


def parse_entry(obj: object) -> ManifestEntry:
    """One manifest line's object as a record (the one parser writers validate with too).

    Raises:
        ValueError, KeyError, TypeError: not a segment or dropped record of this format.
    """
    if not isinstance(obj, dict):
        raise ValueError("not an object")
    kind = obj.get("kind")
    if kind == "segment":
        return ManifestRecord(
            **header_fields(obj),
            ciphertext_bytes=_int(obj["ciphertext_bytes"]),
            file=_file_name(obj["file"]),
            body_sha256=_hex64(obj["body_sha256"], "body_sha256"),
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


def _chain_fields(obj: Mapping[str, Any]) -> None:
    if not isinstance(obj.get("prev"), str) or not isinstance(obj.get("hash"), str):
        raise ValueError("no chain fields")


def parse_manifest(data: bytes) -> ManifestParse:
    """Every well-formed line of a manifest and every bad one. Never raises.

    A last line without its newline is *torn* (a crash cut it); any other bad line is
    *damaged* (bit rot, an edit): the lines after it still count.
    """
    result = ManifestParse()
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        end = data.find(b"\n", offset)
        if end == -1:
            result.torn = offset
            result.problems.append(
                (number, "is torn (cut off by a crash; opening the spool repairs it)")
            )
            break
        line, next_offset = data[offset:end], end + 1
        try:
            obj = json.loads(line)
            if isinstance(obj, dict) and obj.get("kind") in CHAIN_KINDS:
                _chain_fields(obj)
            else:
                result.entries.append((offset, parse_entry(obj)))
            result.lines.append((number, obj))
        except (ValueError, KeyError, TypeError, RecursionError):
            result.damaged.append((number, offset, line))
            result.problems.append(
                (number, "is damaged (not a manifest record; kept apart, never cut)")
            )
        offset = next_offset
    return result


def apply_entries(
    entries: Iterable[ManifestEntry],
) -> tuple[dict[tuple[Stream, int], ManifestRecord], dict[tuple[Stream, int], DroppedRecord]]:
    """The segments still stored and the ones dropped, after every entry in order."""
    live: dict[tuple[Stream, int], ManifestRecord] = {}
    dropped: dict[tuple[Stream, int], DroppedRecord] = {}
    for entry in entries:
        if isinstance(entry, DroppedRecord):
            live.pop(entry.key, None)
            dropped[entry.key] = entry
        elif entry.key not in dropped:
            live.setdefault(entry.key, entry)
    return live, dropped


# -- the chain of manifest lines ----------------------------------------------------------


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


# -- acknowledgements ---------------------------------------------------------------------


@dataclass(frozen=True)
class Acknowledgement:
    """The service stored a segment with this body digest (``acknowledged.jsonl``)."""

    stream: Stream
    seq: int
    body_sha256: str
    utc: str

    @property
    def key(self) -> tuple[Stream, int]:
        return (self.stream, self.seq)

    def to_line(self) -> bytes:
        obj = {
            "stream": self.stream.value,
            "seq": self.seq,
            "body_sha256": self.body_sha256,
            "utc": self.utc,
        }
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"


@dataclass
class AckParse:
    """What :func:`parse_acknowledged` made of the acknowledgement log."""

    acknowledged: dict[tuple[Stream, int], Acknowledgement] = field(default_factory=dict)
    #: line numbers of damaged lines (skipped: costs a re-upload, which the service answers 200)
    damaged: list[int] = field(default_factory=list)
    #: byte offset of a torn last line, or None
    torn: int | None = None


def parse_acknowledged(data: bytes) -> AckParse:
    """Every acknowledgement in the log (the first for a segment counts). Never raises."""
    result = AckParse()
    offset, number = 0, 0
    while offset < len(data):
        number += 1
        end = data.find(b"\n", offset)
        if end == -1:
            result.torn = offset
            break
        try:
            obj = json.loads(data[offset:end])
            if not isinstance(obj, dict):
                raise ValueError("not an object")
            ack = Acknowledgement(
                stream=Stream(obj["stream"]),
                seq=_int(obj["seq"]),
                body_sha256=_hex64(obj["body_sha256"], "body_sha256"),
                utc=_str(obj["utc"]),
            )
            result.acknowledged.setdefault(ack.key, ack)
        except (ValueError, KeyError, TypeError, RecursionError):
            result.damaged.append(number)
        offset = end + 1
    return result


# -- segment files ------------------------------------------------------------------------


def segment_file_name(stream: Stream, seq: int) -> str:
    return f"{stream.value}-{seq:06d}.seg"


def parse_segment_file_name(name: str) -> tuple[Stream, int] | None:
    """The stream and seq a segment file name (``.seg``, ``.tmp``, ``.corrupt``…) says."""
    stem = name.split(".", 1)[0]
    stream, _, seq = stem.rpartition("-")
    try:
        return Stream(stream), int(seq)
    except ValueError:
        return None


def body_sha256(blob: bytes) -> str:
    """The SHA-256 (hex) of a stored segment file: what the upload's digest covers."""
    return hashlib.sha256(blob).hexdigest()


def content_digest(body_sha256_hex: str) -> str:
    """The protocol's ``Content-Digest`` value (RFC 9530) for a ``body_sha256``."""
    raw = bytes.fromhex(body_sha256_hex)
    return f"sha-256=:{base64.b64encode(raw).decode('ascii')}:"


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
        header = header_fields(json.loads(blob[start : start + size]))
    except (ValueError, KeyError, TypeError, RecursionError):
        raise SpoolError("segment header is garbled") from None
    if key is None:
        return header, b""
    clear = blob[: start + size]
    data = crypto.unseal(key, blob[start + size :], _aad(session_id, clear))
    if len(data) != header["bytes"] or hashlib.sha256(data).hexdigest() != header["sha256"]:
        raise SpoolError("the media does not match its SHA-256")
    return header, data


# -- the header and its keys --------------------------------------------------------------


def read_header(folder: Path) -> SpoolHeader:
    """``spool.json`` of ``folder``.

    Raises:
        SpoolError: missing, unreadable, garbled, or of another format version.
    """
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


def key_label(session_id: str) -> str:
    """What the wrapped session key is bound to (the spool's session id)."""
    return f"lockdown-spool/{session_id}"


def mac_key_label(session_id: str) -> str:
    return f"lockdown-spool-mac/{session_id}"


def open_keys(folder: Path, private: X25519PrivateKey) -> tuple[bytes, bytes | None]:
    """The spool's session key and MAC key, unwrapped with the recipient's private key."""
    key = open_key(folder, private)
    header = read_header(folder)
    if header.mac_key_wrapping is None:
        return key, None
    try:
        mac_key = crypto.unwrap(
            header.mac_key_wrapping, private, label=mac_key_label(header.session_id)
        )
    except crypto.SpoolKeyError as exc:
        raise crypto.SpoolKeyError(f"{folder}: {exc}") from None
    return key, mac_key


def open_key(folder: Path, private: X25519PrivateKey) -> bytes:
    """The spool's session key, unwrapped with the recipient's private key.

    Raises:
        SpoolError: not a spool, or the key is not wrapped for this recipient.
    """
    header = read_header(folder)
    if header.key_location != "wrapped":
        raise crypto.SpoolKeyError(
            f"{folder}: the spool key was held by the program that wrote it and is gone"
        )
    try:
        key = crypto.unwrap(header.key_wrapping, private, label=key_label(header.session_id))
    except crypto.SpoolKeyError as exc:
        raise crypto.SpoolKeyError(f"{folder}: {exc}") from None
    if crypto.key_id(key) != header.key_id:
        raise crypto.SpoolKeyError(f"{folder}: the unwrapped key does not fit this spool")
    return key
