"""Drops from other programs: another X client speaking XDND drags text onto an answer
of a real QtWebEngine page (and drops it even when told it is not accepted)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWebEngineCore import QWebEnginePage
from PySide6.QtWebEngineWidgets import QWebEngineView  # before the QApplication exists
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, Settings, convert, layer
from lockdown.events import Event
from lockdown.guards.drops import DropGuard
from tests.support.httpserver import LocalServer
from tests.support.xclients import XDND_SOURCE

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

PAGE = (
    "<!doctype html><html><body style='margin:0'>"
    "<textarea id='answer' style='width:400px;height:200px'></textarea></body></html>"
)


def _js(qtbot: QtBot, page: QWebEnginePage, code: str) -> Any:
    box: list[Any] = []
    page.runJavaScript(code, 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=5000)
    return box[0]


@pytest.fixture
def answer(qtbot: QtBot, http_server: LocalServer) -> Iterator[QWebEngineView]:
    view = QWebEngineView()
    qtbot.addWidget(view)
    view.setGeometry(0, 0, 500, 300)
    view.show()
    with qtbot.waitSignal(view.loadFinished, timeout=20000):
        view.load(http_server.page("/answer", PAGE))
    qtbot.waitExposed(view)
    yield view
    view.close()
    view.deleteLater()


def _drag_text(qtbot: QtBot, view: QWebEngineView, text: str) -> list[str]:
    """Another client drags ``text`` onto the answer box; what it printed."""
    rect = _js(
        qtbot,
        view.page(),
        "(r => JSON.stringify([r.x + 40, r.y + 40]))"
        "(document.getElementById('answer').getBoundingClientRect())",
    )
    x, y = json.loads(rect)
    at = view.mapToGlobal(QPoint(int(x), int(y)))
    target = int(view.window().winId())
    proc = subprocess.Popen(
        [sys.executable, "-c", XDND_SOURCE, str(target), str(at.x()), str(at.y()), text],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=15000)
    out, _ = proc.communicate()
    return out.split("\n")


def _value(qtbot: QtBot, view: QWebEngineView) -> str:
    return str(_js(qtbot, view.page(), "document.getElementById('answer').value"))


def test_a_text_drop_from_another_program_is_refused_and_journalled(
    qtbot: QtBot, answer: QWebEngineView
) -> None:
    events: list[Event] = []
    guard = DropGuard(Settings.defaults(), answer)
    guard.start(events.append)
    try:
        said = _drag_text(qtbot, answer, "prepared answer")
        qtbot.wait(500)
        assert _value(qtbot, answer) == ""
    finally:
        guard.stop()
    assert "status 0" in said, said  # told: not accepted (and it dropped anyway)
    refused = [e.payload for e in events if e.type == "guards.drop_refused"]
    assert refused and refused[0]["phase"] == "enter"
    assert "text/plain" in refused[0]["formats"], refused


def test_with_drops_allowed_the_same_drop_lands_and_is_journalled(
    qtbot: QtBot, answer: QWebEngineView
) -> None:
    # the positive control: browser.allow_drop on, the same drag fills the answer
    settings = layer(
        Organisation(), {"browser.allow_drop": convert("browser.allow_drop", True, origin="t")}
    )
    events: list[Event] = []
    guard = DropGuard(settings, answer)
    guard.start(events.append)
    try:
        said = _drag_text(qtbot, answer, "prepared answer")
        qtbot.waitUntil(lambda: _value(qtbot, answer) == "prepared answer", timeout=5000)
    finally:
        guard.stop()
    assert "status 1" in said, said
    assert [e.type for e in events] == ["guards.drop_accepted"]
