"""The pre-exam dialog that asks the candidate to close the prohibited apps running.

It lists the apps (and, on macOS, those holding Screen Recording permission with the
remedy), rescans every second and closes itself as soon as everything is clear. "Close
them for me" appears only when the policy (``guards.prohibited_apps = "close"``) allows
it; closing runs on a worker thread and its result comes back through a signal.
:func:`prompt_prohibited_apps` is the :data:`~lockdown.guards.policy.ProhibitedAppsPrompt`
that :class:`~lockdown.guards.policy.SystemGuardsOperation` calls.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from lockdown import log
from lockdown.guards.appslist import names_of
from lockdown.guards.policy import PrecheckFindings, ProhibitedAppsPrecheck
from lockdown.guards.processes import CloseResult
from lockdown.texts import TEXTS

RESCAN_MS = 1000


class _CloseBridge(QObject):
    #: the results of one "close them for me" run (list[CloseResult])
    finished = Signal(object)


class ProhibitedAppsDialog(QDialog):
    """Lists the prohibited apps; accepted once none is left, rejected on "Leave"."""

    def __init__(
        self,
        check: ProhibitedAppsPrecheck,
        findings: PrecheckFindings,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.check = check
        self.findings = findings
        self.setWindowTitle(TEXTS["guards.prohibited.title"])
        self.setModal(True)
        layout = QVBoxLayout(self)
        body = QLabel(TEXTS["guards.prohibited.body"])
        body.setWordWrap(True)
        layout.addWidget(body)
        self.apps = QListWidget()
        layout.addWidget(self.apps)
        self.remedy = QLabel(TEXTS["guards.tcc.remedy"])
        self.remedy.setWordWrap(True)
        layout.addWidget(self.remedy)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        buttons = QDialogButtonBox()
        self.close_button = QPushButton(TEXTS["guards.prohibited.close_for_me"])
        self.check_button = QPushButton(TEXTS["guards.prohibited.check_again"])
        self.leave_button = QPushButton(TEXTS["guards.prohibited.cancel"])
        buttons.addButton(self.close_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.check_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.leave_button, QDialogButtonBox.ButtonRole.RejectRole)
        layout.addWidget(buttons)
        self.close_button.setVisible(check.can_close)
        self.close_button.clicked.connect(self.close_for_me)
        self.check_button.clicked.connect(self.rescan)
        self.leave_button.clicked.connect(self.reject)
        self._bridge = _CloseBridge(self)
        self._bridge.finished.connect(self._closed, Qt.ConnectionType.QueuedConnection)
        self._closing = False
        self._timer = QTimer(self)
        self._timer.setInterval(RESCAN_MS)
        self._timer.timeout.connect(self.rescan)
        self._show(findings)

    def showEvent(self, event: object) -> None:
        self._timer.start()
        super().showEvent(event)  # type: ignore[arg-type]

    def done(self, result: int) -> None:
        self._timer.stop()
        super().done(result)

    def _show(self, findings: PrecheckFindings) -> None:
        self.findings = findings
        self.apps.clear()
        for match in findings.running:
            self.apps.addItem(f"{match.app.name}  ({match.process.name or match.matched_name})")
        granted = [g.display_name for g in findings.capture_permitted]
        if granted:
            self.apps.addItem(TEXTS["guards.tcc.granted"].format(apps=", ".join(granted)))
        self.remedy.setVisible(bool(granted))
        self.close_button.setEnabled(bool(findings.running) and not self._closing)

    def rescan(self) -> None:
        findings = self.check.scan()
        self._show(findings)
        if findings.clear:
            log.guards.info("Prohibited apps closed; the exam can start")
            self.accept()

    def close_for_me(self) -> None:
        if self._closing or not self.findings.running:
            return
        self._closing = True
        self.close_button.setEnabled(False)
        matches = list(self.findings.running)
        threading.Thread(
            target=lambda: self._bridge.finished.emit(self.check.close(matches)),
            name="close-prohibited",
            daemon=True,
        ).start()

    def _closed(self, results: list[CloseResult]) -> None:
        self._closing = False
        survivors = [r.match for r in results if not r.closed]
        self.status.setText(
            TEXTS["guards.prohibited.survived"].format(apps=", ".join(names_of(survivors)))
            if survivors
            else ""
        )
        self.rescan()


def prompt_prohibited_apps(
    check: ProhibitedAppsPrecheck, findings: PrecheckFindings, parent: QWidget | None = None
) -> bool:
    """Show the dialog until the apps are gone (True) or the candidate leaves (False)."""
    dialog = ProhibitedAppsDialog(check, findings, parent)
    return dialog.exec() == QDialog.DialogCode.Accepted.value
