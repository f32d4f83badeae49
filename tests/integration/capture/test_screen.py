"""The screen recorder under the session's Xvfb, with a QtWebEngine page on the screen."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from lockdown.capture.base import Segment, State, Stream
from lockdown.capture.recorders import ScreenRecorder
from lockdown.capture.sources import ScreenSource
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


def test_the_primary_screen_or_all_screens_are_recorded(
    fresh_xserver: Xvfb, monkeypatch: pytest.MonkeyPatch
) -> None:
    from Xlib import X, display

    # Two screens side by side on one 1280x800 X screen; the right one is primary. The
    # left shows the root window's colour, the right a window of another colour.
    fresh_xserver.run("xrandr", "--setmonitor", "LEFT", "640/170x800/212+0+0", "screen")
    fresh_xserver.run("xrandr", "--setmonitor", "*RIGHT", "640/170x800/212+640+0", "none")
    fresh_xserver.run("xsetroot", "-solid", "#2860a0")  # left: blue
    conn = display.Display(fresh_xserver.display)
    try:
        screen = conn.screen()
        colour = screen.default_colormap.alloc_color(0xF000, 0xA000, 0x2000).pixel  # orange
        window = screen.root.create_window(
            640, 0, 640, 800, 0, screen.root_depth, X.InputOutput, background_pixel=colour
        )
        window.change_attributes(override_redirect=True)
        window.map()
        conn.sync()
        monkeypatch.setenv("DISPLAY", fresh_xserver.display)
        shots = {}
        for area in ("primary", "all"):
            source = ScreenSource(area, max_width=4000)
            try:
                deadline = time.monotonic() + 5
                while True:
                    shot = source.scale(source.grab())
                    if _close(shot[400, -10, :3], (240, 160, 32)) or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            finally:
                source.close()
            shots[area] = (source.width, source.height, source.description, shot)
    finally:
        conn.close()

    width, height, description, shot = shots["primary"]
    assert (width, height) == (640, 800)
    assert "primary 640x800" in description
    assert _close(shot[400, 10, :3], (240, 160, 32)) and _close(shot[400, 630, :3], (240, 160, 32))
    width, height, description, shot = shots["all"]
    assert (width, height) == (1280, 800)
    assert "all 1280x800" in description
    assert _close(shot[400, 10, :3], (40, 96, 160))
    assert _close(shot[400, 1270, :3], (240, 160, 32))
