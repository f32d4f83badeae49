"""The repeating Qt timer the desktop guards poll with (GUI thread only)."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QTimer


def repeating_timer(interval_ms: int, slot: Callable[[], None]) -> QTimer:
    """A started timer that calls ``slot`` every ``interval_ms`` on the GUI thread."""
    timer = QTimer()
    timer.setInterval(interval_ms)
    timer.timeout.connect(slot)
    timer.start()
    return timer


def stop_timer(timer: QTimer | None) -> None:
    """Stop ``timer`` (None is fine); the caller drops its reference afterwards."""
    if timer is not None:
        timer.stop()
