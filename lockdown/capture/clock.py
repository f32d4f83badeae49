"""The capture clock: one monotonic-to-UTC mapping shared by every recorder of a session.

Frames and audio blocks are stamped with ``time.monotonic()`` when they are captured; the
clock turns such a stamp into UTC, so a hint's time maps into a segment as
``segment.start_utc + offset`` and the streams line up with each other and the journal.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class CaptureClock:
    """Maps monotonic seconds to UTC, anchored once (immune to wall-clock jumps)."""

    def __init__(self) -> None:
        self._mono0 = time.monotonic()
        self._utc0 = datetime.now(UTC)

    @staticmethod
    def now() -> float:
        """The current capture time (monotonic seconds)."""
        return time.monotonic()

    def utc(self, mono: float) -> datetime:
        """The UTC time of the monotonic stamp ``mono``."""
        return self._utc0 + timedelta(seconds=mono - self._mono0)

    def mono(self, utc: datetime) -> float:
        """The monotonic stamp of ``utc`` (the inverse of :meth:`utc`)."""
        return self._mono0 + (utc - self._utc0).total_seconds()
