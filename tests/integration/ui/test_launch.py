"""Fetching an exam configuration over real TLS, and the .seb password dialog driven for real."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QDialogButtonBox, QInputDialog, QLineEdit

from lockdown.config.settings import ConfigError, Organisation
from lockdown.launch import LaunchError, fetch, load_exam
from lockdown.texts import text
from lockdown.ui.dialogs import seb_password_prompt
from tests.integration.ui.tls import https_url, make_certificate, tls_server
from tests.support.httpserver import LocalServer, Response

DATA = Path(__file__).resolve().parents[2] / "data" / "seb"
SEB_PASSWORD = "Prüfung-2026!"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[LocalServer]:
    server = tls_server(*certificate)
    yield server
    server.stop()


def _trusting(certificate: tuple[Path, Path]) -> Organisation:
    """An organisation whose file adds the test CA (the only way to add one)."""
    return Organisation(values={"network.ca_certificates": str(certificate[0])})


def test_fetch_downloads_a_configuration_over_tls(
    https_server: LocalServer, certificate: tuple[Path, Path]
) -> None:
    https_server.routes["/exam.toml"] = Response(body=b"format = 1\n", content_type="text/plain")
    assert fetch(https_url(https_server, "/exam.toml"), _trusting(certificate)) == b"format = 1\n"
    assert [r.method for r in https_server.seen("/exam.toml")] == ["GET"]


def test_fetch_refuses_an_untrusted_certificate_with_one_line(
    https_server: LocalServer, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the candidate's own CA bundle in the environment is never used
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.setenv(name, str(certificate[0]))
    url = https_url(https_server, "/exam.toml")
    with pytest.raises(LaunchError) as caught:
        fetch(url)
    message = str(caught.value)
    assert message.startswith(url) and "SSL error" in message and "\n" not in message
    https_server.routes["/exam.toml"] = Response(body=b"format = 1\n")
    assert fetch(url, _trusting(certificate)) == b"format = 1\n"  # positive control


def test_fetch_refuses_a_body_larger_than_a_configuration(
    https_server: LocalServer, certificate: tuple[Path, Path]
) -> None:
    from lockdown.launch import MAX_DOWNLOAD

    https_server.routes["/big"] = Response(body=b"x" * (MAX_DOWNLOAD + 1))
    with pytest.raises(LaunchError, match="larger than an exam configuration"):
        fetch(https_url(https_server, "/big"), _trusting(certificate))


def type_text(field: QLineEdit, value: str) -> None:
    """Key events carrying each character (QTest's keyClicks knows ASCII only)."""
    for char in value:
        key = Qt.Key(ord(char.upper())) if char.isascii() else Qt.Key.Key_unknown
        for kind in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            QApplication.sendEvent(
                field, QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, char)
            )
    assert field.text() == value


class PasswordTyper:
    """Answers each .seb password dialog as it opens: types the next answer and presses OK
    (or Cancel for None), keeping the label each dialog showed."""

    def __init__(self, qtbot: Any, answers: list[str | None]) -> None:
        self._qtbot = qtbot
        self._answers = list(answers)
        self.labels: list[str] = []
        self._timer = QTimer()
        self._timer.timeout.connect(self._answer)
        self._timer.start(20)

    def _answer(self) -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QInputDialog) or dialog.objectName() != "lockdown-seb-password":
            return
        if not dialog.isVisible() or dialog.property("answered"):
            return
        dialog.setProperty("answered", True)
        self.labels.append(dialog.labelText())
        field = dialog.findChild(QLineEdit)
        buttons = dialog.findChild(QDialogButtonBox)
        assert field is not None and buttons is not None
        assert field.echoMode() == QLineEdit.EchoMode.Password
        answer = self._answers.pop(0) if self._answers else None
        if answer is None:
            self._qtbot.mouseClick(
                buttons.button(QDialogButtonBox.StandardButton.Cancel), Qt.MouseButton.LeftButton
            )
            return
        type_text(field, answer)
        self._qtbot.mouseClick(
            buttons.button(QDialogButtonBox.StandardButton.Ok), Qt.MouseButton.LeftButton
        )

    def stop(self) -> None:
        self._timer.stop()


@pytest.fixture
def typer(qtbot: Any) -> Iterator[Any]:
    made: list[PasswordTyper] = []

    def make(*answers: str | None) -> PasswordTyper:
        made.append(PasswordTyper(qtbot, list(answers)))
        return made[-1]

    yield make
    for one in made:
        one.stop()


@pytest.mark.x11
def test_seb_password_dialog_opens_the_file_after_a_wrong_try(typer: Any) -> None:
    answers = typer("wrong", SEB_PASSWORD)
    exam = load_exam(
        str(DATA / "exam-password.seb"), Organisation(), password=seb_password_prompt()
    )
    assert exam.kind == "seb"
    assert answers.labels == [
        text("seb.password_prompt"),
        text("seb.password_retry", attempt=2),
    ]


@pytest.mark.x11
def test_three_wrong_seb_passwords_are_a_clear_refusal(typer: Any) -> None:
    answers = typer("wrong", "Prüfung-2025!", "prüfung-2026!", SEB_PASSWORD)
    with pytest.raises(ConfigError) as caught:
        load_exam(str(DATA / "exam-password.seb"), Organisation(), password=seb_password_prompt())
    assert len(answers.labels) == 3
    message = str(caught.value)
    assert "wrong password 3 times" in message and "\n" not in message


@pytest.mark.x11
def test_cancelling_the_seb_password_dialog_refuses_the_file(typer: Any) -> None:
    answers = typer(None)
    with pytest.raises(ConfigError, match="no password was given"):
        load_exam(str(DATA / "exam-password.seb"), Organisation(), password=seb_password_prompt())
    assert len(answers.labels) == 1
