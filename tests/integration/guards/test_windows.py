"""The guards' event filter follows our windows: a dialog that takes the focus gets it, a
destroyed one is forgotten, and stop takes it off every window (real Qt windows on Xvfb).
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.guards.windows import FilteredWindows

pytestmark = pytest.mark.x11


class _Seen(QObject):
    """Counts the key presses each watched object got."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: list[QObject] = []

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.KeyPress:
            self.keys.append(watched)
        return False


def _press(qtbot: QtBot, widget: QWidget) -> None:
    handle = widget.windowHandle()
    assert handle is not None
    qtbot.keyClick(handle, "a")


def test_a_dialog_that_takes_the_focus_is_filtered_until_stop(qtbot: QtBot, kiosk: QWidget) -> None:
    seen = _Seen()
    windows = FilteredWindows(seen)
    windows.start(kiosk.windowHandle())
    _press(qtbot, kiosk)
    assert seen.keys == [kiosk.windowHandle()]

    dialog = QWidget()
    dialog.setGeometry(100, 100, 200, 100)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is dialog.windowHandle())
    assert len(windows.windows) == 2
    _press(qtbot, dialog)
    assert seen.keys[-1] is dialog.windowHandle()

    dialog.deleteLater()  # destroyed: forgotten
    qtbot.waitUntil(lambda: len(windows.windows) == 1)

    windows.stop()
    before = len(seen.keys)
    _press(qtbot, kiosk)
    assert len(seen.keys) == before  # the filter is off
    assert windows.windows == ()


def test_without_following_the_focus_only_adopted_windows_are_filtered(
    qtbot: QtBot, kiosk: QWidget
) -> None:
    seen = _Seen()
    forgotten: list[QObject | None] = []
    windows = FilteredWindows(seen, follow_focus=False, on_forget=forgotten.append)
    windows.start(kiosk.windowHandle())
    dialog = QWidget()
    dialog.setGeometry(100, 100, 200, 100)
    dialog.show()
    qtbot.waitExposed(dialog)
    _press(qtbot, dialog)
    assert seen.keys == []
    handle = dialog.windowHandle()
    assert handle is not None
    windows.adopt(handle)
    windows.adopt(handle)  # once
    _press(qtbot, dialog)
    assert seen.keys == [handle]
    dialog.deleteLater()
    qtbot.waitUntil(lambda: len(forgotten) == 1)
    windows.stop()
    # after stop nothing is adopted, and a destroyed window is nobody's news
    late = QWidget()
    late.show()
    qtbot.waitExposed(late)
    late_handle = late.windowHandle()
    assert late_handle is not None
    windows.adopt(late_handle)
    assert windows.windows == ()
    _press(qtbot, late)
    assert seen.keys == [handle]
    late.deleteLater()
    qtbot.wait(100)
    assert len(forgotten) == 1
