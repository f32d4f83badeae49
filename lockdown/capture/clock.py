"""The capture clock: one monotonic-to-UTC mapping shared by every recorder of a session.

Frames and audio blocks are stamped with :meth:`CaptureClock.now` (monotonic seconds)
when they are captured; the clock turns such a stamp into UTC, so a hint's time maps into
a segment as ``segment.start_utc + offset`` and the streams line up with each other and
the journal.

The monotonic clock stops while the computer is suspended, and the wall clock can be set
by the candidate. Each :meth:`~CaptureClock.now` compares the three clocks (monotonic, a
monotonic clock that runs on during a suspend, wall) with its previous call:

* a **suspend** (the suspend-aware clock ran on while the monotonic one stood still) adds
  an *epoch*: stamps taken from then on map to UTC with the slept time added, so segment
  times after a resume are the real ones. Recorders cut their segment where the epoch
  changes, so no segment spans a suspend; a segment maps all its stamps with the epoch it
  began in (:meth:`CaptureClock.utc` with ``epoch``). Journalled as ``clock.jump`` with
  ``kind: "suspend"``.
* the **wall clock set** (it moved against both monotonic clocks) is journalled as
  ``clock.jump`` with ``kind: "set"``; the mapping does not follow it: the candidate
  controls the wall clock, so segment times stay on the session's own timeline, and the
  event says how far the journal's ``utc`` field moved against them.

Linux has ``CLOCK_BOOTTIME`` and macOS a ``CLOCK_MONOTONIC`` that counts sleep (Python's
``time.monotonic`` there does not). Elsewhere (Windows: not run here) no such clock is
known: a wall-clock jump is journalled with ``kind: "wall"`` and the mapping stays.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from lockdown import log
from lockdown.events import Event, EventSink

#: A suspend shorter than this is not told apart from scheduling noise.
SUSPEND_MIN_S: Final = 0.5
#: A wall-clock move against the monotonic clocks larger than this is a jump (NTP slews
#: by far less; a step by ``ntpdate`` or ``date -s`` is a jump).
WALL_JUMP_MIN_S: Final = 1.0


class TimeSource(Protocol):
    """The three clocks the capture clock compares (injectable for tests)."""

    def monotonic(self) -> float:
        """Monotonic seconds that stand still during a suspend (``time.monotonic``)."""
        ...

    def awake(self) -> float | None:
        """Monotonic seconds that run on during a suspend; None where none is known."""
        ...

    def wall(self) -> float:
        """Wall-clock seconds since the epoch (``time.time``)."""
        ...


def _suspend_aware_clock() -> int | None:
    if sys.platform.startswith("linux"):
        return time.CLOCK_BOOTTIME
    if sys.platform == "darwin":  # Apple's CLOCK_MONOTONIC counts sleep (not run here)
        return time.CLOCK_MONOTONIC
    return None


class SystemTime:
    """The computer's clocks."""

    def __init__(self) -> None:
        self._awake_id = _suspend_aware_clock()

    def monotonic(self) -> float:
        return time.monotonic()

    def awake(self) -> float | None:
        return None if self._awake_id is None else time.clock_gettime(self._awake_id)

    def wall(self) -> float:
        return time.time()


@dataclass(frozen=True)
class _Anchor:
    """From monotonic ``mono`` on (epoch ``index``), stamps map to ``utc + (m - mono)``."""

    mono: float
    utc: datetime


class CaptureClock:
    """Maps monotonic capture stamps to UTC; follows a suspend, journals a wall-clock jump.

    Args:
        report: the journal sink for ``clock.jump`` (None: log only; settable later with
            :meth:`set_report`).
        source: the clocks (default: the computer's).
    """

    def __init__(self, report: EventSink | None = None, *, source: TimeSource | None = None):
        self._source = source or SystemTime()
        self._report = report
        self._lock = threading.Lock()
        mono, awake, wall = self._read()
        self._anchors = [_Anchor(mono, datetime.fromtimestamp(wall, UTC))]
        self._last = (mono, awake, wall)
        self.jumps = 0

    def set_report(self, report: EventSink | None) -> None:
        """Journal ``clock.jump`` to ``report`` from now on."""
        self._report = report

    def _read(self) -> tuple[float, float | None, float]:
        source = self._source
        return source.monotonic(), source.awake(), source.wall()

    @property
    def epoch(self) -> int:
        """How many suspends were seen (a recorder cuts its segment when this changes)."""
        return len(self._anchors) - 1

    def now(self) -> float:
        """The current capture time (monotonic seconds), after looking for a jump."""
        events: list[Event] = []
        with self._lock:
            mono, awake, wall = self._read()
            last_mono, last_awake, last_wall = self._last
            self._last = (mono, awake, wall)
            ran = mono - last_mono
            slept = 0.0
            if awake is not None and last_awake is not None:
                slept = (awake - last_awake) - ran
                if slept >= SUSPEND_MIN_S:
                    utc = self._utc(mono, self._anchors[-1]) + timedelta(seconds=slept)
                    self._anchors.append(_Anchor(mono, utc))
                    events.append(
                        Event(
                            "clock.jump",
                            {
                                "kind": "suspend",
                                "seconds": round(slept, 3),
                                "utc": utc.isoformat(timespec="milliseconds"),
                                "epoch": self.epoch,
                            },
                        )
                    )
                else:
                    slept = 0.0
            moved = (wall - last_wall) - ran - slept
            if abs(moved) >= WALL_JUMP_MIN_S:
                events.append(
                    Event(
                        "clock.jump",
                        {
                            "kind": "set" if awake is not None else "wall",
                            "seconds": round(moved, 3),
                            "wall": datetime.fromtimestamp(wall, UTC).isoformat(
                                timespec="milliseconds"
                            ),
                        },
                    )
                )
            self.jumps += len(events)
        for event in events:
            log.capture.warning("Clock jump: %s", dict(event.payload))
            report = self._report
            if report is not None:
                try:
                    report(event)
                except Exception:
                    log.capture.exception("Could not journal a clock jump")
        return mono

    @staticmethod
    def _utc(mono: float, anchor: _Anchor) -> datetime:
        return anchor.utc + timedelta(seconds=mono - anchor.mono)

    def utc(self, mono: float, *, epoch: int | None = None) -> datetime:
        """The UTC time of the stamp ``mono``: in ``epoch`` (a segment's own, so all its
        stamps map alike), else in the epoch the stamp falls in."""
        anchors = self._anchors
        if epoch is not None:
            return self._utc(mono, anchors[min(max(0, epoch), len(anchors) - 1)])
        for anchor in reversed(anchors):
            if mono >= anchor.mono:
                return self._utc(mono, anchor)
        return self._utc(mono, anchors[0])

    def mono(self, utc: datetime) -> float:
        """The monotonic stamp of ``utc`` (the inverse of :meth:`utc`)."""
        anchors = self._anchors
        for anchor in reversed(anchors):
            if utc >= anchor.utc:
                return anchor.mono + (utc - anchor.utc).total_seconds()
        return anchors[0].mono + (utc - anchors[0].utc).total_seconds()
