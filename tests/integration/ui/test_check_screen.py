"""The check screen under Xvfb with real checks: all steps passing (the demo's test pattern
shown as such, speech on the virtual microphone), a too-dark camera, no microphone, a
Retry that turns a failure into a pass, and the keyboard.

Each state is saved as a PNG (in the test's folder; with LOCKDOWN_UPDATE_DOC_IMAGES=1 also
under docs/images/, where the documentation shows them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from lockdown.checks.base import Check, CheckContext
from lockdown.checks.devices import LEVEL, CameraCheck, CameraInventoryCheck, MicrophoneCheck
from lockdown.checks.machine import DisplaysCheck, FreeDiskCheck
from lockdown.config.settings import Settings
from lockdown.texts import text
from lockdown.ui.checkscreen import CheckScreen
from tests.integration.capture.media import camera_video
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.audio]
DOCS = Path(__file__).resolve().parents[3] / "docs" / "images"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    speech = folder / "speech.wav"
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed; run `make test` (its bootstrap installs it)")
    subprocess.run(
        [espeak, "-w", str(speech), "I am ready to take my exam, and I will work on my own."],
        check=True,
        timeout=30,
    )
    return {"speech": speech, "dark": camera_video(folder / "dark.avi", [("dark", 2.0)], 15.0)}


def _ctx(tmp_path: Path, **values: Any) -> CheckContext:
    settings: dict[str, Any] = dict(Settings.defaults())
    settings.update({"proctoring.camera_source": "pattern", **values})
    return CheckContext(settings, ("camera", "microphone", "screen"), tmp_path)


def _checks(listen: float = 6.0) -> list[Check]:
    return [
        DisplaysCheck(),
        FreeDiskCheck(),
        CameraInventoryCheck(),
        CameraCheck(settle=0.5, measure=1.0),
        MicrophoneCheck(listen=listen),
    ]


@pytest.fixture
def screens(qtbot: Any) -> Iterator[list[CheckScreen]]:
    made: list[CheckScreen] = []
    yield made
    for screen in made:
        screen.close()
        screen.deleteLater()
    qtbot.wait(10)


def _run(qtbot: Any, screen: CheckScreen, screens: list[CheckScreen]) -> None:
    screens.append(screen)
    screen.show()
    qtbot.waitExposed(screen)
    screen.start()
    qtbot.waitUntil(lambda: not screen.busy, timeout=40_000)
    qtbot.wait(150)  # the last frame and level are painted


def _listening(ctx: CheckContext) -> threading.Event:
    """Set once the microphone step hears its first block (it is listening)."""
    heard = threading.Event()
    shown = ctx.shared[LEVEL]

    def level(dbfs: float) -> None:
        heard.set()
        shown(dbfs)

    ctx.shared[LEVEL] = level
    return heard


@contextlib.contextmanager
def _reading(mic: VirtualMicrophone, sound: Path, listening: threading.Event) -> Iterator[None]:
    """The candidate reads the sentence once the microphone step listens (on a loaded
    machine it may start listening later than any fixed delay)."""

    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            if listening.wait(0.1):
                mic.play(sound)
                return

    listening.clear()
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def _save(screen: CheckScreen, tmp_path: Path, name: str) -> Path:
    path = screen.save_png(tmp_path / name)
    image = QImage(str(path))
    assert image.width() >= 900 and image.height() >= 600
    if os.environ.get("LOCKDOWN_UPDATE_DOC_IMAGES"):
        shutil.copyfile(path, DOCS / name)
    return path


def test_all_steps_pass_and_continue_is_enabled(
    qtbot: Any,
    xserver: Xvfb,
    virtual_microphone: VirtualMicrophone,
    media: dict[str, Path],
    tmp_path: Path,
    screens: list[CheckScreen],
) -> None:
    verdict: list[bool] = []
    ctx = _ctx(tmp_path)
    screen = CheckScreen(ctx, _checks(), title="Demo exam", finished=verdict.append)
    # the microphone step is the fifth: the candidate reads once it listens
    with _reading(virtual_microphone, media["speech"], _listening(ctx)):
        _run(qtbot, screen, screens)
    assert screen.state() == {
        "displays": "pass",
        "free_disk": "pass",
        "cameras": "pass",
        "camera": "pass",
        "microphone": "pass",
    }
    assert screen.continue_button.isEnabled()
    assert screen.summary.text() == text("checkscreen.ready")
    assert screen.pattern_note.isVisible()  # the test pattern says it is not a camera
    assert screen.pattern_note.text() == text("checkscreen.pattern")
    camera_row = screen.rows[3]
    assert "Not a physical camera" in camera_row.message.text()
    assert not camera_row.remedy.isVisible() and not camera_row.retry.isVisible()
    assert screen.preview.pixmap() is not None and not screen.preview.pixmap().isNull()
    assert screen.brightness.value() > 60
    assert screen.level_peak > -40 and screen.level.value() > screen.level.minimum()
    _save(screen, tmp_path, "check-screen-all-pass.png")
    qtbot.keyClick(screen.continue_button, Qt.Key.Key_Space)
    assert verdict == [True]


def test_too_dark_is_a_warning_with_the_guides_remedy(
    qtbot: Any,
    xserver: Xvfb,
    virtual_microphone: VirtualMicrophone,
    media: dict[str, Path],
    tmp_path: Path,
    screens: list[CheckScreen],
) -> None:
    ctx = _ctx(tmp_path, **{"proctoring.camera_source": str(media["dark"])})
    screen = CheckScreen(ctx, _checks(), finished=lambda _: None)
    with _reading(virtual_microphone, media["speech"], _listening(ctx)):
        _run(qtbot, screen, screens)
    assert screen.state()["camera"] == "warn"
    row = screen.rows[3]
    assert row.message.text() == text("check.camera.too_dark")
    assert row.remedy.isVisible() and "more brightly lit" in row.remedy.text()
    assert row.retry.isVisible()
    assert screen.brightness.value() < 30
    assert "#c62828" in screen.brightness.styleSheet()  # the bar says dark
    assert screen.pattern_note.text() == text("checkscreen.video_file")
    assert screen.continue_button.isEnabled()  # a warning does not block
    _save(screen, tmp_path, "check-screen-too-dark.png")


def test_no_microphone_blocks_until_a_retry_passes(
    qtbot: Any,
    xserver: Xvfb,
    virtual_microphone: VirtualMicrophone,
    media: dict[str, Path],
    tmp_path: Path,
    screens: list[CheckScreen],
) -> None:
    ctx = _ctx(tmp_path, **{"proctoring.microphone_device": "Headset That Is Not There"})
    verdict: list[bool] = []
    screen = CheckScreen(ctx, _checks(listen=5.0), finished=verdict.append)
    listening = _listening(ctx)
    _run(qtbot, screen, screens)
    assert screen.state()["microphone"] == "fail"
    row = screen.rows[4]
    assert row.message.text().startswith("No microphone could be opened")
    assert row.remedy.text() == text("check.microphone.missing_remedy")
    assert row.retry.isVisible() and row.retry.focusPolicy() != Qt.FocusPolicy.NoFocus
    assert not screen.continue_button.isEnabled()
    assert screen.summary.text() == text("checkscreen.blocked")
    _save(screen, tmp_path, "check-screen-no-microphone.png")
    screen.continue_button.click()  # disabled: nothing happens
    qtbot.keyClick(screen, Qt.Key.Key_Return)
    assert verdict == []
    # the headset is plugged in (the default input), Retry with the keyboard, then speak
    ctx.settings["proctoring.microphone_device"] = ""  # type: ignore[index]
    row.retry.setFocus()
    qtbot.keyClick(row.retry, Qt.Key.Key_Space)
    assert screen.state()["microphone"] in ("waiting", "running")
    with _reading(virtual_microphone, media["speech"], listening):
        qtbot.waitUntil(lambda: not screen.busy, timeout=30_000)
    assert screen.state()["microphone"] == "pass"
    assert screen.continue_button.isEnabled()
    qtbot.keyClick(screen, Qt.Key.Key_Escape)  # leaving is always possible
    assert verdict == [False]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from lockdown import build

    monkeypatch.setenv("LOCKDOWN_AS_INSTALLED", "1")
    build.current.cache_clear()
    yield
    monkeypatch.delenv("LOCKDOWN_AS_INSTALLED")
    build.current.cache_clear()


def _exam_settings(**values: Any) -> dict[str, Any]:
    settings: dict[str, Any] = dict(Settings.defaults())
    settings.update(
        {
            "proctoring.camera": True,
            "proctoring.camera_source": "pattern",
            "checks.before_exam": False,
            **values,
        }
    )
    return settings


def test_before_an_exam_a_pattern_camera_is_refused_in_an_installed_build(
    tmp_path: Path, installed: None
) -> None:
    from lockdown.lifecycle.base import Outcome
    from lockdown.ui.checkscreen import SystemCheckOperation

    events: list[Any] = []
    op = SystemCheckOperation(_exam_settings(), tmp_path, events.append)
    assert op.perform() is Outcome.ABORTED
    assert (op.message_id, op.message_values) == (
        "check.camera.not_physical",
        {"source": "pattern"},
    )
    assert [e.type for e in events] == ["check.camera_refused"]
    # the demo's pattern is allowed in any build
    demo = SystemCheckOperation(_exam_settings(), tmp_path, events.append, demo=True)
    assert demo.perform() is Outcome.SUCCESS


def test_before_an_exam_a_pattern_camera_is_allowed_in_a_development_build(
    tmp_path: Path,
) -> None:
    # the positive control of the test above: the same exam starts in a development build
    from lockdown.lifecycle.base import Outcome
    from lockdown.ui.checkscreen import SystemCheckOperation

    events: list[Any] = []
    op = SystemCheckOperation(_exam_settings(), tmp_path, events.append)
    assert op.perform() is Outcome.SUCCESS and op.message_id is None and events == []


class FlakyOnce:
    """A step that fails its first run and passes the next (a device busy for a moment)."""

    id = "flaky"
    title_id = "check.camera.title"
    blocking = True
    main_thread = False
    time_limit = None

    def __init__(self, failures: int = 1) -> None:
        self.runs = 0
        self.failures = failures

    def run(self, ctx: CheckContext) -> Any:
        from lockdown.checks.base import CheckResult, Status

        self.runs += 1
        if self.runs <= self.failures:
            return CheckResult(Status.FAIL, "check.camera.busy", {"reason": "busy"})
        return CheckResult(Status.PASS, "check.camera.ok", {"width": 1, "height": 1, "fps": 1})


@pytest.mark.parametrize(("failures", "continued"), [(1, True), (2, False)])
def test_the_automatic_demo_retries_a_blocking_failure_once(
    qtbot: Any, xserver: Xvfb, tmp_path: Path, failures: int, continued: bool
) -> None:
    from lockdown.ui.checkscreen import run_screen

    step = FlakyOnce(failures)
    ctx = _ctx(tmp_path)
    assert run_screen(ctx, [step], automatic=True) is continued
    assert step.runs == 2
