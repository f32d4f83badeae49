"""Shared-display guard: on the candidate's own X display the kiosk defends itself like a
screen locker (xsecurelock's techniques).

1. **Nothing hides the kiosk for long.** A socket notifier on an X connection of its own
   (``platform/x11_shared``) wakes the guard on every X event that can change the kiosk's
   window (map, unmap, configure, restack, a desktop or window-state property) and the
   guard, on the GUI thread, compares the window
   with what it must be: mapped, not minimised, on the current desktop, full screen on its
   screen. A difference is journalled as ``guards.kiosk_disturbed`` (what, and the state
   seen), undone at once (map, switch the desktop back or bring the kiosk to the current
   one, full screen and the screen's geometry again, activate), and ``guards.kiosk_restored``
   says, once the kiosk is back, how long it took from the X event (``ms``). A change the
   window manager does not undo within :data:`PATIENT_AFTER` tries is journalled as
   ``guards.kiosk_not_restored`` and tried again every second.
2. **Nothing stays above the exam.** Any viewable window stacked above the kiosk that is
   not ours (override-redirect included) is journalled as ``guards.window_above`` with its
   owner's pid (X Resource extension) and covered: an override-redirect window is lowered
   to the bottom of the stack, a managed one minimised.
3. **Grabs verified and taken back.** The keyboard guard re-asserts its grab after every
   popup of ours closes and every 200 ms and tells this guard when the X server refuses it;
   this guard checks the pointer every :data:`GRAB_CHECK_MS`. A grab held by another client
   is journalled (``guards.grab_held``) and, as ``guards.force_grab`` says, taken back by
   unmapping that client's windows (``unmap``) or disconnecting it (``disconnect``) —
   ``guards.grab_taken_back`` names it. The window manager and the desktop shell are never
   touched: they are listed as ``exempt``.

The X I/O error handler (``xkill`` of the kiosk) is the session's
(:mod:`lockdown.app`); the suspension watchdog is :mod:`lockdown.guards.watchdog`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from PySide6.QtCore import QSocketNotifier, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QWindow
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.guards.keyboard import KeyboardGuard
from lockdown.guards.timers import repeating_timer, stop_timer
from lockdown.platform.base import DesktopPlatform

if TYPE_CHECKING:
    from lockdown.platform.x11_shared import (
        KioskState,
        X11SharedDisplay,
        X11WindowWatch,
        XWindow,
    )

#: How often the pointer grab is checked, in milliseconds.
GRAB_CHECK_MS: Final = 500
#: While the kiosk is disturbed, look again this often (the window manager may be slow).
RETRY_MS: Final = 100
#: After this many tries the change is journalled as not undone and tried once a second.
PATIENT_AFTER: Final = 10
SLOW_RETRY_MS: Final = 1000


class SharedDisplayGuard:
    """Keeps the kiosk mapped, full screen, on top and holding the grabs on a shared X display."""

    def __init__(
        self,
        settings: Settings,
        window: QWidget,
        platform: DesktopPlatform,
        keyboard: KeyboardGuard | None = None,
    ) -> None:
        self._enabled: bool = settings["guards.shared_display"]
        self._force: str = settings["guards.force_grab"]
        self._window = window
        self._platform = platform
        self._keyboard = keyboard
        self._report: EventSink | None = None
        self._display: X11SharedDisplay | None = None
        self._watch: X11WindowWatch | None = None
        self._notifier: QSocketNotifier | None = None
        self._retry_timer: QTimer | None = None
        self._timer: QTimer | None = None
        self._running = False
        self._wid = 0
        self._client = 0
        self._screen = (0, 0, 0, 0)
        self._home_desktop: int | None = None
        self._event_at: float | None = None
        self._disturbed: list[str] = []
        self._disturbed_at = 0.0
        self._attempts = 0
        self._last_fix = 0.0
        self._covered: set[tuple[int, int | None]] = set()
        self._grab_noted: dict[str, tuple[int, ...]] = {}
        self._pointer_misses = 0
        #: how long each disturbance took to undo, in ms (tests and the bench read it)
        self.restore_ms: list[float] = []

    @property
    def name(self) -> str:
        return "shared_display"

    def info(self) -> GuardInfo:
        if not self._enabled:
            return GuardInfo(self.name, "none", Availability.FULL, "shared-display guard is off")
        if self._platform.name != "x11":
            return GuardInfo(
                self.name, "none", Availability.FULL, "only an X11 display is shared this way"
            )
        return GuardInfo(self.name, "x11 window watch + grab check", Availability.FULL)

    # -- start / stop -----------------------------------------------------------------

    def start(self, report: EventSink) -> None:
        if self._running or not self._enabled or self._platform.name != "x11":
            return
        from lockdown.platform.x11_shared import X11SharedDisplay, X11WindowWatch

        display = X11SharedDisplay(getattr(self._platform, "display_name", None))
        if not display.available:
            raise GuardUnavailable(display.error)
        self._report = report
        self._display = display
        self._wid = int(self._window.winId())
        self._client = display.client_of(self._wid)
        geometry = self._window.screen().geometry()
        ratio = self._window.devicePixelRatioF()  # Qt's geometry is logical, X's native
        self._screen = (
            round(geometry.x() * ratio),
            round(geometry.y() * ratio),
            round(geometry.width() * ratio),
            round(geometry.height() * ratio),
        )
        self._home_desktop = display.state(self._wid, self._ours).desktop
        try:
            self._watch = X11WindowWatch(display.display_name, self._wid)
        except Exception as exc:
            display.close()
            raise GuardUnavailable(f"cannot watch the exam window: {exc}") from exc
        self._running = True
        # WORKAROUND(PySide6 6.12 on CPython 3.11, measured): a signal emitted from a
        # Python thread aborts the process (bool_dealloc) and each QTimer.singleShot with
        # a Python callable takes a reference from None. The X connection is watched
        # with a socket notifier on the GUI thread and retried with one timer of ours.
        self._notifier = QSocketNotifier(self._watch.fileno(), QSocketNotifier.Type.Read)
        self._notifier.activated.connect(self._readable)
        # one repeating timer, started once: it re-checks while the kiosk is disturbed
        self._retry_timer = repeating_timer(RETRY_MS, self._retry)
        self._timer = repeating_timer(GRAB_CHECK_MS, self.check_pointer)
        if self._keyboard is not None:
            self._keyboard.on_grab_refused = self._keyboard_refused
        if not display.has_xres:
            log.guards.warning("No X Resource extension: window owners from _NET_WM_PID only")
        log.guards.info("Shared-display guard started (force_grab %s)", self._force)
        self.check()

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._keyboard is not None:
            self._keyboard.on_grab_refused = None
        stop_timer(self._timer)
        self._timer = None
        stop_timer(self._retry_timer)
        self._retry_timer = None
        if self._notifier is not None:
            self._notifier.setEnabled(False)
            self._notifier.activated.disconnect(self._readable)
            self._notifier = None
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        if self._display is not None:
            self._display.close()
            self._display = None
        log.guards.info("Shared-display guard stopped")

    # -- 1 and 2: the kiosk's window ----------------------------------------------------

    def _readable(self) -> None:
        """The watch connection has events: read them all, then look at the window."""
        self._event_at = time.monotonic()
        watch = self._watch
        if watch is None:
            return
        if watch.drain() == "closed" and self._notifier is not None:
            self._notifier.setEnabled(False)  # the display is gone: nothing more to read
        self.check()

    def _ours(self, window: XWindow) -> bool:
        """A window of this process: its X Resource pid, or Qt's own X client."""
        return window.pid == os.getpid() or (self._client != 0 and window.client == self._client)

    def check(self) -> None:
        """Compare the kiosk's window with what it must be; journal and undo a difference."""
        try:
            self._check()
        except Exception:  # a slot: never raise into Qt; the next event looks again
            log.guards.exception("Checking the exam window failed")

    def _check(self) -> None:
        seen_at = self._event_at or time.monotonic()
        self._event_at = None
        display = self._display
        if not self._running or display is None:
            return
        state = display.state(self._wid, self._ours)
        if not state.exists:
            return
        problems = self._problems(state)
        for window in state.above:
            self._cover(window)
        if not problems:
            if self._disturbed:
                self._restored()
            return
        if not self._disturbed:
            self._disturbed = problems
            self._attempts = 0
            self._disturbed_at = seen_at
            log.guards.warning("The exam window was disturbed: %s", ", ".join(problems))
            self._journal(
                Event("guards.kiosk_disturbed", {"what": problems, "state": _describe(state)})
            )
        else:
            self._disturbed.extend(p for p in problems if p not in self._disturbed)
            log.guards.debug("The exam window is still disturbed: %s", ", ".join(problems))
        now = time.monotonic()
        if now - self._last_fix >= RETRY_MS / 1000 / 2:
            self._last_fix = now
            self._attempts += 1
            self._undo(state, problems)
            if self._attempts == PATIENT_AFTER:
                # the window manager does not do what it is asked: say so, keep trying
                log.guards.error("The exam window could not be restored: %s", problems)
                self._journal(
                    Event(
                        "guards.kiosk_not_restored",
                        {"what": problems, "attempts": self._attempts, "state": _describe(state)},
                    )
                )

    def _retry(self) -> None:
        """Every :data:`RETRY_MS`: while the kiosk is disturbed, look again (after
        :data:`PATIENT_AFTER` tries only once a second); otherwise nothing."""
        if not (self._running and self._disturbed):
            return
        patient = self._attempts >= PATIENT_AFTER
        if patient and time.monotonic() - self._last_fix < SLOW_RETRY_MS / 1000:
            return
        self.check()

    def _problems(self, state: KioskState) -> list[str]:
        problems = []
        if state.current_desktop is not None and state.on_other_desktop():
            if state.desktop == self._home_desktop:
                problems.append("desktop_switched")
            else:
                problems.append("sent_to_desktop")
        elif state.iconic:
            problems.append("minimised")
        elif not state.viewable:
            problems.append("unmapped")
        if state.window_manager and not state.fullscreen:
            problems.append("not_fullscreen")
        x, y, w, h = state.geometry
        sx, sy, sw, sh = self._screen
        if (x, y) != (sx, sy):
            problems.append("moved")
        if (w, h) != (sw, sh):
            problems.append("resized")
        return problems

    def _undo(self, state: KioskState, problems: list[str]) -> None:
        assert self._display is not None
        desktop = switch_to = None
        if "desktop_switched" in problems:
            switch_to = state.desktop
        elif "sent_to_desktop" in problems:
            desktop = state.current_desktop
            self._home_desktop = desktop
        # X requests only (map, _NET_WM_STATE, _NET_ACTIVE_WINDOW…): in PySide6 6.12 every
        # call of a void Qt method (raise_(), activateWindow(), QTimer.start()…) takes a
        # reference from None (measured), so nothing here calls one per disturbance.
        self._display.show_kiosk(
            self._wid, state, self._screen, desktop=desktop, switch_to=switch_to
        )

    def _restored(self) -> None:
        ms = round((time.monotonic() - self._disturbed_at) * 1000, 1)
        what, self._disturbed = self._disturbed, []
        self.restore_ms.append(ms)
        log.guards.info("The exam window is back after %.1f ms (%s)", ms, ", ".join(what))
        self._journal(Event("guards.kiosk_restored", {"what": what, "ms": ms}))
        if self._keyboard is not None:
            self._keyboard.follow()  # an unmapped window lost its grab

    def _cover(self, window: XWindow) -> None:
        assert self._display is not None
        action = self._display.cover(window)
        if (window.id, window.pid) in self._covered and window.override_redirect:
            return  # journalled once per window; it is lowered again whenever it rises
        self._covered.add((window.id, window.pid))
        log.guards.warning(
            "Window %#x (pid %s) was above the exam: %s", window.id, window.pid, action
        )
        self._journal(Event("guards.window_above", {"window": window.describe(), "action": action}))

    # -- 3: grabs ---------------------------------------------------------------------

    def _keyboard_refused(self, target: QWindow) -> None:
        if not self._running or self._disturbed:
            return  # an unmapped kiosk cannot hold a grab: undone by check()
        self._take_back("keyboard", lambda: target.setKeyboardGrabEnabled(True))

    def check_pointer(self) -> None:
        """Every :data:`GRAB_CHECK_MS`: is the pointer held by another client?"""
        display = self._display
        if not self._running or display is None or self._disturbed:
            return
        if display.pointer_grab_free(self._wid):
            self._pointer_misses = 0
            self._grab_noted.pop("pointer", None)
            return
        if any(w.isVisible() and w.type() == Qt.WindowType.Popup for w in _top_levels()):
            return  # our own popup holds the pointer
        self._pointer_misses += 1
        if self._pointer_misses >= 2:  # not a button held down for a moment
            self._take_back("pointer", lambda: display.pointer_grab_free(self._wid))

    def _take_back(self, grab: str, try_grab: Callable[[], bool]) -> None:
        try:
            self._take_back_grab(grab, try_grab)
        except Exception:  # called from Qt: never raise into it
            log.guards.exception("Taking the %s grab back failed", grab)

    def _take_back_grab(self, grab: str, try_grab: Callable[[], bool]) -> None:
        assert self._display is not None
        started = time.monotonic()
        if self._force == "off":
            if self._grab_noted.get(grab) != ():
                self._grab_noted[grab] = ()
                self._journal(
                    Event("guards.grab_held", {"grab": grab, "action": "none", "policy": "off"})
                )
                log.guards.warning("Another program holds the %s grab (force_grab off)", grab)
            return
        outcome = self._display.take_back_grab(try_grab, self._force, self._ours)
        ms = round((time.monotonic() - started) * 1000, 1)
        exempt = [w.describe() for w in outcome.exempt]
        if outcome.holder:
            self._grab_noted.pop(grab, None)
            self._pointer_misses = 0
            log.guards.warning(
                "The %s grab was held by pid %s; %s", grab, outcome.holder[0].pid, outcome.action
            )
            self._journal(
                Event(
                    "guards.grab_taken_back",
                    {
                        "grab": grab,
                        "holder": [w.describe() for w in outcome.holder],
                        "action": outcome.action,
                        "ms": ms,
                        "exempt": exempt,
                    },
                )
            )
            if self._keyboard is not None:
                self._keyboard.follow()
            return
        if outcome.regained:
            return  # released meanwhile
        key = tuple(w.id for w in outcome.exempt)
        if self._grab_noted.get(grab) != key:
            self._grab_noted[grab] = key
            log.guards.error("The %s grab is held by an exempt client or on the root", grab)
            self._journal(
                Event(
                    "guards.grab_held",
                    {"grab": grab, "action": "none", "policy": self._force, "exempt": exempt},
                )
            )

    def _journal(self, event: Event) -> None:
        if self._report is not None:
            self._report(event)


def _top_levels() -> list[QWindow]:
    return list(QGuiApplication.topLevelWindows())


def _describe(state: KioskState) -> dict[str, Any]:
    return {
        "viewable": state.viewable,
        "iconic": state.iconic,
        "fullscreen": state.fullscreen,
        "desktop": state.desktop,
        "current_desktop": state.current_desktop,
        "geometry": list(state.geometry),
    }
