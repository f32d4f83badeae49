"""The spool contract: the segment value recorders hand over, and the store that takes it.

The segment is the spool's contract, so it lives on the upload side: ``capture/`` imports
it from here (``lockdown.capture.base`` re-exports it), and ``upload/`` never imports
``capture/``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from lockdown.errors import UserError


class Stream(enum.Enum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    SCREEN = "screen"


@dataclass(frozen=True)
class Segment:
    """One finished, self-contained media segment (plain bytes; the spool encrypts them)."""

    stream: Stream
    seq: int
    start_utc: datetime
    end_utc: datetime
    duration: float
    #: video frames, or audio samples, in the segment
    units: int
    mime: str
    data: bytes


SegmentSink = Callable[[Segment], None]


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
