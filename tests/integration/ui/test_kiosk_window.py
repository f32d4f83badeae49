"""The kiosk window: full screen on the primary screen, shows the exam, refuses to close."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtGui import QCloseEvent, QGuiApplication
from PySide6.QtWidgets import QApplication

from tests.integration.ui.conftest import KioskFactory, Recorder
from tests.support.httpserver import LocalServer

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

EXAM = """<html><head><title>Exam</title></head>
<body style="margin:0;background:#c62828"><h1 style="color:white">Question 1</h1></body></html>"""


def test_kiosk_fills_the_primary_screen_and_shows_the_exam(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any, tmp_path: Path
) -> None:
    url = http_server.page("/", EXAM)
    kiosk = make_kiosk(browser__start_url=url)
    screen = QGuiApplication.primaryScreen()
    assert kiosk.window.geometry() == screen.geometry()
    assert kiosk.window.isFullScreen()
    assert kiosk.page.url().toString() == url

    def painted_red() -> bool:
        image = screen.grabWindow(0).toImage()
        colour = image.pixelColor(image.width() // 2, image.height() * 3 // 4)
        return colour.red() > 150 and colour.green() < 90 and colour.blue() < 90

    qtbot.waitUntil(painted_red, timeout=10000)
    shot = screen.grabWindow(0)
    assert (shot.width(), shot.height()) == (screen.geometry().width(), screen.geometry().height())
    assert shot.save(str(tmp_path / "kiosk.png"))


def test_close_requests_are_refused_and_journalled(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", EXAM))
    assert kiosk.window.close() is False
    event = QCloseEvent()
    QApplication.sendEvent(kiosk.window, event)
    assert not event.isAccepted()
    assert kiosk.window.isVisible()
    assert len(journal.of("kiosk.close_refused")) == 2


def test_window_closes_once_the_exam_has_ended(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", EXAM))
    kiosk.window.allow_close()
    assert kiosk.window.close() is True
    assert journal.of("kiosk.close_refused") == []


def test_unreachable_start_url_shows_the_error_page_with_retry(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    dead = LocalServer()  # bound, never started: connection is refused
    url = f"http://127.0.0.1:{dead.port}/"
    dead._httpd.server_close()
    back_up = {"action": "allow", "expression": http_server.url("/*")}
    kiosk = make_kiosk(browser__start_url=url, browser__url_rules=[back_up], start=False)
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=20000) as blocker:
        kiosk.start()
    assert blocker.args == [False, url]
    assert kiosk.window.stack.currentWidget() is kiosk.notice
    assert kiosk.notice.kind == "error"
    assert kiosk.notice.address.text() == url
    assert journal.urls("web.load_failed") == [url]
    # the exam is reachable again (here: on another port the rules allow): retry loads it
    http_server.page("/", EXAM)
    good = http_server.url("/")
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=20000) as blocker:
        kiosk.retry(good)
    assert blocker.args == [True, good]
    assert kiosk.window.stack.currentWidget() is kiosk.view
