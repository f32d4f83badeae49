"""Fixtures shared by the guard tests: a shown kiosk window, the X11 platform, detached apps."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.platform.linux import X11Platform
from tests.support.processes import Detached, detached_processes
from tests.support.xserver import Xvfb


@pytest.fixture
def kiosk(qtbot: QtBot, xserver: Xvfb) -> QWidget:
    """A plain top-level window standing in for the kiosk, shown and exposed."""
    window = QWidget()
    qtbot.addWidget(window)
    window.setGeometry(0, 0, 640, 480)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def platform(xserver: Xvfb) -> Iterator[X11Platform]:
    """The X11 platform on the session display, its connection closed afterwards."""
    p = X11Platform()
    yield p
    p.close()


@pytest.fixture
def detached() -> Iterator[Detached]:
    """Starts programs outside our process tree; kills what is left of them afterwards."""
    with detached_processes() as processes:
        yield processes
