"""The screen recorder under the session's Xvfb, with a QtWebEngine page on the screen."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from lockdown.capture.base import Segment, State, Stream
from lockdown.capture.recorders import ScreenRecorder
from lockdown.events import Event
from tests.integration.capture.media import video_frames
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]

GREEN = (40, 170, 90)  # RGB of the first page
PURPLE = (150, 40, 160)  # RGB after the page changes
PAGE = """<!doctype html><html><body style="margin:0;background:rgb(40,170,90)">
<h1 style="font:bold 80px sans-serif;color:white;margin:40px">Exam page</h1></body></html>"""


def _close(pixel: np.ndarray[Any, Any], rgb: tuple[int, int, int]) -> bool:
    b, g, r = (int(v) for v in pixel)
    return abs(r - rgb[0]) < 25 and abs(g - rgb[1]) < 25 and abs(b - rgb[2]) < 25


def test_screen_segments_show_the_page_and_its_change(xserver: Xvfb, qtbot: Any) -> None:
    from PySide6.QtWebEngineWidgets import QWebEngineView

    view = QWebEngineView()
    qtbot.addWidget(view)
    view.setGeometry(0, 0, xserver.width, xserver.height)
    loaded: list[bool] = []
    view.loadFinished.connect(loaded.append)
    view.setHtml(PAGE)
    view.show()
    qtbot.waitUntil(lambda: loaded == [True], timeout=20000)

    def centre_shows(rgb: tuple[int, int, int]) -> bool:
        image = view.grab().toImage()
        colour = image.pixelColor(image.width() // 2, image.height() - 40)
        return _close(np.array([colour.blue(), colour.green(), colour.red()]), rgb)

    qtbot.waitUntil(lambda: centre_shows(GREEN), timeout=10000)

    events: list[Event] = []
    segments: list[Segment] = []
    recorder = ScreenRecorder(
        max_width=640, fps=1.0, activity_fps=4.0, report=events.append, segment_length=3.0
    )
    recorder.start(segments.append)
    try:
        qtbot.waitUntil(lambda: recorder.health().state is State.RUNNING, timeout=5000)
        started = time.monotonic()
        qtbot.waitUntil(lambda: time.monotonic() - started > 1.2, timeout=5000)
        view.page().runJavaScript("document.body.style.background = 'rgb(150,40,160)'; 1")
        qtbot.waitUntil(lambda: centre_shows(PURPLE), timeout=5000)
        qtbot.waitUntil(lambda: len(segments) >= 1, timeout=8000)
    finally:
        recorder.stop()

    assert recorder.backend.startswith("screen primary 1280x800")
    first = segments[0]
    assert first.stream is Stream.SCREEN
    frames = video_frames(first.data)
    assert len(frames) == first.units
    assert frames[0].shape == (400, 640, 3)  # 1280x800 scaled to the maximum width
    # The page is on the recorded frames: green first, purple after the change.
    probe = (380, 320)
    green = [i for i, f in enumerate(frames) if _close(f[probe], GREEN)]
    purple = [i for i, f in enumerate(frames) if _close(f[probe], PURPLE)]
    assert green and purple, [tuple(f[probe]) for f in frames]
    assert max(green) < min(purple)
    assert purple[-1] == len(frames) - 1
    # The change brought an activity frame on top of the 1 frame per second.
    assert first.units >= round(first.duration) + 1
    assert first.duration == pytest.approx(3.0, abs=0.3)
