"""Drop guard: text and files dragged from other programs are not dropped into the exam.

Dragging prepared text from another program's window onto an answer box is pasting by
another name (XDND on X11, OLE drag and drop on Windows, the pasteboard on macOS; Qt
delivers all of them as drag events to our window). An event filter on the kiosk's
``QWindow`` sees ``DragEnter``, ``DragMove`` and ``Drop`` before any widget or the web
engine: a drag whose source is not inside this process (Qt knows no source object) is
ignored — the other program is told the drop is not accepted — and a ``Drop`` sent
anyway (a tool speaking XDND directly) is swallowed. Each refused drag is journalled
once as ``guards.drop_refused`` with its formats (rate-limited). Drags inside the exam
page pass. ``browser.allow_drop`` lets drops from other programs through, each one
journalled as ``guards.drop_accepted``.
"""

from __future__ import annotations

from typing import Final

from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.guards.windows import FilteredWindows

_DRAG_EVENTS: Final = (QEvent.Type.DragEnter, QEvent.Type.DragMove, QEvent.Type.Drop)
_FORMATS_SHOWN: Final = 8


class _DropFilter(QObject):
    def __init__(self, guard: DropGuard) -> None:
        super().__init__()
        self._guard = guard

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() not in _DRAG_EVENTS or not isinstance(event, QDropEvent):
            return False
        return self._guard.decide(event)


class DropGuard:
    """Refuses drops from other programs unless ``browser.allow_drop``; journals them."""

    def __init__(self, settings: Settings, window: QWidget) -> None:
        self._allow: bool = settings["browser.allow_drop"]
        self._window = window
        self._report: RateLimitedSink | None = None
        self._windows: FilteredWindows | None = None
        self._running = False
        #: drags refused so far (tests read it)
        self.refused = 0

    @property
    def name(self) -> str:
        return "drops"

    def info(self) -> GuardInfo:
        if self._allow:
            return GuardInfo(self.name, "qt drag events", Availability.FULL, "drops are allowed")
        return GuardInfo(self.name, "qt drag events", Availability.FULL)

    def start(self, report: EventSink) -> None:
        if self._running:
            return
        self._report = RateLimitedSink(report, 5.0, key_field="phase")
        self._window.winId()
        self._windows = FilteredWindows(_DropFilter(self))
        self._windows.start(self._window.windowHandle())
        self._running = True
        log.guards.info("Drop guard started (%s)", "allowed" if self._allow else "refusing")

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._windows is not None:
            self._windows.stop()
            self._windows = None
        if self._report is not None:
            self._report.flush()
        log.guards.info("Drop guard stopped (%d refused)", self.refused)

    def decide(self, event: QDropEvent) -> bool:
        """True swallows the drag event (a drop from another program, refused)."""
        try:
            return self._decide(event)
        except Exception:
            log.guards.exception("Judging a drop failed; refusing it")
            event.ignore()
            return True

    def _decide(self, event: QDropEvent) -> bool:
        kind = event.type()
        if kind == QEvent.Type.DragMove:
            # decided at DragEnter; a move after a refused enter is refused again
            if self._allow or event.source() is not None:
                return False
            event.ignore()
            return True
        if event.source() is not None:
            return False  # a drag inside the exam
        data = event.mimeData()
        formats = list(data.formats())[:_FORMATS_SHOWN] if data is not None else []
        phase = "drop" if kind == QEvent.Type.Drop else "enter"
        if self._allow:
            if kind == QEvent.Type.Drop and self._report is not None:
                log.guards.info("Accepted a drop from another program (%s)", formats)
                self._report(Event("guards.drop_accepted", {"formats": formats}))
            return False
        event.ignore()
        self.refused += 1
        log.guards.warning("Refused a drag from another program (%s, %s)", phase, formats)
        if self._report is not None:
            self._report(Event("guards.drop_refused", {"phase": phase, "formats": formats}))
        return True
