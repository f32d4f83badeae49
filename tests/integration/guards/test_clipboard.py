"""Clipboard guard against real X clients (xclip) and a real QtWebEngine page."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest
from PySide6.QtWebEngineCore import QWebEnginePage
from PySide6.QtWebEngineWidgets import QWebEngineView  # before the QApplication exists
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, convert, layer
from lockdown.events import Event
from lockdown.guards.clipboard import ClipboardGuard, install_clipboard_isolation
from lockdown.platform.linux import X11Platform
from tests.support.httpserver import LocalServer

pytestmark = pytest.mark.x11


def _settings(policy: str) -> Any:
    return layer(
        Organisation(), {"guards.clipboard": convert("guards.clipboard", policy, origin="test")}
    )


def _xclip_in(selection: str, text: str) -> None:
    # xclip forks a child that owns the selection until someone else takes it.
    subprocess.run(
        ["xclip", "-selection", selection, "-i"], input=text.encode(), check=True, timeout=10
    )


def _xclip_out(qtbot: QtBot, selection: str) -> str:
    """Read a selection with xclip while the Qt event loop runs (Qt may be the owner)."""
    proc = subprocess.Popen(
        ["xclip", "-selection", selection, "-o"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=os.environ,
    )
    qtbot.waitUntil(lambda: proc.poll() is not None, timeout=5000)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    proc.stdout.close()
    return out if proc.returncode == 0 else ""


def test_block_clears_text_put_before_and_during_the_exam(
    qtbot: QtBot, kiosk: QWidget, platform: X11Platform
) -> None:
    _xclip_in("clipboard", "before-clip")
    _xclip_in("primary", "before-primary")
    assert _xclip_out(qtbot, "clipboard") == "before-clip"
    events: list[Event] = []
    guard = ClipboardGuard(_settings("block"), kiosk, platform)
    guard.start(events.append)
    try:
        assert _xclip_out(qtbot, "clipboard") == ""
        assert _xclip_out(qtbot, "primary") == ""
        _xclip_in("clipboard", "during-clip")
        _xclip_in("primary", "during-primary")
        qtbot.waitUntil(lambda: _xclip_out(qtbot, "clipboard") == "", timeout=3000)
        qtbot.waitUntil(lambda: _xclip_out(qtbot, "primary") == "", timeout=3000)
        external = [e for e in events if e.payload.get("reason") == "external"]
        assert {e.payload["selection"] for e in external} == {"clipboard", "primary"}
    finally:
        guard.stop()
    reasons = [e.payload["reason"] for e in events]
    assert reasons[:2] == ["start", "start"]
    guard.stop()  # idempotent


def test_allow_leaves_the_system_clipboard_alone(
    qtbot: QtBot, kiosk: QWidget, platform: X11Platform
) -> None:
    _xclip_in("clipboard", "kept")
    guard = ClipboardGuard(_settings("allow"), kiosk, platform)
    events: list[Event] = []
    guard.start(events.append)
    assert _xclip_out(qtbot, "clipboard") == "kept"
    guard.stop()
    assert events == []


def test_middle_click_is_swallowed_while_blocking(
    qtbot: QtBot, kiosk: QWidget, platform: X11Platform
) -> None:
    from PySide6.QtCore import Qt

    presses: list[Qt.MouseButton] = []

    class Target(QWidget):
        def mousePressEvent(self, event: Any) -> None:
            presses.append(event.button())

    target = Target(kiosk)
    target.setGeometry(0, 0, 100, 100)
    target.show()
    kiosk.raise_()
    pos = kiosk.mapToGlobal(target.geometry().center())

    def click(button: int) -> None:
        subprocess.run(
            ["xdotool", "mousemove", str(pos.x()), str(pos.y()), "click", str(button)],
            check=True,
            timeout=10,
        )

    guard = ClipboardGuard(_settings("isolated"), kiosk, platform)
    guard.start(lambda e: None)
    try:
        click(2)
        click(1)
        qtbot.waitUntil(lambda: Qt.MouseButton.LeftButton in presses, timeout=3000)
        assert Qt.MouseButton.MiddleButton not in presses
    finally:
        guard.stop()
    click(2)
    qtbot.waitUntil(lambda: Qt.MouseButton.MiddleButton in presses, timeout=3000)


PAGE = """<!doctype html><html><body>
<textarea id="a">secret answer 42</textarea><textarea id="b"></textarea>
</body></html>"""


def _js(qtbot: QtBot, page: QWebEnginePage, code: str) -> Any:
    box: list[Any] = []
    page.runJavaScript(code, 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=5000)
    return box[0]


@pytest.mark.webengine
def test_isolated_copy_paste_works_in_page_and_never_reaches_the_system(
    qtbot: QtBot, platform: X11Platform, http_server: LocalServer
) -> None:
    view = QWebEngineView()
    qtbot.addWidget(view)
    view.setGeometry(0, 0, 600, 400)
    install_clipboard_isolation(view.page())
    install_clipboard_isolation(view.page())  # idempotent
    assert len(view.page().scripts().find("lockdown-clipboard-isolation")) == 1
    view.show()
    with qtbot.waitSignal(view.loadFinished, timeout=20000):
        view.load(http_server.page("/exam", PAGE))
    events: list[Event] = []
    guard = ClipboardGuard(_settings("isolated"), view, platform)
    guard.start(events.append)
    try:
        _xclip_in("clipboard", "from outside")
        qtbot.waitUntil(lambda: _xclip_out(qtbot, "clipboard") == "", timeout=3000)
        page = view.page()
        # Editing commands act on the focused frame: make sure the page has the focus.
        view.raise_()
        view.activateWindow()
        view.setFocus()
        qtbot.waitUntil(lambda: _js(qtbot, page, "document.hasFocus()") is True, timeout=5000)
        _js(qtbot, page, "const a = document.getElementById('a'); a.focus(); a.select(); 1")
        page.triggerAction(QWebEnginePage.WebAction.Copy)
        # Editing commands and scripts travel on different channels: wait for the copy.
        store = "window[Symbol.for('lockdown.clipboard.store')].text"
        qtbot.waitUntil(lambda: _js(qtbot, page, store) == "secret answer 42", timeout=5000)
        _js(qtbot, page, "document.getElementById('b').focus(); 1")
        page.triggerAction(QWebEnginePage.WebAction.Paste)
        qtbot.waitUntil(
            lambda: _js(qtbot, page, "document.getElementById('b').value") == "secret answer 42",
            timeout=5000,
        )
        assert _xclip_out(qtbot, "clipboard") == ""
        assert "secret" not in _xclip_out(qtbot, "primary")
        # Something put on the system clipboard from outside never reaches the page.
        _xclip_in("clipboard", "smuggled")
        page.triggerAction(QWebEnginePage.WebAction.Paste)
        qtbot.waitUntil(
            lambda: _js(qtbot, page, "document.getElementById('b').value").count("secret") == 2,
            timeout=5000,
        )
        _js(qtbot, page, "navigator.clipboard.writeText('via api').then(() => { window.r = 1 }); 1")
        _js(qtbot, page, "navigator.clipboard.readText().then(t => { window.t = t }); 1")
        qtbot.waitUntil(lambda: _js(qtbot, page, "window.t || ''") == "via api", timeout=5000)
        assert "smuggled" not in _js(qtbot, page, "document.getElementById('b').value")
        assert _xclip_out(qtbot, "clipboard") == ""
    finally:
        guard.stop()
        view.close()
        view.deleteLater()
    assert any(e.payload.get("reason") == "external" for e in events)
