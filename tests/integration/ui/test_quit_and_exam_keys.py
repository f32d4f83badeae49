"""Quit URL and quit password end the exam; the Safe Exam Browser headers and JS API."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from lockdown.config.examkeys import ExamKeys
from lockdown.events import Event
from lockdown.lifecycle.operations import KioskOperation
from lockdown.lifecycle.sequence import OperationSequence
from lockdown.ui.quitrules import password_hash
from tests.integration.ui.conftest import KioskFactory, Recorder
from tests.support.httpserver import LocalServer

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

CONFIG_KEY = "6063c3351ed1ac878c05072598d5079e30ca763c957d8e04bd45131c08f88d1a"
EXAM_KEY = "787c3f3d7211ff09ad5ba6a62f67b6a2092eb3080b5b5d29d578f3a3d901cbae"


def sha256hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def Keys() -> ExamKeys:
    return ExamKeys(CONFIG_KEY, EXAM_KEY)


def test_quit_url_ends_the_exam_and_reverting_closes_the_kiosk(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    http_server.page("/", '<a id="done" href="/done">hand in</a>')
    kiosk = make_kiosk(
        browser__start_url=http_server.url("/"), quit__url=http_server.url("/done"), start=False
    )
    sequence = OperationSequence([KioskOperation(kiosk, journal)])
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=20000):
        sequence.perform()
    with qtbot.waitSignal(kiosk.ended, timeout=10000) as ended:
        kiosk.page.runJavaScript("document.getElementById('done').click()", 0)
    assert ended.args == ["quit_url"]
    assert journal.urls("kiosk.quit_url") == [http_server.url("/done")]
    sequence.revert()
    assert not kiosk.window.isVisible()
    assert [e.type for e in journal.events][-2:] == ["kiosk.ended", "kiosk.closed"]


def test_quit_password_wrong_attempts_are_journalled_and_slowed_then_right_one_ends(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    http_server.page("/", "<p>exam</p>")
    kiosk = make_kiosk(
        browser__start_url=http_server.url("/"), quit__password_hash=password_hash("s3cret")
    )
    kiosk.toolbar.buttons["quit"].click()
    dialog = kiosk.quit_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.password.setText("wrong")
    dialog.ok.click()
    assert journal.of("kiosk.quit_password_wrong") == [{"attempt": 1, "delay_s": 1.0}]
    assert dialog.locked and not dialog.ok.isEnabled()
    dialog.submit()  # ignored while locked
    assert dialog.wrong_attempts == 1
    qtbot.waitUntil(dialog.ok.isEnabled, timeout=5000)
    dialog.password.setText("wrong again")
    dialog.ok.click()
    assert journal.of("kiosk.quit_password_wrong")[-1] == {"attempt": 2, "delay_s": 2.0}
    assert not kiosk.has_ended
    qtbot.waitUntil(dialog.ok.isEnabled, timeout=5000)
    dialog.password.setText("s3cret")
    with qtbot.waitSignal(kiosk.ended, timeout=5000) as ended:
        dialog.ok.click()
    assert ended.args == ["quit_password"]
    assert Event("kiosk.quit_password_ok", {}) in journal.events


def test_without_allow_quit_there_is_no_quit_button(
    make_kiosk: KioskFactory, http_server: LocalServer
) -> None:
    http_server.page("/", "<p>exam</p>")
    kiosk = make_kiosk(browser__start_url=http_server.url("/"), quit__allow=False)
    assert "quit" not in kiosk.toolbar.buttons
    kiosk.ask_quit()
    assert kiosk.quit_dialog is None


def test_server_receives_the_exam_key_headers_for_each_url(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any
) -> None:
    http_server.page("/", '<script src="/app.js?v=1"></script><p>exam</p>')
    http_server.page("/app.js", "var loaded = true;", content_type="text/javascript")
    start = http_server.url("/")
    make_kiosk(
        keys=Keys(), browser__start_url=start + "#intro", browser__send_browser_exam_key=True
    )
    qtbot.waitUntil(lambda: bool(http_server.seen("/app.js")), timeout=10000)
    for path, url in (("/", start), ("/app.js", http_server.url("/app.js?v=1"))):
        headers = http_server.seen(path)[0].headers
        assert headers["X-SafeExamBrowser-ConfigKeyHash"] == sha256hex(url + CONFIG_KEY)
        assert headers["X-SafeExamBrowser-RequestHash"] == sha256hex(url + EXAM_KEY)


def test_no_exam_key_headers_unless_asked(
    make_kiosk: KioskFactory, http_server: LocalServer
) -> None:
    http_server.page("/", "<p>exam</p>")
    make_kiosk(keys=Keys(), browser__start_url=http_server.url("/"))
    assert "X-SafeExamBrowser-RequestHash" not in http_server.seen("/")[0].headers


def test_page_sees_safe_exam_browser_values_for_its_url(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any
) -> None:
    http_server.page("/", "<p>exam</p>")
    start = http_server.url("/")
    kiosk = make_kiosk(keys=Keys(), browser__start_url=start, browser__send_browser_exam_key=True)
    values: list[Any] = []
    kiosk.page.runJavaScript(
        "JSON.stringify([SafeExamBrowser.version, SafeExamBrowser.security.configKey,"
        " SafeExamBrowser.security.browserExamKey])",
        0,
        values.append,
    )
    qtbot.waitUntil(lambda: bool(values), timeout=5000)
    version, config_hash, exam_hash = json.loads(values[0])
    assert version.startswith("Lockdown_")
    assert config_hash == sha256hex(start + CONFIG_KEY)
    assert exam_hash == sha256hex(start + EXAM_KEY)
    # after a same-document navigation, updateKeys brings the hashes of the new URL
    kiosk.page.runJavaScript(
        "history.pushState({}, '', '/page/2'); window.__done = false;"
        "SafeExamBrowser.security.updateKeys(() => { window.__done = true; }); true",
        0,
    )
    moved = http_server.url("/page/2")
    after: list[Any] = []

    def updated() -> bool:
        kiosk.page.runJavaScript(
            "window.__done && SafeExamBrowser.security.configKey", 0, after.append
        )
        return bool(after) and after[-1] == sha256hex(moved + CONFIG_KEY)

    qtbot.waitUntil(updated, timeout=5000)


def test_each_page_gets_the_hashes_of_its_own_url(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any
) -> None:
    http_server.page("/", '<a id="next" href="/next?q=1">next</a>')
    http_server.page("/next", "<p>next</p>")
    kiosk = make_kiosk(
        keys=Keys(), browser__start_url=http_server.url("/"), browser__send_browser_exam_key=True
    )
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=10000):
        kiosk.page.runJavaScript("document.getElementById('next').click()", 0)
    values: list[Any] = []
    kiosk.page.runJavaScript(
        "String(window.SafeExamBrowser && SafeExamBrowser.security.browserExamKey)",
        0,
        values.append,
    )
    qtbot.waitUntil(lambda: bool(values), timeout=5000)
    assert values == [sha256hex(http_server.url("/next?q=1") + EXAM_KEY)]


def test_update_keys_answers_only_for_the_current_url(
    make_kiosk: KioskFactory, http_server: LocalServer, qtbot: Any
) -> None:
    """A page writing the bridge message itself cannot learn the hashes of another URL."""
    http_server.page("/", "<p>exam</p>")
    start = http_server.url("/")
    kiosk = make_kiosk(keys=Keys(), browser__start_url=start, browser__send_browser_exam_key=True)
    other = http_server.url("/admin/grades")
    kiosk.page.runJavaScript(
        "window.__done = false; const log = console.log.bind(console);"
        f"console.log = (m) => log(String(m).replace(location.href, '{other}'));"
        "SafeExamBrowser.security.updateKeys(() => { window.__done = true; }); true",
        0,
    )
    seen: list[Any] = []

    def answered() -> bool:
        kiosk.page.runJavaScript(
            "window.__done && SafeExamBrowser.security.configKey", 0, seen.append
        )
        return bool(seen) and bool(seen[-1])

    qtbot.waitUntil(answered, timeout=5000)
    assert seen[-1] == sha256hex(start + CONFIG_KEY)
    assert seen[-1] != sha256hex(other + CONFIG_KEY)
