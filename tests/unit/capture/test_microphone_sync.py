"""The microphone keeps its samples in line with the capture clock, both ways, and
journals what the device and the ring buffer dropped."""

from __future__ import annotations

import queue
from types import SimpleNamespace

import numpy as np
import pytest
import sounddevice as sd

from lockdown.capture.base import Segment
from lockdown.capture.recorders import MicrophoneRecorder
from lockdown.capture.sources import AudioBlock, MicrophoneSource
from lockdown.events import Event

RATE = 16000
BLOCK = 1600  # 0.1 s


def _recorder(events: list[Event], **options: float) -> MicrophoneRecorder:
    return MicrophoneRecorder(
        report=events.append, rate=RATE, segment_length=60.0, report_interval=30.0, **options
    )


def _feed(recorder: MicrophoneRecorder, dates: list[float]) -> None:
    for date in dates:
        recorder._consume(AudioBlock(date, np.full(BLOCK, 0.1, np.float32)), 60 * RATE)


def _handed_over(recorder: MicrophoneRecorder) -> list[Segment]:
    segments = []
    while True:
        try:
            segments.append(recorder._queue.get_nowait())
        except queue.Empty:
            return segments


def _clock_end(recorder: MicrophoneRecorder) -> float:
    """Where the samples of the open segment reach, on the capture clock."""
    segment = recorder._segment
    assert segment is not None
    return segment.start + segment.encoder.samples / RATE


@pytest.mark.parametrize(
    ("period", "kind"),
    [(0.099, "dropped_s"), (0.101, "silence_s")],
    ids=["device-clock-fast", "device-clock-slow"],
)
def test_drift_is_corrected_both_ways_and_journalled(period: float, kind: str) -> None:
    # 300 blocks of 0.1 s whose dates advance by ``period``: the device's clock runs 1 %
    # fast (more samples than clock time) or slow (fewer).
    dates = [1000.0 + i * period for i in range(300)]
    events: list[Event] = []
    recorder = _recorder(events)
    _feed(recorder, dates)
    recorder.resyncs.flush()
    # the samples end where the clock says the last block ends (within the tolerance)
    assert _clock_end(recorder) == pytest.approx(dates[-1] + 0.1, abs=0.1)
    resynced = [e.payload for e in events if e.type == "microphone.resynced"]
    assert resynced and all(set(p) == {"stream", kind} for p in resynced)
    # rate-limited: the first at once, the rest summed into one at the flush
    assert len(resynced) == 2
    corrected = sum(p[kind] for p in resynced)
    assert corrected == pytest.approx(recorder.resyncs.totals[kind])
    # about the 0.3 s the device drifted after the first segment's start settled (2 s)
    assert 0.15 <= corrected <= 0.3
    recorder._segment.encoder.abandon()  # type: ignore[union-attr]


def test_without_the_correction_the_samples_drift_from_the_clock() -> None:
    """Positive control: the same fast device with correction off ends 0.3 s off."""
    dates = [1000.0 + i * 0.099 for i in range(300)]
    recorder = _recorder([], drift_tolerance=float("inf"), max_fill=float("inf"))
    _feed(recorder, dates)
    assert _clock_end(recorder) - (dates[-1] + 0.1) == pytest.approx(0.28, abs=0.03)
    recorder._segment.encoder.abandon()  # type: ignore[union-attr]


def test_a_gap_too_long_to_fill_ends_the_segment_and_the_next_starts_at_the_block() -> None:
    events: list[Event] = []
    recorder = _recorder(events)
    _feed(recorder, [1000.0 + i * 0.1 for i in range(30)])  # 3 s
    _feed(recorder, [1008.0 + i * 0.1 for i in range(10)])  # after a 5 s hole
    (first,) = _handed_over(recorder)
    segment = recorder._segment
    assert segment is not None
    assert first.duration == pytest.approx(3.0)
    assert (segment.start_utc - first.start_utc).total_seconds() == pytest.approx(8.0)
    recorder.resyncs.flush()
    (gap,) = [e.payload for e in events if e.type == "microphone.resynced"]
    assert gap["gaps"] == 1 and gap["gap_s"] == pytest.approx(5.0)
    segment.encoder.abandon()


def test_overflows_and_ring_drops_are_counted_and_journalled_rate_limited() -> None:
    source = MicrophoneSource("", RATE, ring_seconds=0.3)  # a ring of 3 blocks
    indata = np.zeros((BLOCK, 1), np.float32)
    times = SimpleNamespace(currentTime=0.0, inputBufferAdcTime=0.0)
    overflow = sd.CallbackFlags(sd._lib.paInputOverflow)
    for i in range(5):  # PortAudio's callback, as the device thread calls it
        source._callback(indata, BLOCK, times, overflow if i == 1 else sd.CallbackFlags())
    assert (source.overflows, source.dropped_blocks) == (1, 2)
    events: list[Event] = []
    recorder = _recorder(events)
    recorder._count_drops(source)
    for _ in range(4):  # the ring overflows again, and again
        source._callback(indata, BLOCK, times, sd.CallbackFlags())
    recorder._count_drops(source)
    dropped = [e.payload for e in events if e.type == "microphone.dropped"]
    assert dropped == [
        {"stream": "microphone", "overflows": 1, "blocks": 2, "seconds": pytest.approx(0.2)}
    ]
    recorder._source = source
    recorder._close()  # the stop journals what the rate limit still held
    dropped = [e.payload for e in events if e.type == "microphone.dropped"]
    assert dropped[1:] == [{"stream": "microphone", "blocks": 4, "seconds": pytest.approx(0.4)}]
    assert recorder.drops.totals == {"overflows": 1, "blocks": 6, "seconds": pytest.approx(0.6)}
