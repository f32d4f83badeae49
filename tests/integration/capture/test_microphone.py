"""The microphone recorder on the PulseAudio virtual microphone: a tone and speech."""

from __future__ import annotations

import itertools
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from lockdown.capture.base import Segment, State, Stream
from lockdown.capture.encoder import AUDIO_MIME
from lockdown.capture.recorders import MicrophoneRecorder
from lockdown.events import Event
from tests.integration.capture.media import audio_samples, dominant_frequency
from tests.support.pulse import VirtualMicrophone

pytestmark = [pytest.mark.audio, pytest.mark.slow]


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; run `make test` (its bootstrap installs it)")
    return path


@pytest.fixture(scope="module")
def sounds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("sounds")
    tone = folder / "tone.wav"
    speech = folder / "speech.wav"
    subprocess.run(
        [_tool("sox"), "-n", "-r", "16000", "-c", "1", str(tone), "synth", "2", "sine", "440"],
        check=True,
        timeout=30,
    )
    subprocess.run(
        [
            _tool("espeak-ng"),
            "-w",
            str(speech),
            "The quick brown fox jumps over the lazy dog. Read every question carefully.",
        ],
        check=True,
        timeout=30,
    )
    return {"tone": tone, "speech": speech}


def test_tone_and_speech_are_recorded_and_only_speech_is_a_voice_hint(
    virtual_microphone: VirtualMicrophone, sounds: dict[str, Path]
) -> None:
    events: list[Event] = []
    segments: list[Segment] = []
    recorder = MicrophoneRecorder(report=events.append, segment_length=2.0, hint_interval=0.0)
    recorder.start(segments.append)
    try:
        # PulseAudio takes a moment to deliver the first block; then 1.5 s of silence.
        _wait(lambda: recorder.voice.level_dbfs > -200 and recorder._segment is not None, 15)
        assert recorder.health().state is State.RUNNING
        silence_end = time.monotonic() + 1.5
        _wait(lambda: time.monotonic() >= silence_end, 5)
        tone_start = recorder.clock.utc(time.monotonic())
        virtual_microphone.play(sounds["tone"])
        tone_end = recorder.clock.utc(time.monotonic())
        speech_start = tone_end
        virtual_microphone.play(sounds["speech"])
        _wait(lambda: any(e.type == "hint.voice" for e in events), 10)
    finally:
        recorder.stop()

    assert len(segments) >= 4
    for segment in segments:
        assert segment.stream is Stream.MICROPHONE
        assert segment.mime == AUDIO_MIME
        samples, rate = audio_samples(segment.data)
        assert rate in (16000, 48000)
        decoded = len(samples) / rate
        # Opus works in frames; its end padding is marked to be skipped: same length.
        assert decoded == pytest.approx(segment.duration, abs=0.05)
        assert segment.units == round(segment.duration * 16000)
    for segment in segments[:-1]:
        assert segment.duration == pytest.approx(2.0, abs=0.001)

    # The segments are contiguous; cut the tone out of them by capture time.
    start = segments[0].start_utc
    pieces = [audio_samples(s.data) for s in segments]
    rate = pieces[0][1]
    audio = np.concatenate(
        [p[0][: round(s.duration * rate)] for p, s in zip(pieces, segments, strict=True)]
    )

    def at(utc: datetime) -> int:
        return round((utc - start).total_seconds() * rate)

    tone = audio[at(tone_start) + rate // 2 : at(tone_end) - rate // 4]
    assert len(tone) > rate // 2
    assert dominant_frequency(tone, rate) == pytest.approx(440, abs=5)
    silence = audio[: at(tone_start) - rate // 10]
    assert np.abs(silence).max() < 0.01

    hints = [e for e in events if e.type.startswith("hint.")]
    voice = [e for e in hints if e.type == "hint.voice"]
    assert voice, hints
    onset = datetime.fromisoformat(voice[0].payload["utc"])
    assert (onset - speech_start).total_seconds() == pytest.approx(0.0, abs=0.8)
    # Nothing was flagged during the silence. (A hint's onset is estimated from when the
    # 1 s window tipped over, to a 50 ms piece or two: the tone's may fall a hair before
    # the moment paplay was started.)
    for hint in hints:
        assert datetime.fromisoformat(hint.payload["utc"]) > tone_start - timedelta(seconds=0.15)
    # The tone is noise, not voice: no voice hint begins while it plays.
    assert all(
        datetime.fromisoformat(e.payload["utc"]) > tone_start + timedelta(seconds=1.2)
        for e in voice
    ), hints
    assert any(e.type == "hint.noise" for e in hints), hints


def test_the_sound_up_to_the_stop_is_kept(
    virtual_microphone: VirtualMicrophone, sounds: dict[str, Path]
) -> None:
    segments: list[Segment] = []
    recorder = MicrophoneRecorder(report=lambda _e: None, segment_length=30.0)
    recorder.start(segments.append)
    player = None
    try:
        _wait(lambda: recorder._segment is not None, 15)
        player = virtual_microphone.play(sounds["tone"], wait=False)  # 2 s of sound
        playing = time.monotonic() + 1.2
        _wait(lambda: time.monotonic() >= playing, 5)  # the stop comes during the tone
    finally:
        stopped = recorder.clock.utc(time.monotonic())
        recorder.stop()
        if player is not None:
            player.wait(10)
    (segment,) = segments
    # What was still in the input buffer at the stop is in the segment: it ends in the
    # tone, and about at the stop (to a block, 0.1 s, and the first block's date, which
    # the start of the stream leaves uncertain by ~0.1 s).
    samples, rate = audio_samples(segment.data)
    assert np.abs(samples[-rate // 10 :]).max() > 0.1
    assert segment.end_utc >= stopped - timedelta(seconds=0.25)


def _record_with_a_late_reader(
    ring_seconds: float, seconds: float
) -> tuple[MicrophoneRecorder, list[Event], list[Segment], datetime]:
    """Record ``seconds`` with a reader that takes its blocks once a second."""
    events: list[Event] = []
    segments: list[Segment] = []
    recorder = MicrophoneRecorder(
        report=events.append,
        segment_length=2.0,
        batch=1.0,
        ring_seconds=ring_seconds,
        report_interval=0.0,
    )
    recorder.start(segments.append)
    try:
        _wait(lambda: recorder._segment is not None, 15)
        until = time.monotonic() + seconds
        _wait(lambda: time.monotonic() >= until, seconds + 5)
    finally:
        stopped = recorder.clock.utc(recorder.clock.now())
        recorder.stop()
    return recorder, events, segments, stopped


def test_dropped_microphone_blocks_are_journalled_and_the_gaps_filled(
    virtual_microphone: VirtualMicrophone,
) -> None:
    # The ring holds 0.3 s and the reader comes once a second: 0.7 s of each second is
    # dropped, as when the recorder thread stalls.
    _recorder, events, segments, stopped = _record_with_a_late_reader(0.3, 3.0)
    dropped = [e.payload for e in events if e.type == "microphone.dropped"]
    blocks = sum(p.get("blocks", 0) for p in dropped)
    assert blocks >= 10, dropped
    assert sum(p.get("seconds", 0) for p in dropped) == pytest.approx(blocks * 0.1)
    # the holes were filled with silence, so the samples stay on the clock: the
    # segments, back to back, end at the stop
    silence = sum(e.payload.get("silence_s", 0) for e in events if e.type == "microphone.resynced")
    assert silence >= 0.5 * blocks * 0.1
    assert [s.seq for s in segments] == list(range(len(segments)))
    recorded = sum(s.duration for s in segments)
    span = (stopped - segments[0].start_utc).total_seconds()
    assert recorded == pytest.approx(span, abs=0.4)
    for earlier, later in itertools.pairwise(segments):
        assert abs((later.start_utc - earlier.end_utc).total_seconds()) < 0.001


def test_a_late_reader_with_room_in_the_ring_drops_nothing(
    virtual_microphone: VirtualMicrophone,
) -> None:
    """Control: the same late reader with the default 10 s ring journals no drop."""
    _recorder, events, segments, _ = _record_with_a_late_reader(10.0, 2.0)
    assert segments
    assert not [e for e in events if e.type == "microphone.dropped"]
