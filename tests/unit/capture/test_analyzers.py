"""Analyzers on synthetic and photo input: the brightness rule, faces, voice activity."""

from __future__ import annotations

import numpy as np
import pytest

from lockdown.capture.analyzers import (
    FaceCheck,
    Finding,
    HintReporter,
    TooDarkCheck,
    VoiceActivity,
    dbfs,
    downscale_gray,
    is_dark,
    luma_stats,
)
from lockdown.capture.base import Stream
from lockdown.capture.clock import CaptureClock
from lockdown.capture.recorders import Backoff
from lockdown.events import Event
from tests.integration.capture.media import scene

RATE = 16000


def test_brightness_rule_tells_dark_from_lit_and_from_a_dark_but_contrasty_scene() -> None:
    assert is_dark(luma_stats(downscale_gray(scene("dark"))))
    assert not is_dark(luma_stats(downscale_gray(scene("one"))))
    contrast = np.zeros((120, 160), np.uint8)
    contrast[:, 80:] = 255  # half black, half white: a wide spread is not "too dark"
    assert not is_dark(luma_stats(contrast))
    assert is_dark(luma_stats(np.full((120, 160), 30, np.uint8)))


def test_too_dark_needs_consecutive_frames_and_flags_once() -> None:
    check = TooDarkCheck(consecutive=3)
    dark, lit = downscale_gray(scene("dark")), downscale_gray(scene("one"))
    assert check.feed(dark, 0.0) is None
    assert check.feed(dark, 0.5) is None
    assert check.feed(lit, 1.0) is None  # the run is broken
    results = [check.feed(dark, t) for t in (1.5, 2.0, 2.5, 3.0)]
    assert results[:2] == [None, None]
    assert results[2] is not None and results[2].kind == "too_dark"
    assert results[2].details["onset"] == 1.5
    assert results[3] is None  # still dark: no second finding


def test_faces_flag_only_after_the_persistence_window() -> None:
    check = FaceCheck(persistence=2.0)
    one, two, none = (downscale_gray(scene(k)) for k in ("one", "two", "none"))
    assert check.feed(one, 0.0) is None
    assert check.feed(none, 1.0) is None
    assert check.feed(one, 2.0) is None  # a glance away for 1 s is not a flag
    assert check.feed(none, 3.0) is None
    finding = check.feed(none, 5.0)
    assert finding == Finding("no_face", {"onset": 3.0})
    assert check.feed(two, 6.0) is None
    finding = check.feed(two, 8.5)
    assert finding is not None and finding.kind == "several_faces"
    assert finding.details["faces"] == 2


def _feed(va: VoiceActivity, signal: np.ndarray, start: float = 0.0) -> list[Finding]:
    out = []
    block = RATE // 50
    for i in range(0, len(signal) - block + 1, block):
        finding = va.feed(signal[i : i + block].astype(np.float32), start + i / RATE)
        if finding is not None:
            out.append(finding)
    return out


def test_a_still_picture_keeps_the_last_face_count_and_the_window_runs_on() -> None:
    check = FaceCheck(persistence=2.0, max_reuse=6.0)
    rng = np.random.default_rng(3)

    def noisy(kind: str) -> np.ndarray:  # a camera's noise on an unchanged picture
        frame = scene(kind).astype(np.int16) + rng.normal(0, 4, (480, 640, 3)).astype(np.int16)
        return downscale_gray(np.clip(frame, 0, 255).astype(np.uint8))

    assert check.feed(noisy("one"), 0.0) is None
    assert check.feed(noisy("one"), 1.5) is None
    assert (check.counted, check.reused) == (1, 1)
    assert check.feed(noisy("none"), 3.0) is None  # changed: the cascade looks again
    assert (check.counted, check.reused, check.faces) == (2, 1, 0)
    # Still: the count is re-used with each look's time, so the window ends on time.
    assert check.feed(noisy("none"), 4.5) is None
    assert check.feed(noisy("none"), 6.0) == Finding("no_face", {"onset": 3.0})
    assert (check.counted, check.reused) == (2, 3)
    assert check.feed(noisy("none"), 9.5) is None  # over max_reuse since the last count
    assert (check.counted, check.reused) == (3, 3)


def test_a_small_change_in_the_picture_is_looked_at_again() -> None:
    check = FaceCheck()
    one = scene("one")
    check.feed(downscale_gray(one), 0.0)
    changed = one.copy()
    changed[20:60, 580:620] = 0  # 40 px square: a head at the edge, far off is smaller
    check.feed(downscale_gray(changed), 1.5)
    assert (check.counted, check.reused) == (2, 0)


def test_the_camera_looks_for_faces_seldom_while_settled_and_often_while_a_change_waits() -> None:
    from lockdown.capture.recorders import CameraRecorder

    events: list[Event] = []
    recorder = CameraRecorder(
        "pattern",
        report=events.append,
        face_interval=2.5,
        face_confirm_interval=1.0,
        face_persistence=3.0,
        hint_interval=0.0,
    )
    rng = np.random.default_rng(5)
    looks: list[float] = []
    for step in range(40):  # 20 s, a frame analysed every 0.5 s; the face leaves at 6 s
        mono = step * 0.5
        frame = scene("one" if mono < 6.0 else "none").astype(np.int16)
        frame += rng.normal(0, 4, frame.shape).astype(np.int16)  # a camera's noise
        before = recorder.faces.counted + recorder.faces.reused
        recorder._analyse(np.clip(frame, 0, 255).astype(np.uint8), mono)
        if recorder.faces.counted + recorder.faces.reused > before:
            looks.append(mono)
    # Settled: every 2.5 s. The first look without a face (7.5 s) starts 1 s confirming
    # looks until the 3 s persistence is over (10.5 s); then every 2.5 s again.
    assert looks == [0.0, 2.5, 5.0, 7.5, 8.5, 9.5, 10.5, 13.0, 15.5, 18.0]
    assert [(e.type, e.payload["offset"] >= 0) for e in events] == [("hint.no_face", True)]


def test_voice_activity_separates_speechlike_sound_from_tone_noise_and_silence() -> None:
    t = np.arange(3 * RATE) / RATE
    silence = np.zeros_like(t)
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    rng = np.random.default_rng(1)
    noise = 0.3 * rng.standard_normal(len(t))
    # voiced "syllables": a 150 Hz voice with its formants, 4 per second, level moving
    voiced = sum(
        a * np.sin(2 * np.pi * f * t) for a, f in ((0.3, 150), (1.0, 600), (0.8, 1200), (0.5, 2400))
    )
    syllables = (np.sin(2 * np.pi * 4 * t) > 0) * (0.1 + np.abs(np.sin(2 * np.pi * 2 * t)))
    speechlike = 0.2 * voiced * syllables
    assert _feed(VoiceActivity(RATE), silence) == []
    assert [f.kind for f in _feed(VoiceActivity(RATE), tone)] == ["noise"]
    assert [f.kind for f in _feed(VoiceActivity(RATE), noise)] == ["noise"]
    assert [f.kind for f in _feed(VoiceActivity(RATE), speechlike)] == ["voice"]


def test_level_in_dbfs() -> None:
    assert dbfs(np.ones(100, np.float32)) == pytest.approx(0.0)
    assert dbfs(np.full(100, 0.1, np.float32)) == pytest.approx(-20.0)
    assert dbfs(np.zeros(100, np.float32)) == -120.0


def test_hints_are_rate_limited_per_kind_and_count_what_was_held_back() -> None:
    events: list[Event] = []
    hints = HintReporter(events.append, Stream.CAMERA, CaptureClock(), interval=10.0)
    assert hints(Finding("no_face"), mono=100.0, segment=3, offset=1.25)
    assert not hints(Finding("no_face"), mono=105.0, segment=3, offset=6.25)
    assert hints(Finding("too_dark"), mono=105.0, segment=3, offset=6.25)
    assert hints(Finding("no_face"), mono=111.0, segment=4, offset=2.0)
    assert [e.type for e in events] == ["hint.no_face", "hint.too_dark", "hint.no_face"]
    assert events[0].payload["segment"] == 3
    assert events[0].payload["offset"] == 1.25
    assert events[0].payload["stream"] == "camera"
    assert "suppressed" not in events[0].payload
    assert events[2].payload["suppressed"] == 1


def test_backoff_doubles_up_to_its_maximum() -> None:
    backoff = Backoff(1.0, 30.0)
    assert [backoff.delay(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]
