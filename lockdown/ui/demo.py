"""``lockdown demo``: the bundled demo exam served on 127.0.0.1, and its scripted journey.

Three local origins play the parts of the exam site, a reference site the exam allows
and a site it blocks. The demo configuration is built here in code (trusted as built
in) and relaxes the machine policies (virtual machine, remote session) to warnings so
the demo runs anywhere. :class:`Journey` drives the kiosk like a candidate would: look
at the start page, answer, follow the allowed link, try the blocked link and a popup,
then hand in through the quit link; a screenshot of the whole screen after each step.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PySide6.QtCore import QTimer, QUrl
from PySide6.QtGui import QGuiApplication

from lockdown import log, resources
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, convert, layer
from lockdown.ui.kiosk import Kiosk


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.web.debug("demo server: " + format, *args)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class _Site:
    def __init__(self, folder: Path) -> None:
        handler = partial(_QuietHandler, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"


class DemoSite:
    """The exam, allowed and blocked sites of the demo, each on its own port."""

    def __init__(self) -> None:
        root = resources.resource_path("demo")
        self._sites = {name: _Site(root / name) for name in ("exam", "allowed", "blocked")}
        # the exam page links to the other two; fill their addresses in at serve time
        self.exam_url = self._sites["exam"].url
        self.allowed_url = self._sites["allowed"].url
        self.blocked_url = self._sites["blocked"].url
        template = (root / "exam" / "index.template.html").read_text(encoding="utf-8")
        page = template.replace("__ALLOWED__", self.allowed_url).replace(
            "__BLOCKED__", self.blocked_url
        )
        self._index = page.encode("utf-8")
        site = self

        class ExamHandler(_QuietHandler):
            def do_GET(self) -> None:
                if self.path in ("/", "/index.html"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(site._index)))
                    self.end_headers()
                    self.wfile.write(site._index)
                    return
                super().do_GET()

        exam = self._sites["exam"]
        exam.httpd.RequestHandlerClass = partial(ExamHandler, directory=str(root / "exam"))

    def start(self) -> DemoSite:
        for site in self._sites.values():
            site.thread.start()
        log.init.info(
            "Demo sites: exam %s, allowed %s, blocked %s",
            self.exam_url,
            self.allowed_url,
            self.blocked_url,
        )
        return self

    def stop(self) -> None:
        for site in self._sites.values():
            site.httpd.shutdown()
            site.httpd.server_close()


def demo_values(site: DemoSite) -> dict[str, Any]:
    """The demo's exam configuration (validated like any other)."""
    raw: dict[str, Any] = {
        "browser.start_url": site.exam_url + "/",
        "browser.url_rules": [
            {"action": "allow", "expression": site.allowed_url + "/*"},
        ],
        "browser.new_window_policy": "block",
        "quit.url": site.exam_url + "/done.html",
        "kiosk.exam_duration": "30m",
        "guards.virtual_machine": "warn",
        "guards.remote_session": "warn",
        "guards.unavailable": "continue",
        # record-and-review proctoring with the generated camera pattern (no camera is
        # needed) and the screen; the microphone only where the exam says so
        "proctoring.camera": True,
        "proctoring.camera_source": "pattern",
        "proctoring.screen": True,
        "proctoring.segment_length": "10s",
    }
    return {key: convert(key, value, origin="demo configuration") for key, value in raw.items()}


def demo_exam(site: DemoSite, *, recipient_key: str = "") -> LoadedExam:
    """The demo exam; its recording is sealed for ``recipient_key`` (the demo's own)."""
    from lockdown.config import examkeys

    values = demo_values(site)
    organisation = Organisation(values={"proctoring.recipient_key": recipient_key})
    settings = layer(organisation, values)
    keys = examkeys.keys_for_values(values, settings, examkeys.ISOLATION_MODES[0])
    return LoadedExam(settings, keys, "demo", "Demo exam", "lockdown", organisation, demo=True)


@dataclass
class Step:
    name: str
    action: Callable[[], None]
    done: Callable[[], bool]
    screenshot: str | None
    timeout_s: float = 15.0


class Journey:
    """Drives the demo kiosk through the candidate's journey, with screenshots."""

    SETTLE_S = 1.0

    def __init__(self, site: DemoSite, folder: Path) -> None:
        self.site = site
        self.folder = folder
        self.shots: list[Path] = []
        self._kiosk: Kiosk | None = None
        self._steps: list[Step] = []
        self._index = -1
        self._deadline = 0.0
        self._done_at: float | None = None
        self._loaded: set[str] = set()
        self._timer = QTimer()
        self._timer.timeout.connect(self._poll)

    def attach(self, kiosk: Kiosk) -> None:
        self._kiosk = kiosk
        kiosk.pageLoaded.connect(self._page_loaded)
        kiosk.ended.connect(lambda _reason: self._timer.stop())
        k = kiosk
        exam = self.site.exam_url + "/"

        def js(code: str) -> Callable[[], None]:
            return lambda: k.page.runJavaScript(code, 0)

        def loaded(url: str) -> Callable[[], bool]:
            return lambda: url in self._loaded and k.window.stack.currentWidget() is k.view

        def blocked() -> bool:
            return k.window.stack.currentWidget() is k.notice

        def back_to_exam() -> None:
            self._loaded.discard(exam)
            k.back()
            k.page.load(QUrl(exam))

        def back_from_notice() -> None:
            k.back()

        answer = (
            "document.getElementById('q1-b').checked = true;"
            "document.getElementById('q2-a').checked = true;"
            "document.getElementById('q2-c').checked = true;"
            "document.getElementById('q3').value = 'Photosynthesis';"
            "document.getElementById('q4').value = '9.81';"
            "document.getElementById('q5').value = 'Water boils at a lower temperature "
            "at altitude because the air pressure is lower.';"
            "window.scrollTo(0, 120); true"
        )
        self._steps = [
            Step("start page", lambda: None, loaded(exam), "01-start-page.png"),
            Step("answer", js(answer), lambda: True, "02-answers.png"),
            Step(
                "allowed link",
                js("document.getElementById('link-allowed').click()"),
                loaded(self.site.allowed_url + "/"),
                "03-allowed-site.png",
            ),
            Step("back", back_to_exam, loaded(exam), None),
            Step(
                "blocked link",
                js("document.getElementById('link-blocked').click()"),
                blocked,
                "04-blocked-site.png",
            ),
            Step("back", back_from_notice, lambda: not blocked(), None),
            Step(
                "popup",
                js("document.getElementById('popup').click()"),
                blocked,
                "05-popup-blocked.png",
            ),
            Step("back", back_from_notice, lambda: not blocked(), None),
            Step(
                "toolbar and links",
                js("document.getElementById('finish').scrollIntoView(); true"),
                lambda: True,
                "06-hand-in.png",
            ),
            Step(
                "quit link",
                js("document.getElementById('finish').click()"),
                lambda: k.has_ended,
                None,
            ),
        ]
        self._timer.start(100)

    def _page_loaded(self, ok: bool, url: str) -> None:
        if ok:
            self._loaded.add(url)

    def _poll(self) -> None:
        kiosk = self._kiosk
        if kiosk is None or (kiosk.has_ended and self._index >= len(self._steps) - 1):
            self._timer.stop()
            return
        now = time.monotonic()
        if self._index >= 0:
            step = self._steps[self._index]
            if self._done_at is None:
                if step.done():
                    self._done_at = now
                elif now > self._deadline:
                    log.init.warning("Demo step %r did not finish in time", step.name)
                    self._done_at = now
                else:
                    return
            if step.screenshot and now - self._done_at < self.SETTLE_S:
                return
            if step.screenshot:
                self._shoot(step.screenshot)
        self._index += 1
        if self._index >= len(self._steps):
            self._timer.stop()
            if not kiosk.has_ended:
                kiosk.end("demo finished")
            return
        step = self._steps[self._index]
        log.init.info("Demo: %s", step.name)
        self._done_at = None
        self._deadline = now + step.timeout_s
        step.action()

    def _shoot(self, name: str) -> None:
        screen = QGuiApplication.primaryScreen()
        path = self.folder / name
        if screen.grabWindow(0).save(str(path)):
            self.shots.append(path)
            log.init.info("Demo screenshot %s", path)
        else:
            log.init.warning("Could not save the screenshot %s", path)
