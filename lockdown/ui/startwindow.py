"""The window of ``lockdown session`` that asks the candidate for the exam link.

Shown when the organisation sets no ``session.start_target``. The session has no window
manager, so the window covers the screen, takes the keyboard focus itself and is fully
keyboard-operable: type or paste the link, Enter opens it, Escape ends the session. When
the link entered before could not be opened, the window says why above the line.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lockdown.texts import text


class ExamLinkWindow(QDialog):
    """Full-screen: a prompt, a line for the link, "Open exam" and "End session"."""

    def __init__(self, problem: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exam-link-window")
        self.setWindowTitle(text("xsession.title"))
        title = QLabel(text("xsession.title"))
        title.setStyleSheet("font-size: 28px; font-weight: bold")
        prompt = QLabel(text("xsession.prompt"))
        #: why the link entered before could not be opened ("" the first time)
        self.problem = QLabel(problem)
        self.problem.setObjectName("exam-link-problem")
        self.problem.setWordWrap(True)
        self.problem.setMaximumWidth(640)
        self.problem.setStyleSheet("color: #b00020")
        self.problem.setVisible(bool(problem))
        self.link = QLineEdit()
        self.link.setObjectName("exam-link")
        self.link.setMinimumWidth(480)
        self.open_button = QPushButton(text("xsession.open"))
        self.open_button.setDefault(True)
        self.open_button.clicked.connect(self._open)
        leave = QPushButton(text("xsession.leave"))
        leave.setAutoDefault(False)
        leave.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(leave)
        buttons.addWidget(self.open_button)
        column = QVBoxLayout()
        column.addStretch(1)
        for widget in (title, prompt, self.problem, self.link):
            column.addWidget(widget, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addLayout(buttons)
        column.addStretch(1)
        outer = QHBoxLayout(self)
        outer.addStretch(1)
        outer.addLayout(column)
        outer.addStretch(1)

    def _open(self) -> None:
        if self.link.text().strip():
            self.accept()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        # no window manager gives focus: take it (Qt sets the X input focus itself)
        self.activateWindow()
        self.link.setFocus()


def ask_exam_link(problem: str = "") -> str:
    """Ask for the exam link (saying why the last one failed, if it did); "" when the
    candidate ends the session instead."""
    window = ExamLinkWindow(problem)
    window.setWindowState(Qt.WindowState.WindowFullScreen)
    accepted = bool(window.exec())  # 1: Accepted, 0: Rejected
    link = window.link.text().strip() if accepted else ""
    window.deleteLater()
    return link
