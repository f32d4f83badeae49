"""A link launch as the candidate sees it: the download window (with its timeout) while a
real local server holds the configuration back, the error dialog, the .seb password dialog
asked from the download thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QWidget

from lockdown.config.settings import ConfigError, Organisation
from lockdown.launch import FETCH_TIMEOUT_S, LaunchError
from lockdown.texts import text
from lockdown.ui.dialogs import seb_password_prompt
from lockdown.ui.launchwindow import load_with_feedback
from tests.integration.ui.test_launch import PasswordTyper
from tests.support.httpserver import LocalServer, Response, SeenRequest

pytestmark = pytest.mark.x11

DATA = Path(__file__).resolve().parents[2] / "data" / "seb"
EXAM = b'format = 1\n[browser]\nstart_url = "https://exam.example.org/"\n'
ALLOW_UNSIGNED = Organisation(values={"config.allow_unsigned": True})


def download_window() -> QWidget | None:
    for widget in QApplication.topLevelWidgets():
        if widget.objectName() == "lockdown-download" and widget.isVisible():
            return widget
    return None


class HeldBack:
    """A route that answers only when released, and notes what the window showed meanwhile."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.release = threading.Event()
        self.shown: list[str] = []
        self._watch = QTimer()
        self._watch.timeout.connect(self._look)
        self._watch.start(50)

    def _look(self) -> None:
        window = download_window()
        if window is None or self.release.is_set():
            return
        self.shown = [label.text() for label in window.findChildren(QLabel)]
        if any(s.startswith("1 s") for s in self.shown):  # the seconds count while waiting
            self.release.set()

    def __call__(self, request: SeenRequest) -> Response:
        assert self.release.wait(20), "the download window never showed"
        return Response(body=self.body, content_type="text/plain")

    def stop(self) -> None:
        self._watch.stop()
        self.release.set()


@pytest.fixture
def held(http_server: LocalServer) -> Iterator[Any]:
    made: list[HeldBack] = []

    def make(path: str, body: bytes) -> str:
        made.append(HeldBack(body))
        http_server.routes[path] = made[-1]
        return http_server.url(path).replace("http://", "lockdown://")

    yield make, made
    for one in made:
        one.stop()


def test_a_download_shows_where_from_and_the_seconds_waited_of_the_timeout(
    qtbot: Any, held: Any
) -> None:
    make, made = held
    link = make("/exam.toml", EXAM)
    errors: list[str] = []
    exam = load_with_feedback(
        link, ALLOW_UNSIGNED, password=seb_password_prompt(), show_error=errors.append
    )
    assert exam.settings["browser.start_url"] == "https://exam.example.org/"
    assert made[0].shown == [
        text("launch.downloading", host="127.0.0.1"),
        text("launch.download_waited", seconds=1, timeout=round(FETCH_TIMEOUT_S)),
    ]
    assert f"after {round(FETCH_TIMEOUT_S)} s" in made[0].shown[1]
    assert download_window() is None
    assert errors == []


def test_a_password_protected_seb_over_a_link_asks_on_the_gui_thread(qtbot: Any, held: Any) -> None:
    make, made = held
    link = make("/exam.seb", (DATA / "exam-password.seb").read_bytes()).replace(
        "lockdown://", "seb://"
    )
    answers = PasswordTyper(qtbot, ["wrong", "Prüfung-2026!"])
    try:
        exam = load_with_feedback(link, Organisation(), password=seb_password_prompt())
    finally:
        answers.stop()
    assert exam.kind == "seb"
    assert answers.labels == [text("seb.password_prompt"), text("seb.password_retry", attempt=2)]
    assert made[0].shown[0] == text("launch.downloading", host="127.0.0.1")


class ErrorDialogReader:
    """Reads the launch error dialog as it opens, then presses its OK button."""

    def __init__(self, qtbot: Any) -> None:
        self.texts: list[tuple[str, str]] = []
        self._timer = QTimer()
        self._timer.timeout.connect(self._read)
        self._timer.start(30)

    def _read(self) -> None:
        box = QApplication.activeModalWidget()
        if (
            isinstance(box, QMessageBox)
            and box.objectName() == "lockdown-launch-error"
            and box.isVisible()
            and not box.property("read")
        ):
            box.setProperty("read", True)
            self.texts.append((box.windowTitle(), box.text()))
            box.accept()

    def stop(self) -> None:
        self._timer.stop()


@pytest.fixture
def error_reader(qtbot: Any) -> Iterator[ErrorDialogReader]:
    reader = ErrorDialogReader(qtbot)
    yield reader
    reader.stop()


@pytest.mark.parametrize(
    ("path", "body", "error", "fragment"),
    [
        ("/missing.toml", None, LaunchError, "answered 404"),
        ("/page.html", b"<html>Welcome</html>", ConfigError, "is not signed"),
    ],
)
def test_a_link_that_cannot_be_opened_is_shown_in_a_dialog(
    qtbot: Any,
    http_server: LocalServer,
    error_reader: ErrorDialogReader,
    path: str,
    body: bytes | None,
    error: type[Exception],
    fragment: str,
) -> None:
    if body is not None:
        http_server.routes[path] = Response(body=body)
    link = http_server.url(path).replace("http://", "lockdown://")
    with pytest.raises(error) as caught:
        load_with_feedback(link, Organisation(), password=seb_password_prompt())
    assert fragment in str(caught.value)
    assert error_reader.texts == [
        (text("launch.failed_title"), text("launch.failed", reason=str(caught.value)))
    ]


def test_a_bad_link_scheme_is_shown_in_a_dialog(
    qtbot: Any, error_reader: ErrorDialogReader
) -> None:
    with pytest.raises(LaunchError, match=r"cannot open ftp:// links"):
        load_with_feedback("ftp://exam.example.org/x", Organisation(), password=lambda _: None)
    assert len(error_reader.texts) == 1


def test_a_local_file_opens_without_either_window(
    qtbot: Any, tmp_path: Path, error_reader: ErrorDialogReader
) -> None:
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match="file not found"):
        load_with_feedback(str(missing), Organisation(), password=lambda _: None)
    exam = load_with_feedback(str(DATA / "exam-plnd.seb"), Organisation(), password=lambda _: None)
    assert exam.kind == "seb"
    assert error_reader.texts == []
