"""Suspension watchdog: a monotonic tick that notices when the whole process stood still.

``kill -STOP`` (then anything, then ``kill -CONT``), a debugger's breakpoint or a laptop
suspend stops every thread of Lockdown at once, so no guard can see what happened
meanwhile. A thread of its own wakes every :data:`TICK_S` and compares the boot-time
clock (``CLOCK_BOOTTIME``: monotonic, and counting a system suspend too) with where it
expected to be; a gap of :data:`GAP_S` or more is journalled as ``guards.suspended``
with its length, and the callbacks run (the process watcher rescans the process table:
a program started while we stood still may have missed our notice of its start).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Final

from lockdown import log
from lockdown.events import Event, EventSink

TICK_S: Final = 0.5
#: A tick this much later than due counts as a suspension (a loaded machine and the GIL
#: delay a tick by far less).
GAP_S: Final = 1.0


def boot_clock() -> float:
    """Seconds on a clock that never goes back and counts a system suspend."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    if clock is not None:
        return time.clock_gettime(clock)
    return time.monotonic()


class SuspendWatchdog:
    """Journals every gap in its tick; calls ``on_gap(seconds)`` after each."""

    name = "suspend_watchdog"

    def __init__(
        self,
        on_gap: Callable[[float], None] | None = None,
        *,
        tick: float = TICK_S,
        gap: float = GAP_S,
        clock: Callable[[], float] = boot_clock,
    ) -> None:
        self._on_gap = on_gap
        self._tick = tick
        self._gap = gap
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._report: EventSink | None = None
        #: the gaps seen, in seconds
        self.gaps: list[float] = []

    def start(self, report: EventSink) -> None:
        if self._thread is not None:
            return
        self._report = report
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="suspend-watchdog", daemon=True)
        self._thread.start()
        log.guards.info("Suspension watchdog started (tick %.2f s)", self._tick)

    def _run(self) -> None:
        last = self._clock()
        while not self._stop.wait(self._tick):
            now = self._clock()
            late = now - last - self._tick
            last = now
            if late >= self._gap:
                self._gap_seen(round(late + self._tick, 3))

    def _gap_seen(self, seconds: float) -> None:
        self.gaps.append(seconds)
        log.guards.warning("Lockdown stood still for %.3f s (stopped or suspended)", seconds)
        if self._report is not None:
            self._report(Event("guards.suspended", {"seconds": seconds}))
        if self._on_gap is not None:
            try:
                self._on_gap(seconds)
            except Exception:
                log.guards.exception("Reacting to a suspension failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
