"""Displays guard on its own Xvfb: a second RandR monitor is refused at start, covered when added.

Qt connects to one display per process, so the guard runs in a child process on a fresh
Xvfb whose monitor layout the test changes with ``xrandr --setmonitor`` (RandR 1.5; Qt's
xcb backend turns monitors into screens).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.support.xserver import Xvfb

pytestmark = pytest.mark.x11

CHILD = r"""
import json, sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QWidget
from lockdown.config.settings import Organisation, layer
from lockdown.guards.displays import DisplaysGuard
from lockdown.platform.null import NullPlatform

app = QApplication([])
def say(**kw): print(json.dumps(kw), flush=True)
kiosk = QWidget()
kiosk.setGeometry(app.primaryScreen().geometry())
kiosk.show()
guard = DisplaysGuard(layer(Organisation(), {}), kiosk, NullPlatform())
problem = guard.problem()
if problem is not None:
    say(refused=problem.message_id, text=problem.text())
    sys.exit(0)
def report(event):
    extra = {}
    if event.type == "guards.display_added":
        cover = guard.covers.get(event.payload["name"])
        extra["cover_visible"] = bool(cover and cover.isVisible())
        extra["cover_id"] = int(cover.winId()) if cover else 0
    say(type=event.type, payload=dict(event.payload), **extra)
guard.start(report)
QTimer.singleShot(15000, app.quit)
app.exec()
guard.stop()
"""


def _child(x: Xvfb) -> subprocess.Popen[str]:
    env = {**os.environ, **x.env, "QT_QPA_PLATFORM": "xcb"}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=os.getcwd(),
    )


def _next(proc: subprocess.Popen[str], timeout: float = 10) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip().startswith("{"):
            return dict(json.loads(line))
        if not line and proc.poll() is not None:
            break
    raise AssertionError("the child said nothing")


def test_a_second_screen_is_refused_at_start(fresh_xserver: Xvfb) -> None:
    fresh_xserver.run("xrandr", "--setmonitor", "RIGHT", "640/170x800/212+640+0", "none")
    proc = _child(fresh_xserver)
    try:
        said = _next(proc)
        assert said["refused"] == "guards.displays.too_many"
        assert "2 screens are connected, but this exam allows 1" in said["text"]
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_screen_attached_during_the_exam_is_covered_and_journalled(
    fresh_xserver: Xvfb,
) -> None:
    proc = _child(fresh_xserver)
    try:
        first = _next(proc)
        assert first["type"] == "guards.displays"
        assert first["payload"]["count"] == 1
        fresh_xserver.run("xrandr", "--setmonitor", "RIGHT", "640/170x800/212+640+0", "none")
        added = _next(proc)
        assert added["type"] == "guards.display_added"
        assert added["payload"]["name"] == "RIGHT"
        assert added["payload"]["over_limit"] is True
        assert added["cover_visible"] is True
        # The cover really is on the new screen, as another X client sees it.
        cover = str(added["cover_id"])
        deadline = time.monotonic() + 5
        geometry = ""
        while time.monotonic() < deadline:
            geometry = fresh_xserver.run("xdotool", "getwindowgeometry", cover).stdout
            if "Position: 640,0" in geometry and "Geometry: 640x800" in geometry:
                break
            time.sleep(0.05)
        assert "Position: 640,0" in geometry
        assert "Geometry: 640x800" in geometry
        fresh_xserver.run("xrandr", "--delmonitor", "RIGHT")
        removed = _next(proc)
        assert removed["type"] == "guards.display_removed"
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
