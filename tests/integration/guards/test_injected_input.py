"""Injected input on a shared X display: XTEST typing (a renamed xdotool) and synthetic
key events (XSendEvent) into an answer of a real QtWebEngine page."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from PySide6.QtWebEngineCore import QWebEnginePage
from PySide6.QtWebEngineWidgets import QWebEngineView  # before the QApplication exists
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, Settings, layer
from lockdown.events import Event
from lockdown.guards.injected_input import DEV_SWITCH, InjectedInputGuard
from lockdown.platform.linux import X11Platform
from tests.support.httpserver import LocalServer
from tests.support.xclients import SEND_KEYS, private_xdotool
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

PAGE = "<!doctype html><html><body><textarea id='answer'></textarea></body></html>"
SWITCH = f"LOCKDOWN_DEV_{DEV_SWITCH}"


def _js(qtbot: QtBot, page: QWebEnginePage, code: str) -> Any:
    box: list[Any] = []
    page.runJavaScript(code, 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=5000)
    return box[0]


@pytest.fixture
def answer(
    qtbot: QtBot, http_server: LocalServer, window_manager: Xvfb
) -> Iterator[QWebEngineView]:
    """An exam page whose answer box has the keyboard focus (openbox gives it)."""
    view = QWebEngineView()
    qtbot.addWidget(view)
    view.setGeometry(0, 0, 500, 300)
    view.show()
    with qtbot.waitSignal(view.loadFinished, timeout=20000):
        view.load(http_server.page("/answer", PAGE))
    qtbot.waitExposed(view)
    wid = int(view.winId())
    # openbox may not manage the window yet: activating it fails until it does
    for _ in range(50):
        done = subprocess.run(
            [private_xdotool(), "windowactivate", "--sync", str(wid)],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if done.returncode == 0:
            break
        qtbot.wait(100)
    qtbot.waitUntil(view.isActiveWindow, timeout=5000)
    view.setFocus()
    qtbot.waitUntil(lambda: _js(qtbot, view.page(), "document.hasFocus()") is True, timeout=5000)
    _js(qtbot, view.page(), "document.getElementById('answer').focus(); 1")
    # the focus settles in the engine a moment later: type until a probe key arrives
    for _ in range(50):
        _type(qtbot, "key", "x")
        if _value(qtbot, view):
            break
        qtbot.wait(100)
    assert _value(qtbot, view), "the answer box never got the keys"
    _js(qtbot, view.page(), "document.getElementById('answer').value = ''; 1")
    yield view
    view.close()
    view.deleteLater()


def _value(qtbot: QtBot, view: QWebEngineView) -> str:
    return str(_js(qtbot, view.page(), "document.getElementById('answer').value"))


def _type(qtbot: QtBot, *argv: str) -> None:
    """Run xdotool while the Qt event loop runs (Qt reads the events as they come)."""
    proc = subprocess.Popen([private_xdotool(), *argv])
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20000)
    assert proc.returncode == 0


def test_xtest_typing_into_an_answer_is_refused_and_journalled(
    qtbot: QtBot, answer: QWebEngineView, platform: X11Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    events: list[Event] = []
    guard = InjectedInputGuard(Settings.defaults(), answer, platform)
    guard.start(events.append)
    try:
        _type(qtbot, "type", "--delay", "20", "prepared")
        qtbot.waitUntil(lambda: guard.refused >= 16, timeout=10000)  # 8 presses, 8 releases
        qtbot.wait(300)
        assert _value(qtbot, answer) == ""
    finally:
        guard.stop()
    refused = [e for e in events if e.type == "guards.injected_input"]
    assert refused, events
    assert refused[0].payload == {
        "device": "Virtual core XTEST keyboard",
        "kind": "key",
        "how": "xtest",
        "action": "refused",
    }


def _send_keys(qtbot: QtBot, view: QWebEngineView, text: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SEND_KEYS, str(int(view.winId())), text])
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=20000)
    assert proc.returncode == 0


def test_synthetic_key_events_sent_to_the_window_are_refused(
    qtbot: QtBot, answer: QWebEngineView, platform: X11Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    # the positive control first: without the guard the sent keys are typed
    _send_keys(qtbot, answer, "sent")
    qtbot.waitUntil(lambda: _value(qtbot, answer) == "sent", timeout=10000)
    _js(qtbot, answer.page(), "document.getElementById('answer').value = ''; 1")
    events: list[Event] = []
    guard = InjectedInputGuard(Settings.defaults(), answer, platform)
    guard.start(events.append)
    try:
        _send_keys(qtbot, answer, "sent")
        qtbot.waitUntil(lambda: guard.refused >= 8, timeout=10000)
        qtbot.wait(300)
        assert _value(qtbot, answer) == ""
    finally:
        guard.stop()
    hows = {e.payload["how"] for e in events if e.type == "guards.injected_input"}
    assert hows == {"no_device_event"}


def test_under_the_development_switch_xtest_typing_arrives_and_is_journalled(
    qtbot: QtBot, answer: QWebEngineView, platform: X11Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the positive control: the same typing with the protection switched off
    monkeypatch.setenv(SWITCH, "1")
    events: list[Event] = []
    guard = InjectedInputGuard(Settings.defaults(), answer, platform)
    guard.start(events.append)
    try:
        _type(qtbot, "type", "--delay", "20", "prepared")
        qtbot.waitUntil(lambda: _value(qtbot, answer) == "prepared", timeout=10000)
    finally:
        guard.stop()
    assert Event("session.dev_switch", {"name": DEV_SWITCH}) in events
    assert not [e for e in events if e.type == "guards.injected_input"]


def test_assistive_technology_may_inject_and_says_so(
    qtbot: QtBot, answer: QWebEngineView, platform: X11Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SWITCH, raising=False)
    events: list[Event] = []
    settings = layer(Organisation(values={"accessibility.assistive_technology": True}), {})
    guard = InjectedInputGuard(settings, answer, platform)
    guard.start(events.append)
    try:
        _type(qtbot, "type", "--delay", "20", "onscreen")
        qtbot.waitUntil(lambda: _value(qtbot, answer) == "onscreen", timeout=10000)
    finally:
        guard.stop()
    assert events == [Event("guards.injected_input_accepted", {"reason": "assistive_technology"})]
