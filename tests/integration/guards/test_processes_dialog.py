"""The pre-exam prohibited-apps dialog with a real process and real Qt widgets."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog
from pytestqt.qtbot import QtBot

from lockdown.guards.policy import ProhibitedAppsPrecheck
from lockdown.ui.prohibited_dialog import ProhibitedAppsDialog
from tests.support.processes import (
    RUN_APPS,
    RUN_RECORDER,
    TEST_SCOPE,
    Detached,
    Recorder,
    alive,
    renamed_copy,
)

pytestmark = pytest.mark.x11


@pytest.fixture
def anydesk(tmp_path: Path, detached: Detached) -> int:
    """A prohibited app (under this run's own name: no other run's guard closes it)."""
    return detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")


def _dialog(qtbot: QtBot, can_close: bool, journal: Recorder) -> ProhibitedAppsDialog:
    check = ProhibitedAppsPrecheck(
        RUN_APPS, journal, can_close=can_close, grace=1.0, scope=TEST_SCOPE
    )
    dialog = ProhibitedAppsDialog(check, check.scan())
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def test_close_them_for_me_closes_the_app_and_lets_the_exam_start(
    qtbot: QtBot, anydesk: int
) -> None:
    journal = Recorder()
    dialog = _dialog(qtbot, True, journal)
    items = [dialog.apps.item(i).text() for i in range(dialog.apps.count())]
    assert any(text.startswith(RUN_RECORDER) for text in items)  # the app's name
    assert dialog.close_button.isVisible()
    qtbot.mouseClick(dialog.close_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted.value, timeout=5000)
    assert not alive(anydesk)
    assert journal.of("guards.prohibited_app_closed", anydesk)


def test_without_the_close_policy_the_dialog_waits_for_the_candidate(
    qtbot: QtBot, anydesk: int
) -> None:
    dialog = _dialog(qtbot, False, Recorder())
    assert not dialog.close_button.isVisible()
    assert dialog.result() != QDialog.DialogCode.Accepted.value
    psutil.Process(anydesk).terminate()  # the candidate closes it
    qtbot.waitUntil(lambda: dialog.result() == QDialog.DialogCode.Accepted.value, timeout=5000)


def test_leave_rejects(qtbot: QtBot, anydesk: int) -> None:
    dialog = _dialog(qtbot, True, Recorder())
    qtbot.mouseClick(dialog.leave_button, Qt.MouseButton.LeftButton)
    assert dialog.result() == QDialog.DialogCode.Rejected.value
    assert alive(anydesk)
