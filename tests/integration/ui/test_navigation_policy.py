"""Every way of reaching a blocked URL is blocked and journalled; allowed URLs load."""

from __future__ import annotations

from typing import Any

import pytest

from lockdown.ui.kiosk import Kiosk
from tests.integration.ui.conftest import KioskFactory, Recorder
from tests.support.httpserver import LocalServer, Response

pytestmark = [pytest.mark.x11, pytest.mark.webengine]


def exam_page(other: LocalServer) -> str:
    b = other.url("")
    return f"""<html><head><title>Exam</title></head><body>
<a id="blocked" href="{b}/secret">blocked</a>
<a id="allowed" href="{b}/allowed/page">allowed</a>
<a id="blank" href="{b}/secret-blank" target="_blank">new window</a>
<a id="blank-ok" href="/second" target="_blank">new window, same site</a>
<a id="js" href="javascript:document.body.innerHTML='hijacked'">js</a>
<a id="data" href="data:text/html,<h1>data</h1>">data</a>
<a id="file" href="file:///etc/passwd">file</a>
<form id="post" method="post" action="{b}/collect"><input name="answer" value="42"></form>
</body></html>"""


@pytest.fixture
def exam(make_kiosk: KioskFactory, http_server: LocalServer, other_server: LocalServer) -> Kiosk:
    http_server.page("/", exam_page(other_server))
    http_server.page("/second", "<title>Second</title><p>second page</p>")
    http_server.routes["/redirect"] = Response(
        302, headers={"Location": other_server.url("/secret")}
    )
    other_server.page("/allowed/page", "<title>Allowed</title><p>allowed</p>")
    other_server.page("/secret", "<title>Secret</title>")
    allow = {"action": "allow", "expression": other_server.url("/allowed/*")}
    return make_kiosk(
        browser__start_url=http_server.url("/"),
        browser__url_rules=[allow],
        browser__new_window_policy="block",
    )


def run(kiosk: Kiosk, qtbot: Any, script: str) -> None:
    done: list[object] = []
    kiosk.page.runJavaScript(script, 0, done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)


def click(kiosk: Kiosk, qtbot: Any, element_id: str) -> None:
    run(kiosk, qtbot, f"document.getElementById('{element_id}').click(); true")


def wait_blocked(journal: Recorder, qtbot: Any, kind: str, url: str) -> dict[str, Any]:
    qtbot.waitUntil(lambda: url in journal.urls(kind), timeout=10000)
    return next(p for p in journal.of(kind) if p["url"] == url)


def shows_blocked_page(kiosk: Kiosk, url: str) -> bool:
    return (
        kiosk.window.stack.currentWidget() is kiosk.notice
        and kiosk.notice.kind == "blocked"
        and kiosk.notice.address.text() == url
    )


def test_blocked_link_shows_the_blocked_page_and_back_returns(
    exam: Kiosk, other_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    target = other_server.url("/secret")
    click(exam, qtbot, "blocked")
    event = wait_blocked(journal, qtbot, "web.navigation_blocked", target)
    assert event["how"] == "link"
    assert event["reason"] == "no allow rule"
    assert shows_blocked_page(exam, target)
    assert other_server.seen("/secret") == []
    exam.notice.button.click()
    assert exam.window.stack.currentWidget() is exam.view
    assert exam.page.url().toString().endswith("/")


def test_allowed_link_loads(exam: Kiosk, other_server: LocalServer, qtbot: Any) -> None:
    with qtbot.waitSignal(exam.pageLoaded, timeout=10000) as loaded:
        click(exam, qtbot, "allowed")
    assert loaded.args == [True, other_server.url("/allowed/page")]
    assert len(other_server.seen("/allowed/page")) == 1


def test_redirect_to_a_blocked_site_is_blocked(
    exam: Kiosk, http_server: LocalServer, other_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    run(exam, qtbot, "location.href = '/redirect'; true")
    target = other_server.url("/secret")
    event = wait_blocked(journal, qtbot, "web.navigation_blocked", target)
    assert event["how"] == "redirect"
    assert shows_blocked_page(exam, target)
    assert other_server.seen("/secret") == []


def test_sub_frames_and_sub_resources_are_blocked(
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    other_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    frame, image = other_server.url("/frame"), other_server.url("/image.png")
    script = other_server.url("/script.js")
    http_server.page(
        "/",
        f'<iframe src="{frame}"></iframe><img src="{image}"><script src="{script}"></script>',
    )
    make_kiosk(browser__start_url=http_server.url("/"))
    assert wait_blocked(journal, qtbot, "web.request_blocked", frame)["how"] == "sub_frame"
    assert wait_blocked(journal, qtbot, "web.request_blocked", image)["how"] == "sub_resource"
    assert wait_blocked(journal, qtbot, "web.request_blocked", script)["how"] == "sub_resource"
    assert other_server.requests == []


def test_form_post_to_a_blocked_site_is_blocked(
    exam: Kiosk, other_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    run(exam, qtbot, "document.getElementById('post').submit(); true")
    target = other_server.url("/collect")
    assert wait_blocked(journal, qtbot, "web.navigation_blocked", target)["how"] == "form"
    assert other_server.seen("/collect") == []


@pytest.mark.parametrize("how", ["window.open", "target=_blank"])
def test_popup_is_blocked_by_the_block_policy(
    exam: Kiosk, other_server: LocalServer, journal: Recorder, qtbot: Any, how: str
) -> None:
    if how == "window.open":
        target = other_server.url("/popup")
        run(exam, qtbot, f"window.open('{target}'); true")
    else:
        target = other_server.url("/secret-blank")
        click(exam, qtbot, "blank")
    event = wait_blocked(journal, qtbot, "web.navigation_blocked", target)
    assert event["how"] == "popup"
    assert shows_blocked_page(exam, target)
    assert other_server.requests == []
    assert journal.of("web.popup")[0]["policy"] == "block"


def test_same_window_policy_opens_allowed_popups_in_the_exam_window(
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    other_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    http_server.page("/", exam_page(other_server))
    http_server.page("/second", "<title>Second</title>")
    kiosk = make_kiosk(browser__start_url=http_server.url("/"))
    with qtbot.waitSignal(kiosk.pageLoaded, timeout=10000) as loaded:
        click(kiosk, qtbot, "blank-ok")
    assert loaded.args == [True, http_server.url("/second")]
    # a popup to a blocked site is still filtered in the same window
    target = other_server.url("/secret-blank")
    run(kiosk, qtbot, f"window.open('{target}'); true")
    assert wait_blocked(journal, qtbot, "web.navigation_blocked", target)
    assert other_server.requests == []


@pytest.mark.parametrize(
    ("element", "url"),
    [
        ("js", "javascript:document.body.innerHTML='hijacked'"),
        ("data", "data:text/html,<h1>data</h1>"),
        ("file", "file:///etc/passwd"),
    ],
)
def test_special_scheme_links_are_blocked(
    exam: Kiosk, journal: Recorder, qtbot: Any, element: str, url: str
) -> None:
    click(exam, qtbot, element)
    event = wait_blocked(journal, qtbot, "web.navigation_blocked", url)
    assert event["how"] == "scheme"
    assert shows_blocked_page(exam, url)
    text: list[object] = []
    exam.page.runJavaScript("document.getElementById('blocked') !== null", 0, text.append)
    qtbot.waitUntil(lambda: bool(text), timeout=5000)
    assert text == [True]  # the page was not replaced


def test_blob_navigation_is_blocked(exam: Kiosk, journal: Recorder, qtbot: Any) -> None:
    run(
        exam,
        qtbot,
        "location.href = URL.createObjectURL(new Blob(['<p>x</p>'], {type: 'text/html'})); true",
    )
    qtbot.waitUntil(
        lambda: any(u.startswith("blob:") for u in journal.urls("web.navigation_blocked")),
        timeout=10000,
    )
    assert exam.page.url().toString().startswith("http://")


def test_view_source_is_blocked(exam: Kiosk, journal: Recorder, qtbot: Any) -> None:
    target = exam.page.url().toString()
    run(exam, qtbot, f"location.href = 'view-source:{target}'; true")
    wait_blocked(journal, qtbot, "web.navigation_blocked", f"view-source:{target}")
