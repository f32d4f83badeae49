"""PRIMARY never carries exam text to another client: a sniffer that converts PRIMARY on
every XFixes selection-owner change, against a real QtWebEngine page."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest
from PySide6.QtCore import QPoint
from PySide6.QtWebEngineCore import QWebEnginePage
from PySide6.QtWebEngineWidgets import QWebEngineView  # before the QApplication exists
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, convert, layer
from lockdown.guards.clipboard import ClipboardGuard
from lockdown.platform.linux import X11Platform
from tests.support.httpserver import LocalServer
from tests.support.xclients import PRIMARY_SNIFFER, private_xdotool

pytestmark = [pytest.mark.x11, pytest.mark.webengine]

SELECTIONS = 20
PAGE = (
    "<!doctype html><html><body style='margin:0'>"
    + "".join(
        f'<p style="margin:0;font:16px/24px sans-serif">question {i} '
        f'<span id="s{i}">secret{i}</span> text</p>'
        for i in range(SELECTIONS)
    )
    + "</body></html>"
)


class Sniffer:
    """The sniffer as a process of its own; its lines collected by a reader thread."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", PRIMARY_SNIFFER],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def answers(self) -> list[str]:
        return [x for x in list(self.lines) if x.startswith(("text", "refused"))]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _settings(policy: str) -> Any:
    return layer(
        Organisation(), {"guards.clipboard": convert("guards.clipboard", policy, origin="test")}
    )


def _js(qtbot: QtBot, page: QWebEnginePage, code: str) -> Any:
    box: list[Any] = []
    page.runJavaScript(code, 0, box.append)
    qtbot.waitUntil(lambda: bool(box), timeout=5000)
    return box[0]


def _select_each(qtbot: QtBot, view: QWebEngineView, sniffer: Sniffer) -> None:
    """Double-click a word of each question in turn (the mouse, as a candidate selects);
    wait until the sniffer has asked for PRIMARY each time."""
    tool = private_xdotool()
    for i in range(SELECTIONS):
        seen = len(sniffer.answers())
        rect = _js(
            qtbot,
            view.page(),
            f"(r => JSON.stringify([r.x + r.width / 2, r.y + r.height / 2]))"
            f"(document.getElementById('s{i}').getBoundingClientRect())",
        )
        x, y = json.loads(rect)
        at = view.mapToGlobal(QPoint(int(x), int(y)))
        subprocess.run(
            [tool, "mousemove", str(at.x()), str(at.y()), "click", "--repeat", "2", "1"],
            check=True,
            timeout=10,
        )
        qtbot.waitUntil(lambda seen=seen: len(sniffer.answers()) > seen, timeout=5000)


def _run(qtbot: QtBot, platform: X11Platform, http_server: LocalServer, policy: str) -> list[str]:
    view = QWebEngineView()
    qtbot.addWidget(view)
    view.setGeometry(0, 0, 600, 600)
    view.show()
    with qtbot.waitSignal(view.loadFinished, timeout=20000):
        view.load(http_server.page("/questions", PAGE))
    guard = ClipboardGuard(_settings(policy), view, platform)
    guard.start(lambda event: None)
    sniffer = Sniffer()
    try:
        qtbot.waitUntil(lambda: "ready" in sniffer.lines, timeout=10000)
        _select_each(qtbot, view, sniffer)
        return sniffer.answers()
    finally:
        sniffer.stop()
        guard.stop()
        view.close()
        view.deleteLater()


def test_a_primary_sniffer_gets_no_exam_text_across_20_selections(
    qtbot: QtBot, platform: X11Platform, http_server: LocalServer
) -> None:
    answers = _run(qtbot, platform, http_server, "isolated")
    assert len(answers) >= SELECTIONS
    assert not [a for a in answers if "secret" in a], answers


def test_without_the_guard_the_sniffer_reads_every_selection(
    qtbot: QtBot, platform: X11Platform, http_server: LocalServer
) -> None:
    # the positive control: the same sniffer, the clipboard guard's policy "allow"
    answers = _run(qtbot, platform, http_server, "allow")
    got = [a for a in answers if "secret" in a]
    assert len(got) >= SELECTIONS, answers
