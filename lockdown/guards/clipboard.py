"""Clipboard guard: the system clipboard and X11 PRIMARY stay empty while the exam runs.

Policies (``guards.clipboard``): ``allow`` leaves the clipboard alone; ``block`` and
``isolated`` clear CLIPBOARD and PRIMARY at start, whenever anything puts content there
(Qt's ``QClipboard.changed``, driven by XFixes selection-owner events on X11 and the
clipboard listener on Windows; on macOS, where Qt only notices changes when the app is
activated, the platform's pasteboard change counter is polled), and at the end; a
middle-click (PRIMARY paste) is swallowed. ``isolated`` also injects an in-page clipboard
into the exam pages (:func:`install_clipboard_isolation`) so copy and paste keep working
inside the exam. Content put there by another program is journalled (rate-limited);
content our own web engine puts there (a text selection sets PRIMARY) is cleared quietly.

PRIMARY never carries exam text to another client: the moment the web engine makes us
the owner of PRIMARY (a text selection), a directly connected ``selectionChanged`` slot
empties the selection's data *in place*, inside the engine's ``setMimeData`` call and
before the event loop can answer another client's ``ConvertSelection`` (a sniffer that
converts PRIMARY on every XFixes owner change gets nothing). The selection itself is
released on the next turn of the event loop.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QEvent, QObject, Qt, QTimer
from PySide6.QtGui import QClipboard, QGuiApplication, QMouseEvent
from PySide6.QtWebEngineCore import QWebEnginePage, QWebEngineProfile, QWebEngineScript
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.guards.timers import repeating_timer, stop_timer
from lockdown.platform.base import Capability, DesktopPlatform
from lockdown.resources import read_text

SCRIPT_NAME: Final = "lockdown-clipboard-isolation"
POLL_MS: Final = 250
_MODE_NAMES: Final = {QClipboard.Mode.Clipboard: "clipboard", QClipboard.Mode.Selection: "primary"}
_MIDDLE_EVENTS: Final = (
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick,
)


def clipboard_isolation_script() -> QWebEngineScript:
    """The in-page clipboard as a script: main world, every frame, at document creation."""
    script = QWebEngineScript()
    script.setName(SCRIPT_NAME)
    script.setSourceCode(read_text("js", "clipboard_isolation.js"))
    script.setInjectionPoint(QWebEngineScript.InjectionPoint.DocumentCreation)
    script.setWorldId(QWebEngineScript.ScriptWorldId.MainWorld)
    script.setRunsOnSubFrames(True)
    return script


def install_clipboard_isolation(target: QWebEnginePage | QWebEngineProfile) -> None:
    """Inject the in-page clipboard into every page of ``target`` (idempotent).

    Call it before the exam page loads (pages already loaded get it at the next load).
    """
    scripts = target.scripts()
    if scripts.find(SCRIPT_NAME):
        return
    scripts.insert(clipboard_isolation_script())
    log.guards.info("Clipboard isolation injected into %s", type(target).__name__)


class _MiddleClickFilter(QObject):
    """Swallows middle-button presses, releases and double clicks (PRIMARY paste)."""

    def __init__(self) -> None:
        super().__init__()
        self.swallowed = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if (
            event.type() in _MIDDLE_EVENTS
            and isinstance(event, QMouseEvent)
            and event.button() == Qt.MouseButton.MiddleButton
        ):
            self.swallowed += 1
            return True
        return False


class ClipboardGuard:
    """Keeps the system clipboard and PRIMARY empty (policies ``block`` and ``isolated``)."""

    def __init__(self, settings: Settings, window: QWidget, platform: DesktopPlatform) -> None:
        self._policy: str = settings["guards.clipboard"]
        self._window = window
        self._platform = platform
        self._raw_report: EventSink | None = None
        self._report: RateLimitedSink | None = None
        self._filter: _MiddleClickFilter | None = None
        self._timer: QTimer | None = None
        self._last_count: int | None = None
        self._running = False

    @property
    def name(self) -> str:
        return "clipboard"

    @property
    def policy(self) -> str:
        return self._policy

    def info(self) -> GuardInfo:
        if self._policy == "allow":
            return GuardInfo(self.name, "none", Availability.FULL, "policy allows the clipboard")
        backend = f"qt clipboard ({self._platform.name})"
        counter = self._platform.support(Capability.CLIPBOARD_COUNTER)
        if counter.available:
            return GuardInfo(self.name, f"{backend} + {counter.backend}", Availability.FULL)
        return GuardInfo(self.name, backend, Availability.FULL)

    # -- start / stop -----------------------------------------------------------------

    def start(self, report: EventSink) -> None:
        if self._running or self._policy == "allow":
            return
        self._raw_report = report
        self._report = RateLimitedSink(report, 5.0, key_field="selection")
        clipboard = QGuiApplication.clipboard()
        self._clear_all("start")
        clipboard.changed.connect(self._on_changed)
        # Direct: runs inside the engine's setMimeData, before any SelectionRequest of
        # another client is served (Qt answers those on this thread, later).
        clipboard.selectionChanged.connect(
            self._empty_own_selection, Qt.ConnectionType.DirectConnection
        )
        # The filter sits on the kiosk's QWindow, which sees every mouse event before its
        # widgets. WORKAROUND(crash): an application-wide Python event filter is handed
        # QtWebEngine objects under construction, and wrapping them crashes PySide.
        self._filter = _MiddleClickFilter()
        self._window.winId()  # make sure the native window exists
        handle = self._window.windowHandle()
        if handle is not None:
            handle.installEventFilter(self._filter)
        if self._platform.support(Capability.CLIPBOARD_COUNTER).available:
            self._last_count = self._platform.clipboard_change_count()
            self._timer = repeating_timer(POLL_MS, self._poll)
        self._running = True
        log.guards.info("Clipboard guard started (policy %s)", self._policy)

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        clipboard = QGuiApplication.clipboard()
        clipboard.changed.disconnect(self._on_changed)
        clipboard.selectionChanged.disconnect(self._empty_own_selection)
        stop_timer(self._timer)
        self._timer = None
        handle = self._window.windowHandle()
        if handle is not None and self._filter is not None:
            handle.removeEventFilter(self._filter)
        self._filter = None
        self._clear_all("end")
        if self._report is not None:
            self._report.flush()
        log.guards.info("Clipboard guard stopped")

    # -- the work ---------------------------------------------------------------------

    def _modes(self) -> list[QClipboard.Mode]:
        clipboard = QGuiApplication.clipboard()
        modes = [QClipboard.Mode.Clipboard]
        if clipboard.supportsSelection():
            modes.append(QClipboard.Mode.Selection)
        return modes

    @staticmethod
    def _formats(mode: QClipboard.Mode) -> list[str]:
        data = QGuiApplication.clipboard().mimeData(mode)
        return [] if data is None else [f for f in data.formats() if f != "TARGETS"]

    def _clear_all(self, reason: str) -> None:
        for mode in self._modes():
            formats = self._formats(mode)
            QGuiApplication.clipboard().clear(mode)
            if formats and self._raw_report is not None:
                self._raw_report(
                    Event(
                        "guards.clipboard_cleared",
                        {"selection": _MODE_NAMES[mode], "reason": reason, "formats": formats},
                    )
                )

    def _empty_own_selection(self) -> None:
        """We own PRIMARY now (the engine set it): empty its data where it lies.

        WORKAROUND(crash, see :meth:`_on_changed`): the engine's ``QMimeData`` must not be
        freed here, so it is emptied, not replaced; clearing follows on the next turn.
        """
        if not self._running:
            return
        clipboard = QGuiApplication.clipboard()
        if not clipboard.ownsSelection():
            return  # another program's: journalled by _check
        data = clipboard.mimeData(QClipboard.Mode.Selection)
        if data is not None:
            data.clear()

    def _on_changed(self, mode: QClipboard.Mode) -> None:
        # WORKAROUND(crash): QtWebEngine sets the selection and keeps using its mime data
        # after setMimeData() returns; clearing inside the changed signal it emits
        # synchronously frees that data under it (segfault). Clear on the next turn of
        # the event loop, before any other client's request is served.
        if self._running and mode in _MODE_NAMES:
            QTimer.singleShot(0, lambda: self._check(mode))

    def _check(self, mode: QClipboard.Mode) -> None:
        if not self._running:
            return
        clipboard = QGuiApplication.clipboard()
        ours = (
            clipboard.ownsClipboard()
            if mode is QClipboard.Mode.Clipboard
            else clipboard.ownsSelection()
        )
        formats = self._formats(mode)
        if not formats and not ours:
            return
        clipboard.clear(mode)  # ours emptied in place: give the selection up as well
        if ours:
            log.guards.debug("Cleared %s set by the exam page", _MODE_NAMES[mode])
            return
        log.guards.info("Cleared %s set by another program (%s)", _MODE_NAMES[mode], formats)
        if self._report is not None:
            self._report(
                Event(
                    "guards.clipboard_external",
                    {"selection": _MODE_NAMES[mode], "reason": "external", "formats": formats},
                )
            )

    def _poll(self) -> None:
        count = self._platform.clipboard_change_count()
        if count is not None and count != self._last_count:
            self._check(QClipboard.Mode.Clipboard)
            self._last_count = self._platform.clipboard_change_count()
        if self._report is not None:
            self._report.poll()
