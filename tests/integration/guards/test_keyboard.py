"""Keyboard guard under openbox: Alt+Tab / Super stay in the kiosk; another X client gets no keys.

Our own dialogs (the quit password) get the keys while the kiosk holds the keyboard, blocked
combinations stay blocked there, and closing a Qt popup does not release the keyboard.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent
from PySide6.QtWidgets import QComboBox, QDialog, QLineEdit, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, Settings, flatten, layer
from lockdown.events import Event
from lockdown.guards.keyboard import KeyboardGuard
from lockdown.guards.restore import RestoreLog
from lockdown.platform.linux import X11Platform
from tests.support.xclients import keyboard_held
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.wm]


class Kiosk(QWidget):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []
        self.setWindowTitle("lockdown-kiosk")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        self.keys.append(event.text() or hex(event.key()))


def _xkb_options(xserver: Xvfb) -> str:
    out = xserver.run("setxkbmap", "-query").stdout
    return next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("options")), ""
    )


@pytest.fixture
def other_client(window_manager: Xvfb, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A second X client (xev) that prints every key it receives."""
    out = tmp_path / "xev.txt"
    with out.open("wb") as fh:
        proc = subprocess.Popen(
            ["xev", "-name", "other-client"], stdout=fh, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 10
        wid = 0
        while time.monotonic() < deadline and not wid:
            found = window_manager.run("xdotool", "search", "--name", "^other-client$", check=False)
            wid = int(found.stdout.split()[0]) if found.stdout.strip() else 0
            time.sleep(0.05)
        assert wid, "xev window did not appear"
        yield wid, out
    finally:
        proc.terminate()
        proc.wait(5)


@pytest.fixture
def platform(xserver: Xvfb) -> Iterator[X11Platform]:
    p = X11Platform()
    yield p
    p.close()


def _key_presses(path: Path) -> int:
    return path.read_text(errors="replace").count("KeyPress event")


def test_alt_tab_and_super_stay_in_the_kiosk_and_no_other_client_gets_keys(
    qtbot: QtBot,
    window_manager: Xvfb,
    other_client: tuple[int, Path],
    tmp_path: Path,
    platform: X11Platform,
) -> None:
    xev_window, xev_out = other_client
    # The other client works: focused, it receives typed keys (so the test can fail).
    window_manager.run("xdotool", "windowactivate", "--sync", str(xev_window))
    window_manager.run("xdotool", "key", "a")
    deadline = time.monotonic() + 5
    while _key_presses(xev_out) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _key_presses(xev_out) >= 1

    kiosk = Kiosk()
    qtbot.addWidget(kiosk)
    kiosk.setGeometry(100, 100, 500, 400)
    kiosk.show()
    qtbot.waitExposed(kiosk)
    wid = int(kiosk.winId())

    def activated() -> bool:
        platform.activate_window(wid)  # again until the window manager has taken the window
        return (platform.active_window() or _none()).id == wid

    qtbot.waitUntil(activated, timeout=5000)

    settings = layer(
        Organisation(), flatten({"guards": {"keyboard_allow": ["Insert"]}}, origin="t")
    )
    restore = RestoreLog(tmp_path / "restore")
    events: list[Event] = []
    guard = KeyboardGuard(settings, kiosk, platform, restore)
    options_before = _xkb_options(window_manager)
    guard.start(events.append)
    try:
        assert "srvrkeys:none" in _xkb_options(window_manager)
        assert len(restore.pending()) == 1
        before = _key_presses(xev_out)
        for keys in ("alt+Tab", "super", "ctrl+alt+t", "ctrl+Escape", "Print", "Insert", "b"):
            window_manager.run("xdotool", "key", keys)
        qtbot.waitUntil(lambda: "b" in kiosk.keys, timeout=5000)
        assert (platform.active_window() or _none()).id == wid
        assert _key_presses(xev_out) == before
        combos = [e.payload["combo"] for e in events if e.type == "guards.key_blocked"]
        assert combos == ["Alt+Tab", "Meta", "Ctrl+Alt+T", "Ctrl+Esc", "Print"]
        assert "0x1000006" in kiosk.keys  # Insert is allowed through (assistive technology)
    finally:
        guard.stop()
        guard.stop()
    assert _xkb_options(window_manager) == options_before
    assert restore.pending() == []

    # Released: Alt+Tab switches windows again. openbox grabs its key bindings again only
    # after it has read the keymap restored above, so press until it has.
    def switched() -> bool:
        window_manager.run("xdotool", "key", "alt+Tab")
        return (platform.active_window() or _none()).id != wid

    qtbot.waitUntil(switched, timeout=5000)


def _none() -> Any:
    class Nothing:
        id = 0

    return Nothing()


def _keyboard_held_by_us(xserver: Xvfb) -> bool:
    """True when another X client cannot grab the keyboard (someone holds it)."""
    return keyboard_held(xserver)


class FullScreenKiosk(QWidget):
    """Like the kiosk: full screen, a text field that takes typed keys."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("lockdown-kiosk")
        self.field = QLineEdit(self)
        self.combo = QComboBox(self)
        self.combo.addItems(["first", "second"])
        layout = QVBoxLayout(self)
        layout.addWidget(self.field)
        layout.addWidget(self.combo)


class PasswordDialog(QDialog):
    """Like the quit dialog: modal, on top, transient for the kiosk, a password field."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setWindowTitle("lockdown-quit")
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(True)
        self.password = QLineEdit(self)
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        QVBoxLayout(self).addWidget(self.password)


@pytest.fixture
def kiosk(qtbot: QtBot, window_manager: Xvfb, platform: X11Platform) -> FullScreenKiosk:
    window = FullScreenKiosk()
    qtbot.addWidget(window)
    window.showFullScreen()
    qtbot.waitExposed(window)
    wid = int(window.winId())

    def activated() -> bool:
        platform.activate_window(wid)  # again until the window manager has taken the window
        return (platform.active_window() or _none()).id == wid and window.field.hasFocus()

    qtbot.waitUntil(activated, timeout=5000)
    return window


def _open_dialog(qtbot: QtBot, kiosk: QWidget, guard: KeyboardGuard) -> PasswordDialog:
    dialog = PasswordDialog(kiosk)
    dialog.open()
    qtbot.waitExposed(dialog)
    handle = dialog.windowHandle()
    qtbot.waitUntil(
        lambda: (
            guard.holder() is handle
            and QGuiApplication.focusWindow() is handle
            and dialog.password.hasFocus()
        ),
        timeout=5000,
    )
    return dialog


def test_our_dialog_gets_the_keys_blocked_combos_stay_blocked_then_the_kiosk_again(
    qtbot: QtBot,
    window_manager: Xvfb,
    other_client: tuple[int, Path],
    platform: X11Platform,
    kiosk: FullScreenKiosk,
) -> None:
    _, xev_out = other_client
    events: list[Event] = []
    guard = KeyboardGuard(Settings.defaults(), kiosk, platform)
    guard.start(events.append)
    try:
        assert guard.holder() is kiosk.windowHandle()
        dialog = _open_dialog(qtbot, kiosk, guard)
        assert _keyboard_held_by_us(window_manager)
        before = _key_presses(xev_out)
        window_manager.run("xdotool", "type", "--delay", "20", "secret")
        qtbot.waitUntil(lambda: dialog.password.text() == "secret", timeout=5000)
        assert kiosk.field.text() == ""

        dialog_wid = int(dialog.winId())
        window_manager.run("xdotool", "key", "alt+Tab")
        window_manager.run("xdotool", "key", "super")
        qtbot.waitUntil(lambda: len(events) == 2, timeout=5000)
        assert [e.payload["combo"] for e in events] == ["Alt+Tab", "Meta"]
        assert (platform.active_window() or _none()).id == dialog_wid
        assert _key_presses(xev_out) == before
        assert dialog.password.text() == "secret"

        dialog.accept()
        qtbot.waitUntil(lambda: guard.holder() is kiosk.windowHandle(), timeout=5000)
        assert _keyboard_held_by_us(window_manager)
        window_manager.run("xdotool", "type", "back")
        qtbot.waitUntil(lambda: kiosk.field.text() == "back", timeout=5000)
        # (a second Alt+Tab within 5 s would only be counted by the rate limit)
        window_manager.run("xdotool", "key", "ctrl+Escape")
        qtbot.waitUntil(lambda: len(events) == 3, timeout=5000)
        assert events[-1].payload["combo"] == "Ctrl+Esc"
        assert (platform.active_window() or _none()).id == int(kiosk.winId())
        assert _key_presses(xev_out) == before
    finally:
        guard.stop()
    assert not _keyboard_held_by_us(window_manager)


def test_the_guard_stops_cleanly_while_our_dialog_is_open(
    qtbot: QtBot,
    window_manager: Xvfb,
    platform: X11Platform,
    kiosk: FullScreenKiosk,
    tmp_path: Path,
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    options_before = _xkb_options(window_manager)
    events: list[Event] = []
    guard = KeyboardGuard(Settings.defaults(), kiosk, platform, restore)
    guard.start(events.append)
    dialog = _open_dialog(qtbot, kiosk, guard)
    guard.stop()
    assert guard.holder() is None
    assert not _keyboard_held_by_us(window_manager)
    assert restore.pending() == []
    assert _xkb_options(window_manager) == options_before
    # The dialog still types, and a combination is no longer filtered or journalled.
    window_manager.run("xdotool", "type", "ok")
    qtbot.waitUntil(lambda: dialog.password.text() == "ok", timeout=5000)
    window_manager.run("xdotool", "key", "ctrl+alt+t")
    window_manager.run("xdotool", "type", "!")
    qtbot.waitUntil(lambda: dialog.password.text() == "ok!", timeout=5000)
    assert events == []
    dialog.reject()
    guard.start(events.append)  # and it starts again on the kiosk
    try:
        assert guard.holder() is kiosk.windowHandle()
        assert _keyboard_held_by_us(window_manager)
    finally:
        guard.stop()


def test_closing_a_popup_does_not_release_the_keyboard(
    qtbot: QtBot,
    window_manager: Xvfb,
    platform: X11Platform,
    kiosk: FullScreenKiosk,
) -> None:
    events: list[Event] = []
    guard = KeyboardGuard(Settings.defaults(), kiosk, platform)
    guard.start(events.append)
    try:
        kiosk.combo.showPopup()
        view = kiosk.combo.view().window()
        qtbot.waitExposed(view)
        kiosk.combo.hidePopup()
        assert not view.isVisible()
        # Qt released every grab of the process when the popup closed; the guard took
        # the keyboard back at once (no turn of the event loop, so not by its timer).
        assert _keyboard_held_by_us(window_manager)
        window_manager.run("xdotool", "key", "alt+Tab")
        qtbot.waitUntil(lambda: len(events) == 1, timeout=5000)
        assert (platform.active_window() or _none()).id == int(kiosk.winId())
    finally:
        guard.stop()


def test_following_the_windows_takes_no_reference_from_none(
    qtbot: QtBot, window_manager: Xvfb, platform: X11Platform, kiosk: FullScreenKiosk
) -> None:
    # PySide6 6.12 on CPython 3.11: each Qt call returning a null QObject* (modalWindow(),
    # focusWindow()…) drops a reference to None; a few thousand abort the process. The
    # guard re-checks its windows 5 times a second for the whole exam.
    guard = KeyboardGuard(Settings.defaults(), kiosk, platform)
    guard.start(lambda event: None)
    try:
        dialog = _open_dialog(qtbot, kiosk, guard)
        for _ in range(2):
            before = sys.getrefcount(None)
            for _ in range(1000):
                guard.follow()
            assert sys.getrefcount(None) - before > -10
            dialog.reject()
            qtbot.waitUntil(lambda: guard.holder() is kiosk.windowHandle(), timeout=5000)
    finally:
        guard.stop()
