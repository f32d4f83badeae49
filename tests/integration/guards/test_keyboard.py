"""Keyboard guard under openbox: Alt+Tab / Super stay in the kiosk; another X client gets no keys."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import Event
from lockdown.guards.keyboard import KeyboardGuard
from lockdown.guards.restore import RestoreLog
from lockdown.platform.linux import X11Platform
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
    # Released: Alt+Tab switches windows again.
    window_manager.run("xdotool", "key", "alt+Tab")
    qtbot.waitUntil(lambda: (platform.active_window() or _none()).id != wid, timeout=5000)


def _none() -> Any:
    class Nothing:
        id = 0

    return Nothing()
