"""A spool folder as the uploader's source: its segments, read without the session key.

The uploader sends each segment file exactly as the spool stores it (encrypted), so it
needs no key: a spool of an earlier session, whose keys died with its process, drains
as well as the live one. Acknowledgements go to ``uploaded.jsonl`` beside the manifest
(one line per segment the service confirmed, with the ``Content-Digest`` it echoed;
appended and fsynced through :class:`lockdown.durable.AppendLog`), so a crash loses at
most the acknowledgement of a segment the service already holds, which the next run
finds in the service's manifest.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Final

from lockdown.durable import AppendLog
from lockdown.events import GENESIS
from lockdown.session.client import content_digest
from lockdown.upload.base import SpoolError
from lockdown.upload.spool import MANIFEST_FILE, SEGMENTS_DIR, listing, parse_manifest
from lockdown.upload.uploader import PendingSegment

ACK_FILE: Final = "uploaded.jsonl"


def read_acks(folder: Path) -> dict[tuple[str, int], str]:
    """(stream, seq) -> digest of every acknowledged segment (a torn last line ignored)."""
    acks: dict[tuple[str, int], str] = {}
    try:
        data = (folder / ACK_FILE).read_bytes()
    except FileNotFoundError:
        return acks
    for line in data.splitlines():
        try:
            obj = json.loads(line)
            acks[(str(obj["stream"]), int(obj["seq"]))] = str(obj["digest"])
        except (ValueError, KeyError, TypeError):
            continue
    return acks


class SpoolFolderSource:
    """The uploader's view of one spool folder (thread-safe)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._acks = read_acks(self.folder)
        self._log: AppendLog | None = None
        self._digests: dict[tuple[str, int], str] = dict(self._acks)

    def close(self) -> None:
        with self._lock:
            if self._log is not None:
                self._log.close()
                self._log = None

    def pending(self) -> list[PendingSegment]:
        try:
            records, _ = listing(self.folder)
        except SpoolError:
            return []
        with self._lock:
            acked = set(self._acks)
        items = [
            PendingSegment(
                stream=r.stream.value,
                seq=r.seq,
                file=self.folder / SEGMENTS_DIR / r.file,
                plain_sha256=r.sha256,
                start_utc=r.start_utc.isoformat(),
                duration=r.duration,
                ciphertext_bytes=r.ciphertext_bytes,
            )
            for r in records
            if (r.stream.value, r.seq) not in acked
        ]
        return sorted(items, key=lambda s: (s.start_utc, s.seq, s.stream))

    def body(self, segment: PendingSegment) -> bytes:
        data = segment.file.read_bytes()
        with self._lock:
            self._digests[segment.key] = content_digest(data)
        return data

    def previous_digest(self, segment: PendingSegment) -> str:
        if segment.seq == 0:
            return ""
        key = (segment.stream, segment.seq - 1)
        with self._lock:
            known = self._digests.get(key)
        if known is not None:
            return known
        path = segment.file.with_name(f"{segment.stream}-{segment.seq - 1:06d}.seg")
        try:
            digest = content_digest(path.read_bytes())
        except OSError:
            return ""
        with self._lock:
            self._digests[key] = digest
        return digest

    def acknowledge(self, segment: PendingSegment, digest: str) -> None:
        line = json.dumps(
            {"stream": segment.stream, "seq": segment.seq, "digest": digest},
            separators=(",", ":"),
        )
        with self._lock:
            if segment.key in self._acks:
                return
            if self._log is None:
                self._log = AppendLog.open(self.folder / ACK_FILE)
            self._log.append((line + "\n").encode("utf-8"))
            self._log.sync()
            self._acks[segment.key] = digest
            self._digests[segment.key] = digest

    def acknowledged(self) -> dict[tuple[str, int], str]:
        with self._lock:
            return dict(self._acks)

    def counts(self) -> dict[str, int]:
        try:
            records, _ = listing(self.folder)
        except SpoolError:
            return {}
        counts: dict[str, int] = {}
        for r in records:
            counts[r.stream.value] = counts.get(r.stream.value, 0) + 1
        return counts

    def head(self) -> dict[str, str]:
        try:
            data = (self.folder / MANIFEST_FILE).read_bytes()
        except OSError:
            return {}
        lines = parse_manifest(data).lines
        if not lines:
            return {}
        last = lines[-1][1]
        return {"hash": str(last.get("hash", GENESIS)), "mac": str(last.get("mac", GENESIS))}
