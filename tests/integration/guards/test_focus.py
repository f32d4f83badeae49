"""Focus guard under openbox: activating another window is journalled and undone within 1 s."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, layer
from lockdown.events import Event
from lockdown.guards.focus import FocusGuard
from lockdown.platform.base import Capability
from lockdown.platform.linux import X11Platform
from lockdown.platform.null import NullPlatform
from tests.support.xclients import xev_window
from tests.support.xserver import Xvfb

pytestmark = pytest.mark.x11


@pytest.fixture
def other_window(window_manager: Xvfb) -> Iterator[int]:
    with xev_window(window_manager, "focus-thief") as wid:
        yield wid


def _active(platform: X11Platform) -> int:
    active = platform.active_window()
    return 0 if active is None else active.id


@pytest.mark.wm
def test_another_active_window_is_journalled_within_a_second_and_the_kiosk_comes_back(
    qtbot: QtBot, window_manager: Xvfb, other_window: int, platform: X11Platform
) -> None:
    kiosk = QWidget()
    kiosk.setWindowTitle("lockdown-kiosk")
    qtbot.addWidget(kiosk)
    kiosk.setGeometry(50, 50, 600, 400)
    kiosk.show()
    qtbot.waitExposed(kiosk)
    wid = int(kiosk.winId())

    def activated() -> bool:
        platform.activate_window(wid)  # again until the window manager has taken the window
        return _active(platform) == wid

    qtbot.waitUntil(activated, timeout=5000)

    events: list[Event] = []
    guard = FocusGuard(layer(Organisation(), {}), kiosk, platform)
    guard.start(events.append)
    try:
        for _ in range(2):
            started = time.monotonic()
            window_manager.run("xdotool", "windowactivate", str(other_window))
            qtbot.waitUntil(
                lambda: any(e.type == "guards.focus_lost" for e in events), timeout=1000
            )
            assert time.monotonic() - started < 1.0
            lost = next(e for e in events if e.type == "guards.focus_lost")
            assert lost.payload["window"]["title"] == "focus-thief"
            qtbot.waitUntil(
                lambda: any(e.type == "guards.focus_regained" for e in events), timeout=2000
            )
            assert _active(platform) == wid
            stacking = window_manager.run("xprop", "-root", "_NET_CLIENT_LIST_STACKING").stdout
            assert int(stacking.rsplit(",", 1)[-1].split()[-1], 16) == wid  # on top
            regained = next(e for e in events if e.type == "guards.focus_regained")
            assert 0 < regained.payload["duration"] < 1.5
            events.clear()
    finally:
        guard.stop()
        guard.stop()
    assert guard.losses == 2
    # Stopped: the other window keeps the focus.
    window_manager.run("xdotool", "windowactivate", "--sync", str(other_window))
    qtbot.wait(3 * 200)
    assert _active(platform) == other_window


def test_without_platform_support_it_falls_back_to_qt_and_says_so(
    qtbot: QtBot, xserver: Xvfb
) -> None:
    kiosk = QWidget()
    qtbot.addWidget(kiosk)
    guard = FocusGuard(layer(Organisation(), {}), kiosk, NullPlatform("no backend here"))
    info = guard.info()
    assert info.availability.value == "partial"
    assert "no backend here" in info.reason
    assert not NullPlatform().support(Capability.ACTIVE_WINDOW).available
