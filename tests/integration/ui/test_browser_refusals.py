"""What the exam browser refuses, driven for real: key presses through X (xdotool), the
page's own ``window.print()``, permission requests, downloads, close requests under a
window manager; and the toolbar's indicators and zoom."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication, QLabel, QMessageBox, QPushButton

from lockdown.texts import text
from lockdown.ui.kiosk import Kiosk
from lockdown.ui.toolbar import network_up
from tests.integration.ui.conftest import KioskFactory, Recorder
from tests.support.httpserver import LocalServer, Response, SeenRequest
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

#: An exam page that records every key the page itself receives.
KEYS_PAGE = """<html><body><input id="answer" autofocus><script>
window.keys = [];
document.addEventListener('keydown', e => window.keys.push(e.key));
document.getElementById('answer').addEventListener('mousedown', () => window.clicked = true);
</script></body></html>"""


def js(kiosk: Kiosk, qtbot: Any, script: str) -> Any:
    """Run ``script`` in the page's main world and return its value."""
    done: list[Any] = []
    kiosk.page.runJavaScript(script, 0, done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    return done[0]


def focus(x: Xvfb, kiosk: Kiosk, qtbot: Any) -> None:
    """Give the kiosk window the X input focus, as a click would."""
    x.run("xdotool", "windowfocus", "--sync", str(int(kiosk.window.winId())))
    qtbot.waitUntil(lambda: QApplication.activeWindow() is kiosk.window, timeout=5000)
    # a real click into the answer field: Chromium takes the keyboard from then on
    rect = json.loads(js(kiosk, qtbot, "JSON.stringify(answer.getBoundingClientRect())"))
    zoom = kiosk.page.zoomFactor()
    spot = kiosk.view.mapToGlobal(
        QPoint(
            int((rect["x"] + rect["width"] / 2) * zoom),
            int((rect["y"] + rect["height"] / 2) * zoom),
        )
    )

    def clicked() -> bool:
        x.run("xdotool", "mousemove", str(spot.x()), str(spot.y()), "click", "1")
        return bool(js(kiosk, qtbot, "window.clicked === true"))

    qtbot.waitUntil(clicked, timeout=5000)


def press(x: Xvfb, *keys: str) -> None:
    """Real key presses through the X server (XTEST), as a keyboard would send them."""
    for key in keys:
        x.run("xdotool", "key", key)


def page_keys(kiosk: Kiosk, qtbot: Any, marker: str) -> list[str]:
    """The keys the page saw, once the marker key (pressed last) has arrived."""
    seen: list[str] = []

    def arrived() -> bool:
        seen[:] = json.loads(js(kiosk, qtbot, "JSON.stringify(window.keys)"))
        return marker in seen

    qtbot.waitUntil(arrived, timeout=5000)
    return seen


# -- keys ------------------------------------------------------------------------------


def test_devtools_view_source_and_print_keys_do_nothing_and_are_journalled(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any, xserver: Xvfb
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", KEYS_PAGE))
    windows = set(QApplication.topLevelWidgets())
    focus(xserver, kiosk, qtbot)
    press(xserver, "F12", "ctrl+shift+i", "ctrl+shift+j", "ctrl+u", "ctrl+p", "a")
    expected = ["devtools", "devtools", "devtools", "view_source", "print"]
    qtbot.waitUntil(lambda: len(journal.of("kiosk.shortcut_refused")) == 5, timeout=5000)
    assert sorted(e["action"] for e in journal.of("kiosk.shortcut_refused")) == sorted(expected)
    keys = page_keys(kiosk, qtbot, "a")  # the page has the keyboard: "a" reached it
    for stolen in ("F12", "I", "i", "J", "j", "p", "P"):
        assert stolen not in keys
    # nothing opened: no devtools, no new window, no print, no navigation
    assert kiosk.page.devToolsPage() is None
    assert set(QApplication.topLevelWidgets()) - windows == set()
    assert journal.of("web.print_blocked") == []
    assert kiosk.page.url().toString() == http_server.url("/")
    assert len(http_server.seen("/")) == 1
    assert js(kiosk, qtbot, "document.getElementById('answer').value") == "a"


def counting(server: LocalServer, path: str, html: str) -> list[SeenRequest]:
    """Serve ``html`` at ``path`` and return the list of requests it answered."""
    hits: list[SeenRequest] = []

    def route(request: SeenRequest) -> Response:
        hits.append(request)
        return Response(body=html.encode())

    server.routes[path] = route
    return hits


def test_reload_keys_reload_when_reloading_is_allowed(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any, xserver: Xvfb
) -> None:
    hits = counting(http_server, "/", KEYS_PAGE)
    kiosk = make_kiosk(browser__start_url=http_server.url("/"), browser__allow_reload=True)
    focus(xserver, kiosk, qtbot)
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=10000):
        press(xserver, "F5")
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=10000):
        press(xserver, "ctrl+r")
    assert len(hits) == 3
    assert journal.of("kiosk.shortcut_refused") == []


def test_reload_keys_are_refused_when_reloading_is_not_allowed(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any, xserver: Xvfb
) -> None:
    hits = counting(http_server, "/", KEYS_PAGE)
    kiosk = make_kiosk(browser__start_url=http_server.url("/"), browser__allow_reload=False)
    assert "reload" not in kiosk.toolbar.buttons
    focus(xserver, kiosk, qtbot)
    press(xserver, "F5", "ctrl+r", "ctrl+F5", "a")
    qtbot.waitUntil(lambda: len(journal.of("kiosk.shortcut_refused")) == 3, timeout=5000)
    assert {e["action"] for e in journal.of("kiosk.shortcut_refused")} == {"reload"}
    assert "a" in page_keys(kiosk, qtbot, "a")  # still the same page: never reloaded
    assert len(hits) == 1


@pytest.mark.wm
def test_alt_f4_under_a_window_manager_is_refused_and_the_window_stays(
    window_manager: Xvfb,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", KEYS_PAGE))
    wid = str(int(kiosk.window.winId()))
    window_manager.run("xdotool", "windowactivate", "--sync", wid)
    qtbot.waitUntil(lambda: QApplication.activeWindow() is kiosk.window, timeout=5000)
    press(window_manager, "alt+F4")  # openbox turns it into WM_DELETE_WINDOW
    qtbot.waitUntil(lambda: bool(journal.of("kiosk.close_refused")), timeout=5000)
    assert journal.of("kiosk.close_refused") == [{"spontaneous": True}]
    assert kiosk.window.isVisible() and kiosk.window.isFullScreen()
    info = window_manager.run("xwininfo", "-id", wid).stdout
    assert "IsViewable" in info


# -- print, permissions, downloads ---------------------------------------------------------


def test_window_print_from_the_page_and_from_a_frame_is_blocked_and_journalled(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    http_server.page("/frame", "<p>frame</p>")
    kiosk = make_kiosk(
        browser__start_url=http_server.page("/", '<p>exam</p><iframe src="/frame"></iframe>')
    )
    js(kiosk, qtbot, "window.print(); true")
    qtbot.waitUntil(lambda: len(journal.of("web.print_blocked")) == 1, timeout=5000)
    assert journal.urls("web.print_blocked") == [http_server.url("/")]
    assert kiosk.toolbar.message.text() == text("notice.print_blocked")
    js(kiosk, qtbot, "frames[0].print(); true")
    qtbot.waitUntil(lambda: len(journal.of("web.print_blocked")) == 2, timeout=5000)
    # no print dialog or preview window opened (earlier tests' closed windows may linger)
    assert {w for w in QApplication.topLevelWidgets() if w.isVisible()} == {kiosk.window}


PERMISSIONS_PAGE = """<html><body><script>
window.results = {};
function ask() {
  Notification.requestPermission().then(r => results.notifications = r);
  navigator.geolocation.getCurrentPosition(
    () => results.geolocation = 'position',
    e => results.geolocation = e.code === e.PERMISSION_DENIED ? 'denied' : 'allowed',
    {timeout: 1000});
  navigator.mediaDevices.getUserMedia({audio: true}).then(
    s => { results.microphone = 'stream'; s.getTracks().forEach(t => t.stop()); },
    e => results.microphone = e.name);
  return true;
}
</script></body></html>"""


@pytest.mark.audio
@pytest.mark.parametrize("decision", ["default", "allow"])
def test_permission_requests_follow_the_policy_table(
    decision: str,
    virtual_microphone: VirtualMicrophone,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    values = {
        f"browser__permission__{name}": "allow"
        for name in ("microphone", "notifications", "geolocation")
        if decision == "allow"
    }
    kiosk = make_kiosk(browser__start_url=http_server.page("/", PERMISSIONS_PAGE), **values)
    js(kiosk, qtbot, "ask()")
    results: dict[str, str] = {}

    def answered() -> bool:
        results.update(json.loads(js(kiosk, qtbot, "JSON.stringify(results)")))
        return len(results) == 3

    qtbot.waitUntil(answered, timeout=10000)
    granted = decision == "allow"
    assert results["notifications"] == ("granted" if granted else "denied")
    assert results["geolocation"] == ("allowed" if granted else "denied")
    assert (results["microphone"] == "stream") is granted
    events = {e["feature"]: e for e in journal.of("web.permission")}
    assert set(events) == {"Notifications", "Geolocation", "MediaAudioCapture"}
    for event in events.values():
        assert event["decision"] == ("allow" if granted else "deny")
        assert event["origin"].rstrip("/") == http_server.url("").rstrip("/")


def attachment(server: LocalServer) -> tuple[str, bytes]:
    body = b"exam data, 42\n" * 100
    server.routes["/data.csv"] = Response(
        body=body,
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="data.csv"'},
    )
    server.page("/", '<a id="get" href="/data.csv">download</a>')
    return server.url("/data.csv"), body


def test_downloads_are_blocked_by_default(
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
    tmp_path: Path,
) -> None:
    url, _ = attachment(http_server)
    folder = tmp_path / "downloads"
    kiosk = make_kiosk(browser__start_url=http_server.url("/"), downloads=folder)
    js(kiosk, qtbot, "document.getElementById('get').click(); true")
    qtbot.waitUntil(lambda: journal.urls("web.download_blocked") == [url], timeout=10000)
    assert kiosk.toolbar.message.text() == text("notice.download_blocked")
    assert not folder.exists() or list(folder.iterdir()) == []
    assert journal.of("web.download") == []
    assert kiosk.page.url().toString() == http_server.url("/")


def test_downloads_go_into_the_session_folder_when_allowed(
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
    tmp_path: Path,
) -> None:
    url, body = attachment(http_server)
    folder = tmp_path / "downloads"
    kiosk = make_kiosk(
        browser__start_url=http_server.url("/"), browser__allow_downloads=True, downloads=folder
    )
    js(kiosk, qtbot, "document.getElementById('get').click(); true")
    target = folder / "data.csv"
    qtbot.waitUntil(lambda: target.is_file() and target.read_bytes() == body, timeout=10000)
    assert journal.of("web.download") == [{"url": url, "file": str(target)}]
    assert journal.of("web.download_blocked") == []


# -- toolbar ---------------------------------------------------------------------------


def test_toolbar_shows_clock_time_left_network_and_battery(
    make_kiosk: KioskFactory, http_server: LocalServer
) -> None:
    kiosk = make_kiosk(
        browser__start_url=http_server.page("/", "<p>exam</p>"), kiosk__exam_duration=3600
    )
    labels = kiosk.toolbar.labels
    assert set(labels) == {"clock", "time_remaining", "network", "battery"}
    clock = labels["clock"].text()
    assert re.fullmatch(r"\d\d:\d\d", clock)
    now = time.localtime()
    assert clock in {
        time.strftime("%H:%M", now),
        time.strftime("%H:%M", time.localtime(time.time() - 60)),
    }
    left = labels["time_remaining"].text()
    assert re.fullmatch(text("toolbar.time_remaining", time=r"(1:00:00|59:\d\d)"), left)
    assert labels["network"].text() == text(
        "toolbar.network_up" if network_up() else "toolbar.network_down"
    )
    battery = psutil.sensors_battery()
    if battery is None:  # this machine has none: the indicator stays hidden
        assert labels["battery"].isHidden()
    else:
        assert labels["battery"].isVisibleTo(kiosk.window)
        assert re.fullmatch(r"Battery \d{1,3}%( \(charging\))?", labels["battery"].text())
    assert {"reload", "zoom_in", "zoom_out", "zoom_reset", "quit"} <= set(kiosk.toolbar.buttons)


def test_toolbar_items_are_switched_off_by_the_settings(
    make_kiosk: KioskFactory, http_server: LocalServer
) -> None:
    kiosk = make_kiosk(
        browser__start_url=http_server.page("/", "<p>exam</p>"),
        kiosk__exam_duration=3600,
        kiosk__toolbar__clock=False,
        kiosk__toolbar__time_remaining=False,
        kiosk__toolbar__battery=False,
        kiosk__toolbar__network=False,
        kiosk__toolbar__zoom=False,
        kiosk__toolbar__reload=False,
        kiosk__toolbar__quit=False,
    )
    assert kiosk.toolbar.labels == {}
    assert kiosk.toolbar.buttons == {}
    names = {w.objectName() for w in kiosk.toolbar.findChildren(QLabel)}
    names |= {w.objectName() for w in kiosk.toolbar.findChildren(QPushButton)}
    assert names == {"message"}


def test_time_remaining_is_hidden_without_an_exam_duration(
    make_kiosk: KioskFactory, http_server: LocalServer
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", "<p>exam</p>"))
    assert "time_remaining" not in kiosk.toolbar.labels
    assert "clock" in kiosk.toolbar.labels


def test_zoom_buttons_change_the_page_zoom(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any
) -> None:
    kiosk = make_kiosk(browser__start_url=http_server.page("/", "<p>exam</p>"))
    buttons = kiosk.toolbar.buttons
    width = js(kiosk, qtbot, "window.innerWidth")
    buttons["zoom_in"].click()
    buttons["zoom_in"].click()
    assert kiosk.page.zoomFactor() == pytest.approx(1.2)
    # the page itself sees the zoom: fewer CSS pixels fit the same view
    qtbot.waitUntil(lambda: js(kiosk, qtbot, "window.innerWidth") < width, timeout=5000)
    buttons["zoom_out"].click()
    assert kiosk.page.zoomFactor() == pytest.approx(1.1)
    buttons["zoom_reset"].click()
    assert kiosk.page.zoomFactor() == pytest.approx(1.0)
    qtbot.waitUntil(lambda: js(kiosk, qtbot, "window.innerWidth") == width, timeout=5000)
    for _ in range(3):
        buttons["zoom_out"].click()
    assert kiosk.page.zoomFactor() == pytest.approx(0.7)


@pytest.mark.parametrize("yes", [True, False])
def test_permission_set_to_ask_is_put_to_the_candidate(
    yes: bool,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    page = (
        "<script>function ask() {"
        " Notification.requestPermission().then(r => window.answer = r); return true; }</script>"
    )
    kiosk = make_kiosk(
        browser__start_url=http_server.page("/", page), browser__permission__notifications="ask"
    )
    js(kiosk, qtbot, "ask()")
    boxes: list[QMessageBox] = []

    def asked() -> bool:
        boxes[:] = [b for b in kiosk.window.findChildren(QMessageBox) if b.isVisible()]
        return bool(boxes)

    qtbot.waitUntil(asked, timeout=5000)
    (box,) = boxes
    assert box.text() == text("permission.ask", feature=text("permission.notifications"))
    button = QMessageBox.StandardButton.Yes if yes else QMessageBox.StandardButton.No
    qtbot.mouseClick(box.button(button), Qt.MouseButton.LeftButton)
    expected = "granted" if yes else "denied"
    qtbot.waitUntil(lambda: js(kiosk, qtbot, "window.answer") == expected, timeout=5000)
    assert journal.of("web.permission")[0]["decision"] == "ask"
    assert journal.of("web.permission_answer") == [
        {"feature": "permission.notifications", "granted": yes}
    ]
