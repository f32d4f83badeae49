"""Screenshot guard: hide the exam from capture where the OS can, find windows that hide.

- Windows / macOS: the kiosk window is excluded from screen capture
  (``SetWindowDisplayAffinity(WDA_EXCLUDEFROMCAPTURE)``, ``NSWindow.sharingType = none``).
  Our own screen recorder composes the desktop capture with the kiosk's own rendering
  (DESIGN.md), so proctoring still records the exam.
- Every ``SCAN_MS`` the platform lists other processes' windows that exclude themselves
  from capture (``GetWindowDisplayAffinity``, ``kCGWindowSharingState``): hidden overlays
  are how current cheating tools work. Each is journalled once as
  ``guards.capture_hidden_window``.
- Everywhere: an image put on the clipboard (a screenshot tool's result) is cleared and
  journalled; PrintScreen and screenshot shortcuts are swallowed by the keyboard guard.
- Linux/X11 cannot hide a window from other X clients: there this guard is partial and
  relies on the keyboard lock and on the prohibited-apps guard stopping capture tools.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QTimer
from PySide6.QtGui import QClipboard, QGuiApplication
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo
from lockdown.guards.timers import repeating_timer, stop_timer
from lockdown.platform.base import Capability, DesktopPlatform

SCAN_MS: Final = 2000


def describe(settings: Settings, platform: DesktopPlatform) -> GuardInfo:
    """What the screenshot guard can do here (no side effects)."""
    if not settings["guards.screenshots"]:
        return GuardInfo("screenshots", "none", Availability.FULL, "screenshots are allowed")
    exclusion = platform.support(Capability.CAPTURE_EXCLUSION)
    if exclusion.available:
        return GuardInfo("screenshots", exclusion.backend, Availability.FULL)
    return GuardInfo(
        "screenshots",
        "keyboard lock + clipboard images",
        Availability.PARTIAL,
        f"the exam window cannot be hidden from capture here: {exclusion.reason}",
    )


class ScreenshotGuard:
    """Excludes the kiosk from capture, clears clipboard images, reports hidden windows."""

    def __init__(
        self, settings: Settings, window: QWidget, platform: DesktopPlatform, scan_ms: int = SCAN_MS
    ) -> None:
        self._settings = settings
        self._enabled: bool = settings["guards.screenshots"]
        self._window = window
        self._platform = platform
        self._scan_ms = scan_ms
        self._report: EventSink | None = None
        self._timer: QTimer | None = None
        self._excluded = False
        self._seen: set[int] = set()
        self._scan_failed = False
        self._running = False

    @property
    def name(self) -> str:
        return "screenshots"

    def info(self) -> GuardInfo:
        return describe(self._settings, self._platform)

    def start(self, report: EventSink) -> None:
        if self._running or not self._enabled:
            return
        self._report = report
        if self._platform.support(Capability.CAPTURE_EXCLUSION).available:
            self._excluded = self._platform.set_capture_excluded(int(self._window.winId()), True)
            if not self._excluded:
                report(Event("guards.capture_exclusion_failed", {"backend": self._platform.name}))
        QGuiApplication.clipboard().changed.connect(self._clipboard_changed)
        self._clipboard_changed(QClipboard.Mode.Clipboard)
        if self._platform.support(Capability.CAPTURE_EXCLUDED_WINDOWS).available:
            self._timer = repeating_timer(self._scan_ms, self.scan)
            self.scan()
        self._running = True
        log.guards.info("Screenshot guard started (%s)", self.info().backend)

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        stop_timer(self._timer)
        self._timer = None
        QGuiApplication.clipboard().changed.disconnect(self._clipboard_changed)
        if self._excluded:
            self._platform.set_capture_excluded(int(self._window.winId()), False)
            self._excluded = False
        log.guards.info("Screenshot guard stopped")

    def scan(self) -> None:
        """Journal each newly seen window of another process that hides from capture."""
        try:
            windows = self._platform.capture_excluded_windows()
        except Exception as exc:
            # The native query failed: say so once (a gap, journalled), keep the exam going.
            if not self._scan_failed:
                self._scan_failed = True
                log.guards.exception("Cannot list windows hidden from capture")
                if self._report is not None:
                    self._report(Event("guards.capture_scan_failed", {"error": str(exc)[:300]}))
            return
        for window in windows:
            if window.id in self._seen:
                continue
            self._seen.add(window.id)
            log.guards.warning("A window hides itself from screen capture: %s", window)
            if self._report is not None:
                self._report(Event("guards.capture_hidden_window", window.describe()))

    def _clipboard_changed(self, mode: QClipboard.Mode) -> None:
        QTimer.singleShot(0, lambda: self._clear_image(mode))

    def _clear_image(self, mode: QClipboard.Mode) -> None:
        if not self._running:
            return
        data = QGuiApplication.clipboard().mimeData(mode)
        if data is None or not data.hasImage():
            return
        QGuiApplication.clipboard().clear(mode)
        log.guards.warning("Cleared an image from the clipboard")
        if self._report is not None:
            self._report(Event("guards.screenshot_cleared", {"formats": list(data.formats())}))
