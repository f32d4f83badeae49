"""Focus guard: notice when the kiosk loses focus, journal how long, and bring it back.

The platform says which window is active system-wide (X11: ``_NET_ACTIVE_WINDOW`` or the
input focus; Windows: the foreground window; macOS: the frontmost application). A timer
asks every ``POLL_MS`` and Qt's ``focusWindowChanged`` asks at once. When a window of
another process becomes active the guard journals ``guards.focus_lost`` (with that
window), raises and activates the kiosk again, and journals ``guards.focus_regained`` with
the duration once the kiosk is back. Without a platform answer it falls back to Qt's own
application state (it then only knows that *some* other program is active).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from PySide6.QtCore import QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.guards.timers import repeating_timer, stop_timer
from lockdown.platform.base import Capability, DesktopPlatform, WindowRef

POLL_MS: Final = 200
#: A program that steals the focus in a loop: the first FLOOD_BURST losses in
#: FLOOD_INTERVAL seconds are journalled one by one, the rest as a count (never lost).
FLOOD_INTERVAL: Final = 10.0
FLOOD_BURST: Final = 5


class FocusGuard:
    """Keeps the kiosk in front; journals every loss of focus with its duration."""

    def __init__(
        self,
        settings: Settings,
        window: QWidget,
        platform: DesktopPlatform,
        poll_ms: int = POLL_MS,
    ) -> None:
        self._enabled: bool = settings["guards.focus"]
        self._window = window
        self._platform = platform
        self._poll_ms = poll_ms
        self._report: RateLimitedSink | None = None
        self._timer: QTimer | None = None
        self._lost_at: float | None = None
        self._losses = 0
        self._qt_focused = True
        self._running = False

    @property
    def name(self) -> str:
        return "focus"

    @property
    def losses(self) -> int:
        return self._losses

    def info(self) -> GuardInfo:
        if not self._enabled:
            return GuardInfo(self.name, "none", Availability.FULL, "focus guard is off")
        support = self._platform.support(Capability.ACTIVE_WINDOW)
        if support.available:
            return GuardInfo(self.name, support.backend, Availability.FULL)
        return GuardInfo(
            self.name,
            "qt application state",
            Availability.PARTIAL,
            f"the other window is not named: {support.reason}",
        )

    def start(self, report: EventSink) -> None:
        if self._running or not self._enabled:
            return
        self._report = RateLimitedSink(report, FLOOD_INTERVAL, burst=FLOOD_BURST)
        self._qt_focused = QGuiApplication.focusWindow() is not None  # once, not polled
        self._running = True
        self._timer = repeating_timer(self._poll_ms, self.check)
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.focusWindowChanged.connect(self._focus_changed)
        log.guards.info("Focus guard started (%s)", self.info().backend)

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        stop_timer(self._timer)
        self._timer = None
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.focusWindowChanged.disconnect(self._focus_changed)
        if self._lost_at is not None:
            self._regained(at_stop=True)
        if self._report is not None:
            self._report.flush()
        log.guards.info("Focus guard stopped (%d losses of focus)", self._losses)

    # -- the work ---------------------------------------------------------------------

    def _focus_changed(self, window: object) -> None:
        # WORKAROUND(PySide6 6.12 on CPython 3.11): every call of a Qt getter that returns
        # a null QObject* (focusWindow(), parent(), …) takes a reference from None, and a
        # timer polling one aborts the process within minutes. Remember what the signal
        # says instead of asking focusWindow() on each check.
        self._qt_focused = window is not None
        # Let the window system settle before asking it.
        QTimer.singleShot(0, self.check)

    def _our_window_ids(self) -> set[int]:
        ids = {int(self._window.winId())}
        ids.update(int(w.winId()) for w in QGuiApplication.topLevelWindows() if w.isVisible())
        return ids

    def _is_ours(self, active: WindowRef) -> bool:
        return active.pid == os.getpid() or active.id in self._our_window_ids()

    def check(self) -> None:
        """Compare the active window with ours; journal and react to a change."""
        if not self._running:
            return
        if self._report is not None:
            self._report.poll()
        ours: bool
        other: dict[str, Any] = {}
        if self._platform.support(Capability.ACTIVE_WINDOW).available:
            active = self._platform.active_window()
            if active is None:
                # No window has the focus (a moment between two windows, or the start
                # before the window system activated ours): take it back quietly; only
                # another program's window counts as a loss of focus.
                if self._lost_at is None:
                    self.bring_back()
                    return
                ours = False
            else:
                ours = self._is_ours(active)
                other = active.describe()
        else:
            ours = self._qt_focused
        if ours:
            if self._lost_at is not None:
                self._regained(at_stop=False)
            return
        if self._lost_at is None:
            self._lost_at = time.monotonic()
            self._losses += 1
            log.guards.warning("The exam lost the focus to %s", other or "another program")
            if self._report is not None:
                self._report(Event("guards.focus_lost", {"window": other}))
        self.bring_back()

    def _regained(self, *, at_stop: bool) -> None:
        assert self._lost_at is not None
        duration = round(time.monotonic() - self._lost_at, 3)
        self._lost_at = None
        log.guards.info("The exam has the focus again after %.3f s", duration)
        if self._report is not None:
            payload: dict[str, Any] = {"duration": duration}
            if at_stop:
                payload["at_stop"] = True
            self._report(Event("guards.focus_regained", payload))

    def bring_back(self) -> None:
        """Raise and activate the kiosk window."""
        self._window.raise_()
        self._window.activateWindow()
        self._platform.activate_window(int(self._window.winId()))
