"""One event filter on every window of ours: the kiosk's, and each dialog or popup of ours
as it takes the focus.

The keyboard, drop and injected-input guards judge events before any widget or the web
engine sees them, so their filter has to sit on every top-level ``QWindow`` of this
process that can take input, including the ones that open later (a file dialog, the
page's ``<select>`` list, our own message boxes). :class:`FilteredWindows` installs the
filter, follows ``focusWindowChanged`` when asked, forgets a window as Qt destroys it,
and takes the filter off every window at :meth:`FilteredWindows.stop`.
"""

from __future__ import annotations

from collections.abc import Callable

import shiboken6
from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication, QWindow


class FilteredWindows:
    """The windows ``event_filter`` is installed on (GUI thread only).

    ``follow_focus`` adopts each window of ours that takes the focus; a guard that
    decides itself which windows to adopt (the keyboard guard) calls :meth:`adopt`.
    ``on_forget`` is told of each window Qt destroys.
    """

    def __init__(
        self,
        event_filter: QObject,
        *,
        follow_focus: bool = True,
        on_forget: Callable[[QObject | None], None] | None = None,
    ) -> None:
        self.event_filter = event_filter
        self._follow_focus = follow_focus
        self._on_forget = on_forget
        self._windows: list[QWindow] = []
        self._running = False

    @property
    def windows(self) -> tuple[QWindow, ...]:
        return tuple(self._windows)

    def start(self, first: QWindow | None) -> None:
        """Adopt ``first`` (the kiosk's window) and, with ``follow_focus``, every later one."""
        if self._running:
            return
        self._running = True
        if first is not None:
            self.adopt(first)
        app = QGuiApplication.instance()
        if self._follow_focus and isinstance(app, QGuiApplication):
            app.focusWindowChanged.connect(self._on_focus_window)

    def adopt(self, window: QWindow) -> None:
        """Put the filter on ``window`` (once)."""
        if not self._running or any(w is window for w in self._windows):
            return
        window.installEventFilter(self.event_filter)
        window.destroyed.connect(self._forget)
        self._windows.append(window)

    def stop(self) -> None:
        """Take the filter off every window; stop following the focus."""
        if not self._running:
            return
        self._running = False
        app = QGuiApplication.instance()
        if self._follow_focus and isinstance(app, QGuiApplication):
            app.focusWindowChanged.disconnect(self._on_focus_window)
        for window in self._windows:
            if shiboken6.isValid(window):
                window.removeEventFilter(self.event_filter)
                window.destroyed.disconnect(self._forget)
        self._windows = []

    def _on_focus_window(self, window: QWindow | None) -> None:
        if window is not None:
            self.adopt(window)

    def _forget(self, obj: QObject | None = None) -> None:
        self._windows = [w for w in self._windows if shiboken6.isValid(w) and w is not obj]
        if self._on_forget is not None:
            self._on_forget(obj)
