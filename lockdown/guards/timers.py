"""The repeating Qt timer the desktop guards poll with (GUI thread only), and the guard
against PySide6's lost references to ``None``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

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


T = TypeVar("T")
#: References to None given back for the ones PySide6 took (see :func:`keep_none`).
_NONE_REFS: list[None] = []


def keep_none(call: Callable[[], T]) -> T:
    """Run a Qt call that runs once per candidate action; give back to ``None`` the
    references it took.

    WORKAROUND(PySide6 6.12 on CPython 3.11, measured): every call of a void Qt method,
    and every getter that returns a null ``QObject*``, drops a reference to ``None``; a
    few thousand abort the process. Measured around the call, given back here.
    """
    before = sys.getrefcount(None)
    result = call()
    lost = before - sys.getrefcount(None) + (1 if result is None else 0)
    if lost > 0:
        _NONE_REFS.extend([None] * lost)
    return result
