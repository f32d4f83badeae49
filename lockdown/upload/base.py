"""The spool contract: recorders hand finished segments to a durable, encrypted store."""

from __future__ import annotations

from typing import Protocol

from lockdown.capture.base import Segment
from lockdown.errors import UserError


class SpoolError(UserError):
    """The spool cannot take or give a segment (disk full, folder unwritable, corrupted).

    The message is one line that says what happened (and where); the CLI prints it as is.
    """


class SegmentStore(Protocol):
    def add(self, segment: Segment) -> None:
        """Encrypt and store ``segment`` atomically (write, fsync, rename) with a manifest record.

        Raises:
            SpoolError: the segment could not be stored; nothing finalized before is harmed.
        """
        ...

    def close(self) -> None: ...
