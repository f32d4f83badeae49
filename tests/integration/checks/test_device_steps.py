"""The device steps on real things: the camera through OpenCV (test pattern, video files of
a lit and a dark scene), the PulseAudio virtual microphone with espeak-ng speech, silence
and steady noise, and a 5-second test recording through the real recorders."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from lockdown import build
from lockdown.checks.base import CheckContext, Status
from lockdown.checks.devices import (
    LEVEL,
    PREVIEW,
    CameraCheck,
    CameraInventoryCheck,
    MicrophoneCheck,
    SampleRecordingCheck,
)
from lockdown.config.settings import Settings
from lockdown.platform.cameras import Camera, CameraInventory, Position, Transport
from tests.integration.capture.media import camera_video
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb


def _ctx(tmp_path: Path, streams: tuple[str, ...], **values: Any) -> CheckContext:
    settings: dict[str, Any] = dict(Settings.defaults())
    settings.update(values)
    return CheckContext(settings, streams, tmp_path)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run `make test` (its bootstrap installs it)")
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        kind: camera_video(folder / f"{kind}.avi", [(kind, 2.0)], 15.0) for kind in ("one", "dark")
    }


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LOCKDOWN_AS_INSTALLED", "1")
    build.current.cache_clear()
    yield
    monkeypatch.delenv("LOCKDOWN_AS_INSTALLED")
    build.current.cache_clear()


# -- camera ---------------------------------------------------------------------------------


def test_the_test_pattern_passes_as_not_a_physical_camera_and_feeds_the_preview(
    tmp_path: Path,
) -> None:
    seen: list[tuple[int, float, bool]] = []
    ctx = _ctx(tmp_path, ("camera",), **{"proctoring.camera_source": "pattern"})
    ctx.shared[PREVIEW] = lambda frame, mean, dark: seen.append((frame.shape[1], mean, dark))
    result = CameraCheck(settle=0.5, measure=1.0).run(ctx)
    assert (result.status, result.message_id) == (Status.PASS, "check.camera.not_physical_dev")
    assert result.details["physical"] is False
    assert result.measured["width_px"] == 640 and result.measured["fps"] >= 10
    assert len(seen) >= 15 and not any(dark for _, _, dark in seen)


def test_a_pattern_camera_is_refused_in_an_installed_build(tmp_path: Path, installed: None) -> None:
    # (the development-build test above is the positive control: same source, accepted)
    ctx = _ctx(tmp_path, ("camera",), **{"proctoring.camera_source": "pattern"})
    result = CameraCheck(settle=0.5, measure=1.0).run(ctx)
    assert (result.status, result.message_id) == (Status.FAIL, "check.camera.not_physical")
    assert result.remedy_id == "check.camera.not_physical_remedy"


def test_too_dark_fires_on_the_dark_scene_and_not_on_the_lit_one(
    tmp_path: Path, videos: dict[str, Path]
) -> None:
    results = {}
    for kind, video in videos.items():
        ctx = _ctx(tmp_path, ("camera",), **{"proctoring.camera_source": str(video)})
        results[kind] = CameraCheck(settle=0.5, measure=1.0).run(ctx)
    assert (results["dark"].status, results["dark"].message_id) == (
        Status.WARN,
        "check.camera.too_dark",
    )
    assert results["dark"].remedy_id == "check.camera.too_dark_remedy"
    assert results["dark"].measured["dark_share"] == 1.0
    assert results["one"].status is Status.PASS, results["one"]
    assert results["one"].measured["dark_share"] == 0.0
    assert (results["one"].measured["width_px"], results["one"].measured["height_px"]) == (640, 480)


def test_a_camera_that_is_not_there_fails_with_its_own_remedy(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ("camera",), **{"proctoring.camera_source": "7"})
    result = CameraCheck(settle=0.2, measure=0.2).run(ctx)
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.FAIL,
        "check.camera.missing",
        "check.camera.missing_remedy",
    )
    assert "/dev/video7" in result.values["reason"]


def test_the_camera_steps_skip_when_the_exam_records_no_camera(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ("screen",))
    assert CameraCheck().run(ctx).status is Status.SKIP
    assert CameraInventoryCheck().run(ctx).status is Status.SKIP


def test_the_inventory_step_warns_in_the_guides_words(tmp_path: Path) -> None:
    cams = (
        Camera("Integrated Camera", "/dev/video0", "a", Position.FRONT, Transport.BUILT_IN),
        Camera("Rear Camera", "/dev/video2", "b", Position.BACK, Transport.BUILT_IN),
    )
    result = CameraInventoryCheck(lambda: CameraInventory(cams, backend="v4l2")).run(
        _ctx(tmp_path, ("camera",))
    )
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.WARN,
        "check.cameras.front_and_back",
        "check.cameras.remedy",
    )
    # and this machine (no /dev/video*): an empty inventory passes, the camera step decides
    here = CameraInventoryCheck().run(_ctx(tmp_path, ("camera",)))
    assert (here.status, here.message_id) == (Status.PASS, "check.cameras.none_listed")


# -- microphone -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    speech, noise = folder / "speech.wav", folder / "noise.wav"
    subprocess.run(
        [
            _tool("espeak-ng"),
            "-w",
            str(speech),
            "I am ready to take my exam, and I will work on my own.",
        ],
        check=True,
        timeout=30,
    )
    subprocess.run(
        [
            _tool("sox"),
            "-n",
            "-r",
            "16000",
            "-c",
            "1",
            str(noise),
            "synth",
            "10",
            "brownnoise",
            "vol",
            "0.3",
        ],
        check=True,
        timeout=30,
    )
    return {"speech": speech, "noise": noise}


def _mic_run(
    ctx: CheckContext,
    mic: VirtualMicrophone,
    sound: Path | None,
    delay: float = 0.8,
    listen: float = 6.0,
) -> tuple[Any, list[float]]:
    levels: list[float] = []
    ctx.shared[LEVEL] = levels.append
    player: list[subprocess.Popen[bytes]] = []

    def play() -> None:
        time.sleep(delay)  # the candidate starts reading a moment after the prompt
        if sound is not None:
            player.append(mic.play(sound, wait=False))

    thread = threading.Thread(target=play)
    thread.start()
    try:
        result = MicrophoneCheck(listen=listen).run(ctx)
    finally:
        thread.join()
        for proc in player:
            proc.kill()
            proc.wait(10)
    return result, levels


@pytest.mark.audio
def test_speech_on_the_virtual_microphone_passes(
    tmp_path: Path, virtual_microphone: VirtualMicrophone, sounds: dict[str, Path]
) -> None:
    result, levels = _mic_run(_ctx(tmp_path, ("microphone",)), virtual_microphone, sounds["speech"])
    assert (result.status, result.message_id) == (Status.PASS, "check.microphone.ok"), result
    assert result.measured["rise_db"] >= 20
    assert levels and max(levels) > -40  # the meter saw the voice


@pytest.mark.audio
def test_silence_on_the_virtual_microphone_fails(
    tmp_path: Path, virtual_microphone: VirtualMicrophone
) -> None:
    result, levels = _mic_run(_ctx(tmp_path, ("microphone",)), virtual_microphone, None, listen=3.0)
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.FAIL,
        "check.microphone.silent",
        "check.microphone.silent_remedy",
    )
    assert levels and set(levels) == {-120.0}


@pytest.mark.audio
def test_steady_noise_without_a_rise_is_a_warning_to_retry(
    tmp_path: Path, virtual_microphone: VirtualMicrophone, sounds: dict[str, Path]
) -> None:
    result, _ = _mic_run(
        _ctx(tmp_path, ("microphone",)), virtual_microphone, sounds["noise"], delay=0.0, listen=4.0
    )
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.WARN,
        "check.microphone.quiet",
        "check.microphone.quiet_remedy",
    ), result


def test_no_microphone_fails(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ("microphone",), **{"proctoring.microphone_device": "No Such Mic 42"})
    result = MicrophoneCheck(listen=1.0).run(ctx)
    assert (result.status, result.message_id) == (Status.FAIL, "check.microphone.missing")


# -- test recording -------------------------------------------------------------------------


@pytest.mark.x11
@pytest.mark.audio
@pytest.mark.slow
def test_a_five_second_recording_of_every_stream_is_verified_and_discarded(
    tmp_path: Path, xserver: Xvfb, virtual_microphone: VirtualMicrophone
) -> None:
    before = set(Path(tempfile.gettempdir()).glob("lockdown-check-recording-*"))
    ctx = _ctx(
        tmp_path, ("camera", "microphone", "screen"), **{"proctoring.camera_source": "pattern"}
    )
    result = SampleRecordingCheck().run(ctx)
    assert (result.status, result.message_id) == (Status.PASS, "check.recording.ok"), result.details
    streams: Mapping[str, Any] = result.details["streams"]
    assert set(streams) == {"camera", "microphone", "screen"}
    assert streams["camera"]["units"] >= 50  # ~5 s at 15 fps, decoded
    assert streams["microphone"]["units"] >= 4 * 16000  # samples, decoded
    assert streams["screen"]["units"] >= 4
    assert result.details["discarded"] is True
    assert set(Path(tempfile.gettempdir()).glob("lockdown-check-recording-*")) == before


def test_a_recording_whose_camera_cannot_open_fails_and_says_which_stream(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, ("camera",), **{"proctoring.camera_source": "7"})
    result = SampleRecordingCheck(seconds=2.0).run(ctx)
    assert (result.status, result.message_id) == (Status.FAIL, "check.recording.failed")
    assert result.values["reason"].startswith("camera:")


def test_a_recording_without_a_screen_fails_for_the_screen_without_a_stray_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = SampleRecordingCheck(seconds=1.0).run(_ctx(tmp_path, ("screen",)))
    assert (result.status, result.message_id) == (Status.FAIL, "check.recording.failed")
    assert result.values["reason"].startswith("screen:")
    assert not [t for t in threading.enumerate() if t.name == "screen-recorder"]
