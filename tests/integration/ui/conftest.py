"""Fixtures for the kiosk tests: real QtWebEngine on the session Xvfb, real local servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWebEngineWidgets import QWebEngineView  # noqa: F401  (before QApplication)
from PySide6.QtWidgets import QApplication

from lockdown.config.settings import Organisation, Settings, convert, layer
from lockdown.events import Event
from lockdown.ui.kiosk import Kiosk
from tests.support.httpserver import LocalServer


def settings_for(**values: Any) -> Settings:
    """Settings from dotted keys written with ``__`` for dots (browser__start_url=…)."""
    exam = {}
    for name, raw in values.items():
        key = name.replace("__", ".")
        exam[key] = convert(key, raw, origin="test")
    return layer(Organisation(), exam)


class Recorder:
    """An EventSink that keeps the events in memory."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in self.events if e.type == kind]

    def urls(self, kind: str) -> list[str]:
        return [str(p.get("url")) for p in self.of(kind)]


@pytest.fixture
def journal() -> Recorder:
    return Recorder()


@pytest.fixture
def other_server() -> Iterator[LocalServer]:
    """A second origin: the site the exam must not reach."""
    server = LocalServer().start()
    yield server
    server.stop()


KioskFactory = Callable[..., Kiosk]


@pytest.fixture
def make_kiosk(qtbot: Any, journal: Recorder) -> Iterator[KioskFactory]:
    made: list[Kiosk] = []

    def make(
        *, keys: Any = None, start: bool = True, downloads: Path | None = None, **values: Any
    ) -> Kiosk:
        kiosk = Kiosk(settings_for(**values), journal, keys=keys, downloads=downloads)
        made.append(kiosk)
        if start:
            with qtbot.waitSignal(kiosk.pageLoaded, timeout=20000):
                kiosk.start()
        return kiosk

    yield make
    for kiosk in made:
        kiosk.close()
    app = QApplication.instance()
    for _ in range(3):
        if app is not None:
            app.processEvents()
        qtbot.wait(10)
