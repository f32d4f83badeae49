"""Read-only checks of a spool folder: ``spool verify``, listings and single segment reads.

Nothing here writes; the service imports it (with :mod:`lockdown.upload.format`) to check
what a client uploaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockdown.upload import crypto
from lockdown.upload.base import SpoolError, Stream
from lockdown.upload.format import (
    MANIFEST_FILE,
    RANK,
    SEGMENTS_DIR,
    DroppedRecord,
    ManifestRecord,
    apply_entries,
    body_sha256,
    check_chain,
    decode_segment,
    parse_manifest,
    read_header,
)


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


def listing(folder: Path) -> tuple[list[ManifestRecord], list[DroppedRecord]]:
    """The segments and drops a spool's manifest lists, read without changing anything."""
    try:
        data = (folder / MANIFEST_FILE).read_bytes()
    except OSError as exc:
        raise SpoolError(f"{folder}: cannot read the manifest ({exc.strerror})") from None
    live, dropped = apply_entries(entry for _, entry in parse_manifest(data).entries)
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
    return check_segment(blob, key, session_id, record, where)


def check_segment(
    blob: bytes, key: bytes | None, session_id: str, record: ManifestRecord, where: str
) -> bytes:
    """The media of ``blob`` (empty without a key) once it matches ``record`` in every way.

    Raises:
        SpoolError: size, body digest, clear header, tag or media digest differ.
    """
    try:
        header, data = decode_segment(key, session_id, blob)
    except SpoolError as exc:
        raise SpoolError(f"{where}: corrupted ({exc})") from None
    if header != record.header_fields():
        raise SpoolError(f"{where}: does not match its manifest record")
    if len(blob) != record.ciphertext_bytes or body_sha256(blob) != record.body_sha256:
        raise SpoolError(f"{where}: corrupted (its file is not the one the manifest lists)")
    return data


def verify_folder(
    folder: Path, key: bytes | None = None, mac_key: bytes | None = None
) -> SpoolReport:
    """Check every segment of a spool folder without changing it.

    Args:
        folder: the spool folder.
        key: the session key (:func:`~lockdown.upload.format.open_key` unwraps it with the
            recipient's private key); without it the structure is checked (header,
            manifest, segment files, their digests and clear headers) but not the sealed
            contents.
        mac_key: the session's MAC key (:func:`~lockdown.upload.format.open_keys`): also
            every manifest line's MAC.

    Raises:
        SpoolError: the folder is not a readable spool (no header, unreadable).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SpoolError(f"{folder}: no such spool folder")
    header = read_header(folder)
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
    live, dropped = apply_entries(entry for _, entry in parsed.entries)
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
            check_segment(blob, key, header.session_id, rec, name)
        except SpoolError as exc:
            problems.append(str(exc))
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
        for name, t in sorted(totals.items(), key=lambda kv: RANK[Stream(kv[0])])
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
