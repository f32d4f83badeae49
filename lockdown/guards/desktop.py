"""The desktop guards as one operation: displays, keyboard, injected input, clipboard,
drops, screenshots, the screen-capture watch, focus, shared display.

:class:`DesktopGuardsOperation` is the step of the session that locks the desktop. Its
``perform`` first counts the screens (more than ``guards.max_displays`` -> ABORTED with
the message id ``guards.displays.too_many``), then starts each guard in order and
journals each start with its backend and availability. A guard that cannot work here
(unavailable, or :class:`GuardUnavailable` from ``start``) is handled by
``guards.unavailable``: ``refuse`` -> ABORTED with message id ``guards.unavailable`` and the
reason; ``continue`` -> the gap is journalled and the next guard starts. ``revert`` stops
the started guards in reverse order.

Before any guard starts, the display server is asked what it is: under XWayland (a
shared Wayland desktop, :mod:`lockdown.guards.wayland`) ``guards.wayland_session`` names
the guards that cannot work; ``guards.wayland = refuse`` -> ABORTED with the message id
``guards.wayland.refused``, ``warn`` -> the candidate is told (:attr:`warnings`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, Guard, GuardInfo, GuardUnavailable
from lockdown.guards.capture_watch import CaptureHandler, ScreenCaptureWatchGuard
from lockdown.guards.clipboard import ClipboardGuard
from lockdown.guards.displays import DisplaysGuard, display_problem
from lockdown.guards.drops import DropGuard
from lockdown.guards.focus import FocusGuard
from lockdown.guards.injected_input import InjectedInputGuard
from lockdown.guards.keyboard import KeyboardGuard
from lockdown.guards.restore import RestoreLog
from lockdown.guards.screenshots import ScreenshotGuard
from lockdown.guards.shared_display import SharedDisplayGuard
from lockdown.guards.wayland import NOTICE_ID, REFUSED_ID, WaylandVerdict, wayland_verdict
from lockdown.lifecycle.base import Outcome
from lockdown.platform.base import DesktopPlatform
from lockdown.platform.x11_server import DisplayServer

#: Asks the display server what it is (None: not an X display, or unreachable).
ServerFacts = Callable[[], DisplayServer | None]


def current_display_server() -> DisplayServer | None:
    """The X server Qt shows the exam on (None when Qt does not use X11)."""
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() != "xcb":
        return None
    from lockdown.platform.x11_server import display_server

    return display_server()


def limit_infos(infos: list[GuardInfo], verdict: WaylandVerdict) -> list[GuardInfo]:
    """The guards' infos with those XWayland limits marked partial, and why."""
    if not verdict.xwayland:
        return infos
    return [
        replace(i, availability=Availability.PARTIAL, reason=f"XWayland: {verdict.limited[i.name]}")
        if i.name in verdict.limited and i.availability is Availability.FULL
        else i
        for i in infos
    ]


def build_desktop_guards(
    settings: Settings,
    window: QWidget,
    platform: DesktopPlatform,
    restore: RestoreLog | None = None,
    on_capture: CaptureHandler | None = None,
) -> list[Guard]:
    """The desktop guards, in start order (``on_capture``: where a program seen reading
    the screen is handed, the prohibited-app policy)."""
    keyboard = KeyboardGuard(settings, window, platform, restore)
    return [
        DisplaysGuard(settings, window, platform),
        keyboard,
        InjectedInputGuard(settings, window, platform),
        ClipboardGuard(settings, window, platform),
        DropGuard(settings, window),
        ScreenshotGuard(settings, window, platform),
        ScreenCaptureWatchGuard(settings, platform, on_capture),
        FocusGuard(settings, window, platform),
        SharedDisplayGuard(settings, window, platform, keyboard),
    ]


def desktop_guard_infos(
    settings: Settings | None = None,
    platform: DesktopPlatform | None = None,
    server: ServerFacts = current_display_server,
) -> list[GuardInfo]:
    """What each desktop guard can do on this machine (for ``lockdown environment``).

    Needs a QGuiApplication (the guards ask Qt about screens and the clipboard).
    """
    if settings is None:
        settings = Settings.defaults()
    if platform is None:
        from lockdown.platform.factory import desktop_platform

        platform = desktop_platform()
    window = QWidget()
    try:
        infos = [guard.info() for guard in build_desktop_guards(settings, window, platform)]
        return limit_infos(infos, wayland_verdict(server(), settings["guards.wayland"]))
    finally:
        window.deleteLater()


class DesktopGuardsOperation:
    """Starts the desktop guards in order; stops them in reverse."""

    def __init__(
        self,
        settings: Settings,
        guards: list[Guard],
        report: EventSink,
        server: ServerFacts = current_display_server,
    ) -> None:
        self._settings = settings
        self._guards = guards
        self._report = report
        self._server = server
        #: text ids to show although the exam goes on (a shared Wayland desktop)
        self.warnings: list[str] = []
        self._started: list[Guard] = []
        #: why perform() did not succeed: (message id, values), for the UI
        self.message: tuple[str, dict[str, Any]] | None = None

    @property
    def name(self) -> str:
        return "desktop guards"

    def _unavailable(self, info: GuardInfo, reason: str) -> bool:
        """Handle a guard that cannot work; True when the exam may go on."""
        policy: str = self._settings["guards.unavailable"]
        self._report(
            Event(
                "guards.unavailable",
                {"guard": info.name, "backend": info.backend, "reason": reason, "policy": policy},
            )
        )
        if policy == "refuse":
            log.guards.error("Guard %s cannot work here (%s); refusing", info.name, reason)
            self.message = ("guards.unavailable", {"guard": info.name, "reason": reason})
            return False
        log.guards.warning("Guard %s cannot work here (%s); continuing", info.name, reason)
        return True

    def _wayland(self) -> bool:
        """Journal a shared Wayland desktop; False when the policy refuses it."""
        server = self._server()
        verdict = wayland_verdict(server, self._settings["guards.wayland"])
        if not verdict.xwayland:
            return True
        self._report(Event("guards.wayland_session", verdict.as_payload(server)))
        if verdict.refused:
            log.guards.error("A shared Wayland desktop (XWayland); refusing (guards.wayland)")
            self.message = (REFUSED_ID, {})
            self._report(Event("guards.refused", {"guard": "wayland", "message_id": REFUSED_ID}))
            return False
        log.guards.warning("A shared Wayland desktop (XWayland): %s", ", ".join(verdict.limited))
        self.warnings.append(NOTICE_ID)
        return True

    def perform(self) -> Outcome:
        if not self._wayland():
            return Outcome.ABORTED
        problem = display_problem(self._settings)
        if problem is not None:
            self.message = (
                problem.message_id,
                {"count": problem.count, "allowed": problem.allowed},
            )
            self._report(
                Event(
                    "guards.refused",
                    {"guard": "displays", "message_id": problem.message_id, **self.message[1]},
                )
            )
            return Outcome.ABORTED
        for guard in self._guards:
            info = guard.info()
            if info.availability is Availability.UNAVAILABLE:
                if self._unavailable(info, info.reason):
                    continue
                return Outcome.ABORTED
            try:
                guard.start(self._report)
            except GuardUnavailable as exc:
                if self._unavailable(info, str(exc)):
                    continue
                return Outcome.ABORTED
            except Exception:
                log.guards.exception("Guard %s failed to start", guard.name)
                self._report(Event("guards.start_failed", {"guard": guard.name}))
                return Outcome.FAILED
            self._started.append(guard)
            self._report(
                Event(
                    "guards.started",
                    {
                        "guard": info.name,
                        "backend": info.backend,
                        "availability": info.availability.value,
                        "reason": info.reason,
                    },
                )
            )
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        outcome = Outcome.SUCCESS
        while self._started:
            guard = self._started.pop()
            try:
                guard.stop()
            except Exception:
                log.guards.exception("Guard %s failed to stop", guard.name)
                outcome = Outcome.FAILED
                continue
            self._report(Event("guards.stopped", {"guard": guard.name}))
        return outcome
