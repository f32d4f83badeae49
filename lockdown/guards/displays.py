"""Displays guard: count screens, refuse too many, cover every screen but the kiosk's.

Before the exam starts :func:`display_problem` compares the screens Qt sees (X11: RandR
monitors) with ``guards.max_displays``. While it runs, every screen other than the one
the kiosk is on is covered by a blank, frameless, always-on-top window (at start when
``kiosk.cover_other_screens`` is on; always for a screen attached during the exam, which
is also journalled as ``guards.display_added``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QScreen
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo
from lockdown.platform.base import DesktopPlatform
from lockdown.texts import text

COVER_TITLE: Final = "lockdown-cover"


@dataclass(frozen=True)
class ScreenInfo:
    name: str
    x: int
    y: int
    width: int
    height: int

    @classmethod
    def of(cls, screen: QScreen) -> ScreenInfo:
        g = screen.geometry()
        return cls(screen.name(), g.x(), g.y(), g.width(), g.height())

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "geometry": [self.x, self.y, self.width, self.height]}


@dataclass(frozen=True)
class DisplayProblem:
    """Too many screens: the message id and its values."""

    message_id: str
    count: int
    allowed: int

    def text(self) -> str:
        return text(self.message_id, count=self.count, allowed=self.allowed)


def screens() -> list[ScreenInfo]:
    """The screens attached now (needs a QGuiApplication)."""
    return [ScreenInfo.of(s) for s in QGuiApplication.screens()]


def display_problem(settings: Settings) -> DisplayProblem | None:
    """A problem when more screens are attached than ``guards.max_displays`` allows."""
    count = len(QGuiApplication.screens())
    allowed: int = settings["guards.max_displays"]
    if count > allowed:
        return DisplayProblem("guards.displays.too_many", count, allowed)
    return None


class ScreenCover(QWidget):
    """A blank window over one screen; it takes no input and cannot be moved."""

    def __init__(self, screen: QScreen) -> None:
        super().__init__(
            None,
            Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
            | Qt.WindowType.WindowDoesNotAcceptFocus,
        )
        self.setWindowTitle(COVER_TITLE)
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        self.setStyleSheet("background-color: black;")
        self.setAutoFillBackground(True)
        self.cover(screen)

    def cover(self, screen: QScreen) -> None:
        self.setScreen(screen)
        self.setGeometry(screen.geometry())


class DisplaysGuard:
    """Covers other screens and journals screens attached or removed during the exam."""

    def __init__(self, settings: Settings, window: QWidget, platform: DesktopPlatform) -> None:
        self._settings = settings
        self._window = window
        self._platform = platform
        self._cover_at_start: bool = settings["kiosk.cover_other_screens"]
        self._covers: dict[str, ScreenCover] = {}
        self._home: str = ""
        self._report: EventSink | None = None
        self._running = False

    @property
    def name(self) -> str:
        return "displays"

    @property
    def covers(self) -> dict[str, ScreenCover]:
        return dict(self._covers)

    def info(self) -> GuardInfo:
        return GuardInfo(
            self.name, f"qt screens ({QGuiApplication.platformName()})", Availability.FULL
        )

    def problem(self) -> DisplayProblem | None:
        return display_problem(self._settings)

    def start(self, report: EventSink) -> None:
        if self._running:
            return
        self._report = report
        app = QGuiApplication.instance()
        assert isinstance(app, QGuiApplication)
        home = self._window.screen() or QGuiApplication.primaryScreen()
        self._home = home.name() if home is not None else ""
        attached = QGuiApplication.screens()
        report(
            Event(
                "guards.displays",
                {
                    "count": len(attached),
                    "kiosk": self._home,
                    "screens": [ScreenInfo.of(s).describe() for s in attached],
                },
            )
        )
        if self._cover_at_start:
            for screen in attached:
                if screen.name() != self._home:
                    self._cover(screen)
        app.screenAdded.connect(self._added)
        app.screenRemoved.connect(self._removed)
        self._running = True
        log.guards.info(
            "Displays guard started (%d screens, kiosk on %s)", len(attached), self._home
        )

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.screenAdded.disconnect(self._added)
            app.screenRemoved.disconnect(self._removed)
        for cover in self._covers.values():
            cover.close()
            cover.deleteLater()
        self._covers.clear()
        log.guards.info("Displays guard stopped")

    def _cover(self, screen: QScreen) -> None:
        cover = self._covers.get(screen.name())
        if cover is None:
            cover = ScreenCover(screen)
            self._covers[screen.name()] = cover
        else:
            cover.cover(screen)
        cover.show()
        cover.raise_()
        screen.geometryChanged.connect(lambda _g, s=screen: self._moved(s))
        log.guards.info("Covered screen %s at %s", screen.name(), ScreenInfo.of(screen))

    def _moved(self, screen: QScreen) -> None:
        cover = self._covers.get(screen.name())
        if cover is not None and self._running:
            cover.cover(screen)

    def _added(self, screen: QScreen) -> None:
        if not self._running:
            return
        count = len(QGuiApplication.screens())
        allowed: int = self._settings["guards.max_displays"]
        if screen.name() != self._home:
            self._cover(screen)
        log.guards.warning("A screen was attached during the exam: %s", screen.name())
        if self._report is not None:
            payload = ScreenInfo.of(screen).describe()
            payload.update({"count": count, "over_limit": count > allowed, "covered": True})
            self._report(Event("guards.display_added", payload))

    def _removed(self, screen: QScreen) -> None:
        if not self._running:
            return
        cover = self._covers.pop(screen.name(), None)
        if cover is not None:
            cover.close()
            cover.deleteLater()
        if self._report is not None:
            self._report(
                Event(
                    "guards.display_removed",
                    {"name": screen.name(), "count": len(QGuiApplication.screens()) - 1},
                )
            )
