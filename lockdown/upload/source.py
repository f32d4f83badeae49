"""A spool as the uploader's source: its unsent segments and their acknowledgement.

Wraps :class:`lockdown.upload.spool.Spool`'s cursor (``pending``, ``body``,
``acknowledge``): the live session's spool (the same object the recorders write to: one
process per folder) or an earlier session's, reopened without its keys
(:meth:`Spool.open_earlier`). Segments travel exactly as stored (encrypted), so no key is
needed to send them.
"""

from __future__ import annotations

from lockdown.upload.base import Stream
from lockdown.upload.format import ManifestRecord, content_digest
from lockdown.upload.spool import Spool
from lockdown.upload.uploader import PendingSegment


def _pending(record: ManifestRecord) -> PendingSegment:
    return PendingSegment(
        stream=record.stream.value,
        seq=record.seq,
        digest=content_digest(record.body_sha256),
        plain_sha256=record.sha256,
        start_utc=record.start_utc.isoformat(),
        duration=record.duration,
        ciphertext_bytes=record.ciphertext_bytes,
    )


class SpoolSource:
    """The uploader's view of one open spool (thread-safe: the spool locks itself)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._records: dict[tuple[str, int], ManifestRecord] = {}

    def pending(self) -> list[PendingSegment]:
        records = self.spool.pending()
        for record in records:
            self._records[(record.stream.value, record.seq)] = record
        return [_pending(r) for r in records]

    def body(self, segment: PendingSegment) -> bytes:
        record = self._records.get(segment.key)
        if record is None:
            record = next(r for r in self.spool.pending() if (r.stream.value, r.seq) == segment.key)
        return self.spool.body(record)

    def _digests(self) -> dict[tuple[str, int], str]:
        known = {(r.stream.value, r.seq): r.body_sha256 for r in self.spool.records()}
        for ack in self.spool.acknowledged():
            known.setdefault((ack.stream.value, ack.seq), ack.body_sha256)
        return known

    def previous_digest(self, segment: PendingSegment) -> str:
        if segment.seq == 0:
            return ""
        previous = self._digests().get((segment.stream, segment.seq - 1))
        return content_digest(previous) if previous else ""

    def acknowledge(self, segment: PendingSegment, digest: str) -> None:
        # the spool refuses a digest that is not its stored file's
        self.spool.acknowledge(Stream(segment.stream), segment.seq, _hex(digest))
        self._records.pop(segment.key, None)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for stream, _seq in self._digests():
            counts[stream] = counts.get(stream, 0) + 1
        return counts

    def head(self) -> dict[str, str]:
        return self.spool.head()


def _hex(digest: str) -> str:
    """The hex SHA-256 of a ``sha-256=:<base64>:`` value ("" when it is not one)."""
    import base64
    import binascii

    if not (digest.startswith("sha-256=:") and digest.endswith(":")):
        return ""
    try:
        return base64.b64decode(digest[len("sha-256=:") : -1], validate=True).hex()
    except (binascii.Error, ValueError):
        return ""
