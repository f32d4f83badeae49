"""Dialogs of the kiosk: quit (with the quit password) and the .seb settings password."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QInputDialog,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from lockdown import log
from lockdown.events import Event, EventSink
from lockdown.texts import text
from lockdown.ui.quitrules import QuitRules, delay_after


class QuitDialog(QDialog):
    """Confirms quitting; asks for the quit password when one is set.

    A wrong password is journalled and locks the dialog for a growing delay
    (:func:`~lockdown.ui.quitrules.delay_after`). ``accepted`` means: end the exam.
    """

    def __init__(self, rules: QuitRules, journal: EventSink, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lockdown-quit")
        self.setWindowTitle(text("quit.title"))
        self.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        self.setModal(True)
        self._rules = rules
        self._journal = journal
        self.wrong_attempts = 0
        layout = QVBoxLayout(self)
        self.prompt = QLabel(
            text("quit.password_prompt" if rules.needs_password else "quit.confirm"), self
        )
        layout.addWidget(self.prompt)
        self.password = QLineEdit(self)
        self.password.setObjectName("password")
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setVisible(rules.needs_password)
        layout.addWidget(self.password)
        self.error = QLabel("", self)
        self.error.setObjectName("error")
        self.error.setStyleSheet("color: #b71c1c;")
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(self)
        self.ok = self.buttons.addButton(text("quit.ok"), QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel = self.buttons.addButton(
            text("quit.cancel"), QDialogButtonBox.ButtonRole.RejectRole
        )
        self.buttons.accepted.connect(self.submit)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self._unlock = QTimer(self)
        self._unlock.setSingleShot(True)
        self._unlock.timeout.connect(self._unlocked)
        self._remaining = 0
        self._tick = QTimer(self)
        self._tick.timeout.connect(self._count_down)

    @property
    def locked(self) -> bool:
        return self._unlock.isActive()

    def submit(self) -> None:
        if self.locked:
            return
        if self._rules.check_password(self.password.text()):
            if self._rules.needs_password:
                self._journal(Event("kiosk.quit_password_ok", {}))
            self.accept()
            return
        self.wrong_attempts += 1
        delay = delay_after(self.wrong_attempts)
        self._journal(
            Event(
                "kiosk.quit_password_wrong",
                {"attempt": self.wrong_attempts, "delay_s": delay},
            )
        )
        log.init.warning("Wrong quit password (attempt %d)", self.wrong_attempts)
        self.password.clear()
        self.password.setEnabled(False)
        self.ok.setEnabled(False)
        self._remaining = int(delay)
        self.error.setText(text("quit.wait", seconds=self._remaining))
        self._unlock.start(int(delay * 1000))
        self._tick.start(1000)

    def _count_down(self) -> None:
        self._remaining = max(0, self._remaining - 1)
        self.error.setText(text("quit.wait", seconds=self._remaining))

    def _unlocked(self) -> None:
        self._tick.stop()
        self.error.setText(text("quit.wrong_password"))
        self.password.setEnabled(True)
        self.ok.setEnabled(True)
        self.password.setFocus()


def seb_password_prompt(parent: QWidget | None = None) -> Callable[[int], str | None]:
    """The ``password(attempt)`` callback of ``load_seb``: asks the candidate, None to give up."""

    def ask(attempt: int) -> str | None:
        label = (
            text("seb.password_prompt")
            if attempt <= 1
            else text("seb.password_retry", attempt=attempt)
        )
        dialog = QInputDialog(parent)
        dialog.setObjectName("lockdown-seb-password")
        dialog.setWindowTitle(text("seb.password_title"))
        dialog.setLabelText(label)
        dialog.setInputMode(QInputDialog.InputMode.TextInput)
        dialog.setTextEchoMode(QLineEdit.EchoMode.Password)
        dialog.setWindowFlag(Qt.WindowType.WindowStaysOnTopHint, True)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            value = dialog.textValue()
        finally:
            dialog.deleteLater()
        log.register_secret(value)
        return value

    return ask
