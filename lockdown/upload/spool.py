"""The durable, encrypted on-disk spool of recorded segments (format and policy: docs/spool.md).

A spool folder holds ``spool.json`` (format, session id, key fingerprint and where the key
lives), ``manifest.jsonl`` (one chained JSON line per finalized or dropped segment,
appended and fsynced), ``acknowledged.jsonl`` (the uploader's acknowledgements, outside
the chain), ``lock`` (held with ``flock`` by the one process that has the spool open) and
``segments/<stream>-<seq>.seg``. The file format lives in :mod:`lockdown.upload.format`,
the read-only checks in :mod:`lockdown.upload.verify`; this module is the policy.

:meth:`Spool.add` checks the free disk space, plans what the size cap (and a nearly full
disk) must drop, writes the segment to a temporary file, fsyncs, renames, fsyncs the
folder and only then appends the manifest record, so a ``kill -9`` at any moment leaves
every finalized segment intact. :meth:`Spool.open` on an existing folder cuts a torn
*last* manifest line, reports a damaged line elsewhere as corruption without cutting,
discards unfinished ``.tmp`` files and relists a renamed segment whose manifest record
was lost, journalling each repair. :meth:`Spool.open_earlier` reopens an earlier
session's spool without its keys, for the uploader: read-only, acknowledgements writable.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from lockdown import build, durable, log
from lockdown.durable import AppendLog
from lockdown.events import GENESIS, Event, EventSink
from lockdown.upload import crypto
from lockdown.upload.base import Segment, SpoolError, Stream
from lockdown.upload.format import (
    ACK_FILE,
    DROP_ORDER,
    FORMAT,
    HEADER_FILE,
    LOCK_FILE,
    MANIFEST_FILE,
    RANK,
    SEGMENT_MAGIC,
    SEGMENTS_DIR,
    VERSION,
    Acknowledgement,
    DroppedRecord,
    ManifestEntry,
    ManifestParse,
    ManifestRecord,
    SpoolHeader,
    apply_entries,
    body_sha256,
    chain_line,
    check_chain,
    content_digest,
    decode_segment,
    encode_segment,
    key_label,
    mac_key_label,
    open_key,
    open_keys,
    parse_acknowledged,
    parse_entry,
    parse_manifest,
    parse_segment_file_name,
    read_header,
    segment_file_name,
)
from lockdown.upload.verify import SpoolReport, StreamSummary, listing, read_segment, verify_folder

# Older imports (``from lockdown.upload.spool import …``) keep working.
__all__ = [
    "ACK_FILE",
    "DROP_ORDER",
    "FORMAT",
    "HEADER_FILE",
    "MANIFEST_FILE",
    "SEGMENTS_DIR",
    "SEGMENT_MAGIC",
    "VERSION",
    "Acknowledgement",
    "DroppedRecord",
    "ManifestEntry",
    "ManifestParse",
    "ManifestRecord",
    "Spool",
    "SpoolHeader",
    "SpoolReport",
    "StreamSummary",
    "content_digest",
    "decode_segment",
    "earlier_spools",
    "encode_segment",
    "listing",
    "open_key",
    "open_keys",
    "parse_manifest",
    "read_segment",
    "segment_file_name",
    "verify_folder",
]

#: Warn (``spool.near_full``) when the stored segments reach this share of the cap.
NEAR_FULL: Final = 0.8
#: Disk space the spool always leaves free (the journal, manifest lines, the closing line
#: and the rest of the system need it): a segment that would eat into it is not stored.
DEFAULT_RESERVE: Final = 32 * 1024 * 1024
#: What one stored segment costs on the disk beyond its bytes (its manifest line, the
#: rename, a partly used block): counted before the store.
_OVERHEAD: Final = 8192
#: The development switch that turns the free-space check off (the positive control of
#: the low-disk test: the same full disk then ends in ENOSPC).
DEV_NO_DISK_CHECK: Final = "SPOOL_NO_DISK_CHECK"
#: Why a segment left the spool (the manifest's ``dropped`` reason, ``spool.dropped``).
ACKNOWLEDGED_REASON: Final = "uploaded (acknowledged by the service)"
_READ_ONLY: Final = "is an earlier session's spool (read-only: its keys are not here)"


def earlier_spools(root: Path, current: Path | None = None) -> list[Path]:
    """The spool folders under ``root`` (each with a ``spool.json``) but ``current``, oldest first."""
    try:
        folders = [p.parent for p in Path(root).glob(f"*/{HEADER_FILE}")]
    except OSError:
        return []
    here = Path(current).resolve() if current is not None else None
    return sorted(
        (f for f in folders if f.is_dir() and (here is None or f.resolve() != here)),
        key=lambda f: f.name,
    )


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full; free space or lower proctoring.spool_max_mb"
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR):
        return f"the folder is not writable ({exc.strerror}); choose a writable spool folder"
    return exc.strerror or str(exc)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class _FolderLock:
    """An exclusive ``flock`` on the spool's lock file: one process per spool folder."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def take(cls, folder: Path) -> _FolderLock:
        """Raises SpoolError when another process holds the spool (naming its pid)."""
        path = folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(f"{folder}: cannot open the spool's lock file: {_why(exc)}") from None
        if not _try_lock(fd):
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            except OSError:
                holder = "unknown"
            os.close(fd)
            raise SpoolError(
                f"{folder}: the spool is in use by another Lockdown process (pid {holder}); "
                "close it first"
            )
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


if sys.platform == "win32":  # pragma: no cover - not run on Windows yet (docs/spool.md)
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


class Spool:
    """One session's spool folder. Thread-safe: recorders call :meth:`add` from their threads.

    The uploader's side is a cursor: :meth:`pending` (stored, not yet acknowledged,
    oldest first), :meth:`body` (the stored file exactly as it is uploaded) and
    :meth:`acknowledge` (durable, idempotent).
    """

    def __init__(
        self,
        folder: Path,
        header: SpoolHeader,
        key: bytes | None,
        *,
        report: EventSink,
        max_bytes: int,
        manifest: AppendLog | None,
        lock: _FolderLock,
        acks: AppendLog | None = None,
        mac_key: bytes | None = None,
        reserve_bytes: int = DEFAULT_RESERVE,
    ) -> None:
        self.folder = folder
        self.header = header
        self.max_bytes = max_bytes
        self.reserve_bytes = reserve_bytes
        #: False for an earlier session's spool: no key, nothing added, acks only
        self.writable = manifest is not None
        self._key = key
        self._mac_key = mac_key
        #: the manifest chain's last line (hash, MAC)
        self._head = (GENESIS, GENESIS)
        self._report = report
        self._manifest = manifest
        self._acks = acks
        self._folder_lock: _FolderLock | None = lock
        self._segments = folder / SEGMENTS_DIR
        self._lock = threading.Lock()
        self._live: dict[tuple[Stream, int], ManifestRecord] = {}
        self._dropped: dict[tuple[Stream, int], DroppedRecord] = {}
        self._acked: dict[tuple[Stream, int], Acknowledgement] = {}
        #: listed as stored, but the file is gone / does not match its record
        self._missing: set[tuple[Stream, int]] = set()
        self._corrupt: set[tuple[Stream, int]] = set()
        #: every (stream, seq) ever seen in the manifest or as a file: never used again
        self._seen: set[tuple[Stream, int]] = set()
        self._used = 0
        self._warned = False
        self._low_disk = False
        self._disk_check = True

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
        reserve_bytes: int = DEFAULT_RESERVE,
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
            reserve_bytes: disk space always left free; a segment that would eat into
                it is not stored (``spool.low_disk``), before the disk says ENOSPC.

        Raises:
            SpoolError: the folder cannot be created or written, is not a spool, is open
                in another process, or the key does not fit; journalled as ``spool.error``.
        """
        folder = Path(folder)
        try:
            if max_bytes <= 0:
                raise SpoolError(f"{folder}: the spool size cap must be positive")
            spool = cls._open(folder, report, max_bytes, key, recipient, mac_key=mac_key)
        except SpoolError as exc:
            report(Event("spool.error", {"folder": str(folder), "error": str(exc)}))
            log.upload.error("%s", exc)
            raise
        spool.reserve_bytes = reserve_bytes
        if build.dev_switch(DEV_NO_DISK_CHECK):
            spool._disk_check = False
            name = f"LOCKDOWN_DEV_{DEV_NO_DISK_CHECK}"
            report(Event("spool.dev_switch", {"name": name, "value": "1"}))
            log.upload.warning("Development switch %s in effect: no free-space check", name)
        return spool

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
        lock = _FolderLock.take(folder)
        try:
            return cls._open_locked(
                folder,
                report,
                max_bytes=max_bytes,
                key=key,
                recipient=recipient,
                mac_key=mac_key,
                lock=lock,
            )
        except BaseException:
            lock.release()
            raise

    @classmethod
    def _open_locked(
        cls,
        folder: Path,
        report: EventSink,
        *,
        max_bytes: int,
        key: bytes | None,
        recipient: X25519PublicKey | None,
        mac_key: bytes | None,
        lock: _FolderLock,
    ) -> Spool:
        if (folder / HEADER_FILE).exists():
            header = read_header(folder)
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
        try:
            acks = AppendLog.open(folder / ACK_FILE)
        except OSError as exc:
            manifest.close()
            raise SpoolError(f"{folder}: cannot open {ACK_FILE}: {_why(exc)}") from None
        spool = cls(
            folder,
            header,
            key,
            report=report,
            max_bytes=max_bytes,
            manifest=manifest,
            lock=lock,
            acks=acks,
            mac_key=mac_key,
        )
        try:
            spool._recover()
        except OSError as exc:
            spool._close_files()
            raise SpoolError(f"{folder}: cannot repair the spool: {_why(exc)}") from None
        except BaseException:
            spool._close_files()
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
    def open_earlier(cls, folder: Path, report: EventSink) -> Spool:
        """Reopen an earlier session's spool for upload, without its keys.

        Its keys exist only wrapped for the recipient, so nothing is decrypted or added:
        a torn last manifest line is cut, ``.tmp`` leftovers are removed, a drop cut short
        is finished, every listed file is checked against the manifest (size, and
        ``body_sha256`` for what is still to upload) and corruption is reported, never
        cut. :meth:`pending`, :meth:`body` and :meth:`acknowledge` work; :meth:`add`
        raises. Journals ``spool.recovered`` with the counts (in the caller's journal).

        Raises:
            SpoolError: not a spool, unreadable, or open in another process; journalled
                as ``spool.error``.
        """
        folder = Path(folder)
        try:
            if not (folder / HEADER_FILE).is_file():
                raise SpoolError(f"{folder}: not a Lockdown spool ({HEADER_FILE} is missing)")
            lock = _FolderLock.take(folder)
            try:
                spool = cls._open_earlier_locked(folder, report, lock)
            except BaseException:
                lock.release()
                raise
        except SpoolError as exc:
            report(Event("spool.error", {"folder": str(folder), "error": str(exc)}))
            log.upload.error("%s", exc)
            raise
        return spool

    @classmethod
    def _open_earlier_locked(cls, folder: Path, report: EventSink, lock: _FolderLock) -> Spool:
        header = read_header(folder)
        try:
            acks = AppendLog.open(folder / ACK_FILE)
        except OSError as exc:
            raise SpoolError(f"{folder}: cannot open {ACK_FILE}: {_why(exc)}") from None
        spool = cls(
            folder, header, None, report=report, max_bytes=1, manifest=None, lock=lock, acks=acks
        )
        try:
            counts = spool._recover()
        except OSError as exc:
            spool._close_files()
            raise SpoolError(f"{folder}: cannot repair the spool: {_why(exc)}") from None
        except BaseException:
            spool._close_files()
            raise
        spool.max_bytes = max(spool._used, 1)
        report(
            Event(
                "spool.recovered",
                {
                    "folder": str(folder),
                    "session_id": header.session_id,
                    "segments": len(spool._live),
                    "pending": len(spool._pending()),
                    "acknowledged": len(spool._acked),
                    "dropped": len(spool._dropped),
                    **counts,
                },
            )
        )
        log.upload.info(
            "Earlier spool %s reopened: %d segments, %d to upload",
            folder,
            len(spool._live),
            len(spool._pending()),
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
            wrapping = crypto.wrap(key, recipient, label=key_label(session_id))
            mac_wrapping = crypto.wrap(mac_key, recipient, label=mac_key_label(session_id))
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

    def _recover(self) -> dict[str, int]:
        """Repair what a crash left; the counts of what was found (``spool.recovered``)."""
        counts = {
            "cut_bytes": 0,
            "damaged_lines": 0,
            "discarded": 0,
            "missing": 0,
            "corrupt": 0,
            "orphans": 0,
            "relisted": 0,
        }
        parsed = self._read_manifest(counts)
        self._recover_acks()
        kept = [(n, obj) for n, obj in parsed.lines]
        self._head = check_chain(kept, None).head
        self._live, self._dropped = apply_entries(entry for _, entry in parsed.entries)
        self._seen = {*self._live, *self._dropped, *self._acked}
        for gone in self._dropped.values():  # finish a drop cut short by a crash
            (self._segments / gone.file).unlink(missing_ok=True)
        self._check_files(counts)
        known = {rec.file for rec in self._live.values()}
        for path in sorted(self._segments.iterdir()):
            named = parse_segment_file_name(path.name)
            if named is not None:
                self._seen.add(named)
            if path.name.endswith(".tmp"):
                size = path.stat().st_size
                path.unlink()
                counts["discarded"] += 1
                self._report(
                    Event(
                        "spool.discarded",
                        {"file": path.name, "bytes": size, "reason": "unfinished write (crash)"},
                    )
                )
                log.upload.warning("Spool: discarded unfinished %s", path.name)
            elif path.name.endswith(".seg") and path.name not in known:
                if self.writable:
                    counts["relisted"] += self._recover_orphan(path)
                else:  # no key to check it, no MAC key to list it: left as it is
                    counts["orphans"] += 1
        durable.fsync_folder(self._segments)
        if self.writable and kept and kept[-1][1].get("kind") == "closed":
            self._append_line({"kind": "reopened", "utc": _now()})  # written to again: say so
        self._used = sum(rec.ciphertext_bytes for rec in self._live.values())
        return counts

    def _read_manifest(self, counts: dict[str, int]) -> ManifestParse:
        """Parse the manifest, cut a torn last line, report damaged ones (never cut)."""
        path = self.folder / MANIFEST_FILE
        if self._manifest is not None:
            data = self._manifest.read_all()
        else:
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
        parsed = parse_manifest(data)
        if parsed.torn is not None:
            if self._manifest is not None:
                self._manifest.truncate(parsed.torn)
                self._manifest.sync()
            else:
                _truncate(path, parsed.torn)
            line = parsed.problems[-1][0]
            cut = counts["cut_bytes"] = len(data) - parsed.torn
            self._report(
                Event("spool.repaired", {"file": MANIFEST_FILE, "line": line, "cut_bytes": cut})
            )
            log.upload.warning("Spool manifest: cut the torn last line %d (%d bytes)", line, cut)
        for number, _offset, line_bytes in parsed.damaged:
            counts["damaged_lines"] += 1
            self._report(
                Event(
                    "spool.corrupt",
                    {
                        "folder": str(self.folder),
                        "file": MANIFEST_FILE,
                        "line": number,
                        "bytes": len(line_bytes),
                        "sha256": body_sha256(line_bytes),
                    },
                )
            )
            log.upload.error(
                "Spool %s: %s line %d is damaged (kept, not cut)",
                self.folder,
                MANIFEST_FILE,
                number,
            )
        return parsed

    def _recover_acks(self) -> None:
        if self._acks is None:
            return
        data = self._acks.read_all()
        parsed = parse_acknowledged(data)
        if parsed.torn is not None:  # an acknowledgement cut by a crash: re-uploaded, 200
            self._acks.truncate(parsed.torn)
            self._acks.sync()
        self._acked = parsed.acknowledged
        if parsed.damaged:
            log.upload.warning(
                "Spool %s: %d damaged line(s) in %s (those segments upload again)",
                self.folder,
                len(parsed.damaged),
                ACK_FILE,
            )

    def _check_files(self, counts: dict[str, int]) -> None:
        """Every listed file against its record: size always, ``body_sha256`` if pending."""
        for rec in list(self._live.values()):
            path = self._segments / rec.file
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                del self._live[rec.key]
                self._missing.add(rec.key)
                counts["missing"] += 1
                self._report(
                    Event(
                        "spool.missing",
                        {"stream": rec.stream.value, "seq": rec.seq, "file": rec.file},
                    )
                )
                continue
            if size == rec.ciphertext_bytes and (
                rec.key in self._acked or body_sha256(path.read_bytes()) == rec.body_sha256
            ):
                continue
            self._corrupt.add(rec.key)
            counts["corrupt"] += 1
            self._report(
                Event(
                    "spool.corrupt",
                    {
                        "folder": str(self.folder),
                        "file": rec.file,
                        "stream": rec.stream.value,
                        "seq": rec.seq,
                        "reason": "the file is not the one the manifest lists",
                    },
                )
            )
            log.upload.error(
                "Spool %s: %s does not match its manifest record", self.folder, rec.file
            )

    def _recover_orphan(self, path: Path) -> int:
        blob = path.read_bytes()
        try:
            header, _ = decode_segment(self._key, self.session_id, blob)
            record = ManifestRecord(
                **header,
                ciphertext_bytes=len(blob),
                file=path.name,
                body_sha256=body_sha256(blob),
            )
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
            return 0
        self._append(record)
        self._live[record.key] = record
        self._seen.add(record.key)
        self._report(
            Event(
                "spool.relisted",
                {"stream": record.stream.value, "seq": record.seq, "file": record.file},
            )
        )
        log.upload.warning("Spool: relisted %s (its manifest record was lost)", path.name)
        return 1

    # -- adding -----------------------------------------------------------------------------

    def add(self, segment: Segment) -> None:
        """Encrypt and store ``segment`` durably, then record it in the manifest.

        Raises:
            SpoolError: closed or read-only, the segment is not valid, its number was used
                before (even by a file dropped or gone), the disk is full or the folder
                unwritable (journalled; earlier segments unharmed).
        """
        if self._key is None:
            raise SpoolError(f"{self.folder} {_READ_ONLY}")
        record = self._record(segment)
        blob = encode_segment(self._key, self.session_id, record, segment.data)
        record = ManifestRecord(
            **{
                **record.__dict__,
                "ciphertext_bytes": len(blob),
                "body_sha256": body_sha256(blob),
            }
        )
        with self._lock:
            if self._manifest is None:
                raise SpoolError(f"{self.folder}: the spool is closed")
            if record.key in self._seen:
                raise SpoolError(
                    f"{self.folder}: {record.stream.value} segment {record.seq} was stored "
                    "before (a sequence number is never used twice)"
                )
            if not self._make_room(record):
                return
            self._store(record, blob)
            self._seen.add(record.key)
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
                        "ciphertext_sha256": record.body_sha256,
                    },
                )
            )
            self._check_near_full()

    def _record(self, segment: Segment) -> ManifestRecord:
        """The manifest record of ``segment``, validated by the manifest's own parser."""
        where = f"{self.folder}: not a valid segment ({segment.stream!r} {segment.seq!r})"
        if not isinstance(segment.stream, Stream) or not isinstance(segment.data, bytes):
            raise SpoolError(where)
        try:
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
                body_sha256="0" * 64,
            )
            # what the reader will make of the line, or the line is never written
            line = json.loads(json.dumps(record.to_json()))
            if parse_entry(line) != record:
                raise ValueError("does not read back as written")
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            raise SpoolError(f"{where}: {exc}") from None
        return record

    def _free_bytes(self) -> int | None:
        if not self._disk_check:
            return None
        try:
            return shutil.disk_usage(self._segments).free
        except OSError:
            return None

    def _make_room(self, incoming: ManifestRecord) -> bool:
        """Plan, then drop, what must go for ``incoming`` to fit the cap and the disk.

        Nothing is dropped unless the store can then succeed: if no plan works, the
        incoming segment is dropped itself (and older segments kept). Acknowledged
        segments (on the service already) go first, then :data:`DROP_ORDER`.
        """
        need = incoming.ciphertext_bytes
        if need > self.max_bytes:
            self._drop(incoming, "larger than the spool cap", stored=False)
            return False
        free = self._free_bytes()
        disk_room = None if free is None else free - self.reserve_bytes - _OVERHEAD
        disk_bound = disk_room is not None and need > disk_room
        if disk_bound and not self._low_disk:
            self._low_disk = True
            self._report(
                Event(
                    "spool.low_disk",
                    {
                        "folder": str(self.folder),
                        "free_bytes": free,
                        "reserve_bytes": self.reserve_bytes,
                        "needed_bytes": need + _OVERHEAD,
                    },
                )
            )
            log.upload.warning(
                "Spool %s: only %s bytes free on the disk (keeping %d free)",
                self.folder,
                free,
                self.reserve_bytes,
            )
        elif not disk_bound:
            self._low_disk = False
        victims: list[ManifestRecord] = []
        freed = 0
        candidates = iter(self._candidates(incoming.stream))
        while self._used - freed + need > self.max_bytes or (
            disk_room is not None and need > disk_room + freed
        ):
            victim = next(candidates, None)
            if victim is None:
                reason = (
                    "the disk is almost full"
                    if disk_room is not None and need > disk_room + freed
                    else "spool full of more valuable streams"
                )
                self._drop(incoming, reason, stored=False)
                return False
            victims.append(victim)
            freed += victim.ciphertext_bytes
        for victim in victims:
            if victim.key in self._acked:
                self._drop(victim, ACKNOWLEDGED_REASON, stored=True)
            else:
                self._drop(victim, "disk almost full" if disk_bound else "spool full", stored=True)
        return True

    def _candidates(self, incoming: Stream) -> list[ManifestRecord]:
        """What may go for an ``incoming`` segment, first to go first."""
        live = list(self._live.values())
        acked = [rec for rec in live if rec.key in self._acked]
        rest = [
            rec
            for stream in DROP_ORDER[: RANK[incoming] + 1]
            for rec in sorted(
                (r for r in live if r.stream is stream and r.key not in self._acked),
                key=lambda r: r.seq,
            )
        ]
        return acked + rest

    def _drop(self, rec: ManifestRecord, reason: str, *, stored: bool) -> None:
        dropped = DroppedRecord(rec.stream, rec.seq, rec.file, reason, _now())
        acknowledged = rec.key in self._acked
        self._report(
            Event(
                "spool.dropped",
                {
                    "stream": rec.stream.value,
                    "seq": rec.seq,
                    "bytes": rec.ciphertext_bytes,
                    "duration": rec.duration,
                    "reason": reason,
                    "acknowledged": acknowledged,
                },
            )
        )
        if acknowledged:
            log.upload.info("Spool: removed uploaded %s segment %d", rec.stream.value, rec.seq)
        else:
            log.upload.warning(
                "Spool: dropped %s segment %d (%s)", rec.stream.value, rec.seq, reason
            )
        try:
            self._append(dropped)  # the record first: a crash in between finishes the drop
        except OSError as exc:
            raise self._error(rec, exc) from None
        self._dropped[rec.key] = dropped
        self._seen.add(rec.key)
        if stored:
            del self._live[rec.key]
            self._corrupt.discard(rec.key)
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
            raise SpoolError(
                f"{self.folder}: the spool is closed"
                if self.writable
                else f"{self.folder} {_READ_ONLY}"
            )
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

    def missing(self) -> list[tuple[Stream, int]]:
        """Segments the manifest lists as stored whose file was gone at open."""
        with self._lock:
            return sorted(self._missing, key=lambda k: (RANK[k[0]], k[1]))

    def corrupt(self) -> list[ManifestRecord]:
        """Stored segments whose file does not match its record (never uploaded)."""
        with self._lock:
            return [rec for rec in self._live.values() if rec.key in self._corrupt]

    def next_seq(self, stream: Stream) -> int:
        """The first sequence number of ``stream`` never used (dropped and gone files count)."""
        with self._lock:
            seqs = [k[1] for k in self._seen if k[0] is stream]
        return max(seqs, default=-1) + 1

    def _open_segment(self, stream: Stream, seq: int) -> tuple[ManifestRecord, int]:
        """The record and an open descriptor of its file, taken under the lock.

        A drop may unlink the file right after; the open descriptor still reads it whole.
        """
        where = f"{self.folder}: {stream.value} segment {seq}"
        with self._lock:
            rec = self._live.get((stream, seq))
            if rec is None:
                state = "was dropped" if (stream, seq) in self._dropped else "is not in the spool"
                raise SpoolError(f"{where} {state}")
            try:
                fd = os.open(self._segments / rec.file, os.O_RDONLY)
            except OSError as exc:
                raise SpoolError(f"{where}: cannot read {rec.file} ({exc.strerror})") from None
        return rec, fd

    def _read_whole(self, rec: ManifestRecord, fd: int) -> bytes:
        try:
            with os.fdopen(fd, "rb") as file:
                return file.read()
        except OSError as exc:
            raise SpoolError(f"{self.folder}: cannot read {rec.file} ({exc.strerror})") from None

    def read(self, stream: Stream, seq: int) -> bytes:
        """The plaintext media of a stored segment, checked against its tag and SHA-256.

        Safe against a drop at the same moment: the file is opened under the spool's lock.

        Raises:
            SpoolError: unknown or dropped segment, missing file, corruption, or an
                earlier session's spool (its key is not here).
        """
        if self._key is None:
            raise SpoolError(f"{self.folder} {_READ_ONLY}")
        rec, fd = self._open_segment(stream, seq)
        blob = self._read_whole(rec, fd)
        where = f"{self.folder}: {stream.value} segment {seq} ({rec.file})"
        try:
            header, data = decode_segment(self._key, self.session_id, blob)
        except SpoolError as exc:
            raise SpoolError(f"{where} is corrupted: {exc}") from None
        if header != rec.header_fields():
            raise SpoolError(f"{where} does not match its manifest record")
        return data

    # -- the uploader's cursor ------------------------------------------------------------

    def _pending(self) -> list[ManifestRecord]:
        return [
            rec
            for rec in self._live.values()
            if rec.key not in self._acked and rec.key not in self._corrupt
        ]

    def pending(self) -> list[ManifestRecord]:
        """Stored segments not yet acknowledged (nor dropped, nor corrupt), oldest first."""
        with self._lock:
            return self._pending()

    def body(self, record: ManifestRecord) -> bytes:
        """The stored, encrypted file of ``record`` exactly as it is uploaded.

        Raises:
            SpoolError: the segment is gone (dropped, missing) or its file does not match
                ``record.body_sha256``.
        """
        rec, fd = self._open_segment(record.stream, record.seq)
        blob = self._read_whole(rec, fd)
        if rec.body_sha256 != record.body_sha256 or body_sha256(blob) != record.body_sha256:
            raise SpoolError(
                f"{self.folder}: {record.stream.value} segment {record.seq} ({rec.file}) is "
                "corrupted (its file is not the one the manifest lists)"
            )
        return blob

    def acknowledge(self, stream: Stream, seq: int, body_sha256: str) -> None:
        """Record durably that the service stored this segment with this body digest.

        Idempotent: the same acknowledgement again is a no-op. Works on an earlier
        session's spool too (the acknowledgements are outside the MAC chain).

        Raises:
            SpoolError: unknown segment, a digest that is not the stored file's (or not
                the one acknowledged before), closed, or the log cannot be written.
        """
        where = f"{self.folder}: {stream.value} segment {seq}"
        with self._lock:
            if self._acks is None:
                raise SpoolError(f"{self.folder}: the spool is closed")
            done = self._acked.get((stream, seq))
            if done is not None:
                if done.body_sha256 != body_sha256:
                    raise SpoolError(f"{where} was acknowledged with another digest")
                return
            rec = self._live.get((stream, seq))
            if rec is None and (stream, seq) not in self._dropped:
                raise SpoolError(f"{where} is not in the spool")
            if rec is not None and rec.body_sha256 != body_sha256:
                raise SpoolError(f"{where}: the acknowledged digest is not the stored file's")
            ack = Acknowledgement(stream, seq, body_sha256, _now())
            try:
                self._acks.append(ack.to_line())
                self._acks.sync()
            except OSError as exc:
                raise SpoolError(
                    f"{where}: cannot record the acknowledgement: {_why(exc)}"
                ) from None
            self._acked[ack.key] = ack
            self._seen.add(ack.key)

    def acknowledged(self) -> list[Acknowledgement]:
        """Every acknowledgement recorded, in the order they were given."""
        with self._lock:
            return list(self._acked.values())

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Write the closing line (counts and the last MAC), close the files, unlock."""
        with self._lock:
            if self._manifest is not None:
                try:
                    self._append_line(
                        {
                            "kind": "closed",
                            "utc": _now(),
                            "lines": self._manifest.read_all().count(b"\n"),
                            "segments": len(self._live),
                            "dropped": len(self._dropped),
                            "last_mac": self._head[1],
                        }
                    )
                except OSError as exc:
                    log.upload.error(
                        "Spool %s: the closing line cannot be written: %s", self.folder, exc
                    )
            self._close_files()

    def _close_files(self) -> None:
        for file in (self._manifest, self._acks):
            if file is not None:
                file.close()
        self._manifest = None
        self._acks = None
        if self._folder_lock is not None:
            self._folder_lock.release()
            self._folder_lock = None

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably (a torn tail of a read-only spool's manifest)."""
    manifest = AppendLog.open(path)
    try:
        manifest.truncate(size)
        manifest.sync()
    finally:
        manifest.close()
