"""Trust boundary II in the real kiosk: every ``javascript:`` form is stopped and journalled,
``window.open("data:…")`` is journalled, and a glob rule matches the host.

Each attack has its positive control here: the same page with the protection switched off
by a development switch (``LOCKDOWN_DEV_SCRIPT_URLS=allow``, ``LOCKDOWN_DEV_URL_GLOB=whole-url``)
does run the script or reach the blocked server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lockdown import build
from lockdown.ui.kiosk import Kiosk
from tests.integration.ui.conftest import KioskFactory, Recorder
from tests.support.httpserver import LocalServer

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

#: Each form of javascript: URL reports to /ran?form=<name> when its script runs.
SCRIPT_FORMS = {
    "tab": '<a id="tab" href="java&#9;script:fetch(\'/ran?form=tab\')">tab</a>',
    "newline": '<a id="newline" href=" JAVA&#10;SCRIPT:fetch(\'/ran?form=newline\')">nl</a>',
    "svg": '<svg width="60" height="30"><a id="svg" href="javascript:fetch(\'/ran?form=svg\')">'
    '<text y="20">svg</text></a></svg>',
    "form": '<form id="form" action="javascript:fetch(\'/ran?form=form\')">'
    '<button id="submit">send</button></form>',
    "synthetic": '<a id="synthetic" href="javascript:fetch(\'/ran?form=synthetic\')">s</a>',
    "iframe": "<iframe src=\"javascript:parent.fetch('/ran?form=iframe')\"></iframe>",
}
#: the SVG and "synthetic" links get a script's own click, which is not cancellable
CLICKS = """
for (const id of ['tab', 'newline', 'submit']) document.getElementById(id).click();
for (const id of ['svg', 'synthetic'])
  document.getElementById(id).dispatchEvent(new MouseEvent('click', {bubbles: true}));
true
"""


@pytest.fixture
def dev_build(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Development switches are read from a development build: make sure this is one."""
    monkeypatch.delenv("LOCKDOWN_AS_INSTALLED", raising=False)
    build.current.cache_clear()
    assert not build.current().installed
    yield monkeypatch
    build.current.cache_clear()


def run(kiosk: Kiosk, qtbot: Any, script: str) -> None:
    done: list[object] = []
    kiosk.page.runJavaScript(script, 0, done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)


def script_page(make_kiosk: KioskFactory, http_server: LocalServer) -> Kiosk:
    http_server.page("/", "<p>exam</p>" + "".join(SCRIPT_FORMS.values()))
    http_server.page("/ran", "ran")
    return make_kiosk(browser__start_url=http_server.url("/"))


def ran(http_server: LocalServer) -> set[str]:
    return {r.path.split("=", 1)[1] for r in http_server.seen("/ran")}


def test_every_javascript_form_runs_with_the_guard_switched_off(
    dev_build: pytest.MonkeyPatch,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    """Control: with LOCKDOWN_DEV_SCRIPT_URLS=allow each form runs its script."""
    dev_build.setenv("LOCKDOWN_DEV_SCRIPT_URLS", "allow")
    kiosk = script_page(make_kiosk, http_server)
    run(kiosk, qtbot, CLICKS)
    qtbot.waitUntil(lambda: ran(http_server) == set(SCRIPT_FORMS), timeout=10000)
    assert {"name": "LOCKDOWN_DEV_SCRIPT_URLS", "value": "allow"} in journal.of("kiosk.dev_switch")


def test_every_javascript_form_is_stopped_and_journalled(
    dev_build: pytest.MonkeyPatch,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    kiosk = script_page(make_kiosk, http_server)
    run(kiosk, qtbot, CLICKS)

    def journalled() -> dict[str, str]:
        events = journal.of("web.navigation_blocked") + journal.of("web.request_blocked")
        return {
            e["url"].split("form=", 1)[1].split("%27", 1)[0]: e["how"]
            for e in events
            if e["url"].startswith("javascript:")
        }

    qtbot.waitUntil(lambda: set(journalled()) == set(SCRIPT_FORMS), timeout=10000)
    assert journalled() == {
        "tab": "scheme",
        "newline": "scheme",
        "svg": "scheme",
        "synthetic": "scheme",
        "form": "form_scheme",
        "iframe": "sub_frame",
    }
    qtbot.wait(500)
    assert ran(http_server) == set()
    assert journal.of("kiosk.dev_switch") == []


def test_window_open_of_a_data_url_is_journalled(
    make_kiosk: KioskFactory, http_server: LocalServer, journal: Recorder, qtbot: Any
) -> None:
    http_server.page("/", "<p>exam</p>")
    kiosk = make_kiosk(browser__start_url=http_server.url("/"))
    run(kiosk, qtbot, "window.open('data:text/html,<p>cheat</p>'); true")
    qtbot.waitUntil(
        lambda: "data:text/html,<p>cheat</p>" in journal.urls("web.popup"), timeout=10000
    )
    blocked = journal.urls("web.navigation_blocked")
    assert any(url.startswith("data:text/html,") for url in blocked)


@pytest.mark.parametrize("matching", ["whole-url", "parts"])
def test_a_glob_rule_matches_the_host_not_a_text_in_the_query(
    matching: str,
    dev_build: pytest.MonkeyPatch,
    make_kiosk: KioskFactory,
    http_server: LocalServer,
    other_server: LocalServer,
    journal: Recorder,
    qtbot: Any,
) -> None:
    """``*.wikipedia.org`` let ``http://other/cheat?x=.wikipedia.org`` through (the control)."""
    if matching == "whole-url":
        dev_build.setenv("LOCKDOWN_DEV_URL_GLOB", "whole-url")
    cheat = other_server.page("/cheat", "<title>cheat</title>") + "?x=.wikipedia.org"
    http_server.page("/", f'<a id="cheat" href="{cheat}">wiki</a>')
    kiosk = make_kiosk(
        browser__start_url=http_server.url("/"),
        browser__url_rules=[{"action": "allow", "expression": "*.wikipedia.org"}],
    )
    run(kiosk, qtbot, "document.getElementById('cheat').click(); true")
    if matching == "whole-url":
        qtbot.waitUntil(lambda: bool(other_server.seen("/cheat")), timeout=10000)
    else:
        qtbot.waitUntil(lambda: cheat in journal.urls("web.navigation_blocked"), timeout=10000)
        assert other_server.requests == []
