"""The start-up order: the starting state is painted, the exam page loads underneath it and
shows, and takes input, only once every guard is on.

A whole session in-process with the real kiosk, web engine and guards. A probe holds the
start right before the desktop guards (the last step) until the exam page has loaded
underneath the starting state; there it looks at the screen and types into the page.
The positive control (``LOCKDOWN_DEV_REVEAL=early``: the exam shows once loaded, guards
or not) sees the exam and its keys arrive at the same point.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from PySide6.QtGui import QGuiApplication, QImage
from PySide6.QtWidgets import QApplication
from Xlib.display import Display

from lockdown import build
from lockdown.app import run_session
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import read_records
from lockdown.guards import desktop, policy
from lockdown.guards.display_isolation import DisplayIsolationOperation
from lockdown.guards.prefetch import PrecheckPrefetch
from lockdown.lifecycle.base import Outcome
from lockdown.paths import temp_paths
from lockdown.ui.kiosk import Kiosk
from lockdown.ui.prohibited_dialog import ProhibitedAppsDialog
from tests.support.httpserver import LocalServer
from tests.support.processes import (
    SESSION_VARIABLE,
    TEST_SESSION,
    alive,
    launch_detached,
    renamed_copy,
)
from tests.support.xclients import private_xdotool

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]

#: The exam page: one magenta field that reports every key it receives.
EXAM = """<html><body style="margin:0;background:#ff00ff">
<input id="answer" autofocus style="width:60%;font-size:40px">
<script>
document.addEventListener("keydown", e => fetch("/key?k=" + encodeURIComponent(e.key)));
</script></body></html>"""


def exam(start: str, prohibited_apps: str = "allow") -> LoadedExam:
    settings = layer(
        Organisation(),
        flatten(
            {
                "browser": {"start_url": start},
                # the test machine is a virtual machine
                "guards": {
                    "virtual_machine": "allow",
                    "remote_session": "allow",
                    "prohibited_apps": prohibited_apps,
                },
            },
            origin="t",
        ),
    )
    return LoadedExam(settings, None, "test", "Start-up order", "lockdown")


def magenta_share(image: QImage) -> float:
    """The share of sampled screen pixels in the exam page's magenta."""
    hits = total = 0
    for y in range(0, image.height(), 20):
        for x in range(0, image.width(), 20):
            c = image.pixelColor(x, y)
            total += 1
            hits += c.red() > 200 and c.green() < 60 and c.blue() > 200
    return hits / total


def light_share(image: QImage) -> float:
    """The share of sampled pixels in the starting state's light background (not black)."""
    hits = total = 0
    for y in range(0, image.height(), 20):
        for x in range(0, image.width(), 20):
            c = image.pixelColor(x, y)
            total += 1
            hits += min(c.red(), c.green(), c.blue()) > 230
    return hits / total


def wait(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.02)
    return bool(condition())


@dataclass
class Held:
    """What the probe saw while the start was held before the desktop guards."""

    loaded: bool = False
    magenta: float = 0.0
    light: float = 0.0
    keys_before_guards: int = 0
    after: list[str] = field(default_factory=list)


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch, http_server: LocalServer) -> Iterator[Held]:
    """Hold the start right before the desktop guards until the page has loaded."""
    held = Held()
    real = desktop.DesktopGuardsOperation
    kiosks: list[Kiosk] = []
    xdotool = private_xdotool()

    class HeldDesktopGuards(real):  # type: ignore[misc, valid-type]
        def perform(self) -> Outcome:
            held.loaded = wait(lambda: kiosks[0].loaded_url is not None, 20)
            wait(lambda: False, 0.8)  # let what is shown be painted
            image = QGuiApplication.primaryScreen().grabWindow(0).toImage()
            held.magenta, held.light = magenta_share(image), light_share(image)
            subprocess.run([xdotool, "type", "--delay", "20", "abc"], check=False, timeout=10)
            wait(lambda: bool(http_server.seen("/key")), 1.5)
            held.keys_before_guards = len(http_server.seen("/key"))
            return super().perform()  # type: ignore[no-any-return]

    original_preload = Kiosk.preload

    def preload(kiosk: Kiosk) -> None:
        kiosks.append(kiosk)
        original_preload(kiosk)

    monkeypatch.setattr(desktop, "DesktopGuardsOperation", HeldDesktopGuards)
    monkeypatch.setattr(Kiosk, "preload", preload)
    yield held


def run(tmp_path: Path, http_server: LocalServer, held: Held) -> list[dict[str, Any]]:
    paths = temp_paths(tmp_path)
    start = http_server.page("/", EXAM)
    http_server.page("/key", "")

    def journey(kiosk: Kiosk) -> None:
        def look() -> None:
            image = QGuiApplication.primaryScreen().grabWindow(0).toImage()
            held.after.append(f"{magenta_share(image):.2f}")
            kiosk.end("test")

        QTimer.singleShot(1000, look)

    code = run_session(exam(start), paths, journey=journey, single_instance=False)
    assert code == 0
    (journal,) = paths.journals.glob("*.jsonl")
    return read_records(journal)


def test_exam_page_shows_and_takes_keys_only_once_every_guard_is_on(
    qapp: Any,
    tmp_path: Path,
    http_server: LocalServer,
    probe: Held,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="lockdown.init")
    records = run(tmp_path, http_server, probe)
    assert probe.loaded, "the exam page never loaded underneath the starting state"
    # held before the last guards, the page loaded: the starting state covers the screen
    assert probe.magenta < 0.01
    assert probe.light > 0.5  # painted, not black
    assert probe.keys_before_guards == 0
    # once every guard is on, the exam shows
    assert float(probe.after[0]) > 0.3
    types = [r["type"] for r in records]
    last_guard = max(i for i, t in enumerate(types) if t == "guards.started")
    assert types.index("kiosk.revealed") > last_guard
    # the window is painted before the web engine starts; the exam shows after the guards
    phases = [
        m.removeprefix("Start-up phase ").removesuffix(" done")
        for m in caplog.messages
        if m.startswith("Start-up phase ")
    ]
    assert phases.index("window") < phases.index("engine start") < phases.index("guards")
    assert phases.index("page load") < phases.index("guards") < phases.index("exam page shown")


def test_control_revealed_on_load_the_exam_shows_before_the_guards(
    qapp: Any,
    tmp_path: Path,
    http_server: LocalServer,
    probe: Held,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOCKDOWN_DEV_REVEAL", "early")
    build.current.cache_clear()
    try:
        records = run(tmp_path, http_server, probe)
    finally:
        build.current.cache_clear()
    assert probe.loaded
    assert probe.magenta > 0.3  # the attack the cover prevents: the exam before the guards
    assert probe.keys_before_guards > 0
    assert any(r["type"] == "kiosk.dev_switch" for r in records)


def window_under(xdotool: str, x: int, y: int) -> int:
    """The X window under the screen point (x, y) (the pointer is moved there)."""
    subprocess.run([xdotool, "mousemove", str(x), str(y)], check=True, timeout=10)
    out = subprocess.run(
        [xdotool, "getmouselocation", "--shell"],
        check=True,
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout
    return int(dict(line.split("=", 1) for line in out.split())["WINDOW"])


def holds(window: int, target: int) -> bool:
    """True when ``target`` is ``window`` or inside it (the window manager's frame)."""
    display = Display()
    try:
        todo = [display.create_resource_object("window", window)]
        while todo:
            current = todo.pop()
            if current.id == target:
                return True
            todo += current.query_tree().children
        return False
    finally:
        display.close()


def test_the_prohibited_apps_dialog_is_not_hidden_under_the_starting_state(
    qapp: Any,
    tmp_path: Path,
    http_server: LocalServer,
    window_manager: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kiosk window (always on top) is up from the start: the pre-exam dialog must not
    open under it, or the candidate waits on "Starting the exam" for a dialog they cannot
    see (a dialog of the window is not enough under openbox: the window steps aside)."""
    # the session's scope is this run's "login session", where the app runs
    monkeypatch.setenv(SESSION_VARIABLE, TEST_SESSION)
    build.current.cache_clear()
    pid, _ = launch_detached(renamed_copy(tmp_path, "anydesk"), "60")
    xdotool = private_xdotool()
    seen: list[str] = []

    def look() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ProhibitedAppsDialog) or not dialog.isVisible():
            QTimer.singleShot(100, look)
            return
        wait(lambda: False, 1.0)  # mapped and painted under the window manager
        # an app found before the start: the page waits for the candidate's answer
        seen.append(f"page requested {len(http_server.seen('/'))}")
        centre = dialog.mapToGlobal(dialog.rect().center())
        under = window_under(xdotool, centre.x(), centre.y())
        on_top = holds(under, int(dialog.winId()))
        seen.append("dialog on top" if on_top else f"{under:#x} holds no {int(dialog.winId()):#x}")
        os.kill(pid, signal.SIGKILL)
        wait(lambda: not alive(pid), 5)
        dialog.check_button.click()

    QTimer.singleShot(100, look)
    paths = temp_paths(tmp_path / "run")
    start = http_server.page("/", EXAM)
    try:
        code = run_session(
            exam(start, prohibited_apps="ask"),
            paths,
            journey=lambda kiosk: kiosk.end("test"),
            single_instance=False,
        )
    finally:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert seen == ["page requested 0", "dialog on top"]
    assert code == 0


def test_a_refused_start_closes_the_starting_window_before_saying_why(
    qapp: Any, tmp_path: Path, http_server: LocalServer
) -> None:
    """The starting window (always on top) must not hide the message of a refused start."""
    kiosks_shown: list[int] = []

    def show_message(message: str) -> None:
        kiosks_shown.append(
            sum(
                1
                for w in QApplication.topLevelWidgets()
                if w.objectName() == "lockdown-kiosk" and w.isVisible()
            )
        )

    settings = flatten(
        {
            "browser": {"start_url": http_server.page("/", EXAM)},
            "guards": {"virtual_machine": "deny"},
        },
        origin="t",
    )
    refused = LoadedExam(layer(Organisation(), settings), None, "test", "Refused", "lockdown")
    code = run_session(
        refused, temp_paths(tmp_path), single_instance=False, show_message=show_message
    )
    assert code == 1
    assert kiosks_shown == [0]
    assert http_server.seen("/") == []


def test_with_clear_prechecks_the_page_loads_before_the_system_guards_step(
    qapp: Any, tmp_path: Path, http_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a service or a check screen, pre-checks that find nothing to refuse or ask
    about let the page load while the other steps start (the guards' step still decides),
    once the display step succeeded."""
    order: list[str] = []
    real_preload = Kiosk.preload

    def step(name: str, real: Any) -> Any:
        def perform(operation: Any) -> Outcome:
            order.append(name)
            return real(operation)  # type: ignore[no-any-return]

        return perform

    def preload(kiosk: Kiosk) -> None:
        order.append("page")
        real_preload(kiosk)

    monkeypatch.setattr(
        policy.SystemGuardsOperation,
        "perform",
        step("system_guards", policy.SystemGuardsOperation.perform),
    )
    monkeypatch.setattr(
        DisplayIsolationOperation, "perform", step("display", DisplayIsolationOperation.perform)
    )
    monkeypatch.setattr(Kiosk, "preload", preload)
    loaded = exam(http_server.page("/", EXAM))
    prefetch = PrecheckPrefetch(loaded.settings)  # as lockdown open starts it
    assert prefetch.result() is not None
    code = run_session(
        loaded,
        temp_paths(tmp_path),
        journey=lambda kiosk: kiosk.end("test"),
        single_instance=False,
        prefetch=prefetch,
    )
    assert code == 0
    assert order.index("display") < order.index("page") < order.index("system_guards")
