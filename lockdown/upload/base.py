"""The spool contract: recorders hand finished segments to a durable, encrypted store."""

from __future__ import annotations

from typing import Protocol

from lockdown.capture.base import Segment


class SpoolError(Exception):
    """The spool cannot take a segment (disk full, folder unwritable); the message says why."""


class SegmentStore(Protocol):
    def add(self, segment: Segment) -> None:
        """Encrypt and store ``segment`` atomically (write, fsync, rename) with a manifest record.

        Raises:
            SpoolError: the segment could not be stored; nothing finalized before is harmed.
        """
        ...

    def close(self) -> None: ...
