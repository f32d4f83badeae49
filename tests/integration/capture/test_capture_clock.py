"""Segment times stay right across a suspend and a wall-clock jump: the real camera
recorder on the test pattern, with the capture clock's three clocks shifted by the test."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from lockdown.capture.base import Segment
from lockdown.capture.clock import CaptureClock, SystemTime
from lockdown.capture.recorders import CameraRecorder
from lockdown.events import Event

SUSPEND = 3600.0


class ShiftedTime(SystemTime):
    """The computer's clocks, with a suspend (the monotonic clock did not count it) and
    a wall-clock setting added on the test's word."""

    def __init__(self, *, suspend_aware: bool = True) -> None:
        super().__init__()
        self.slept = 0.0
        self.set_by = 0.0
        self._suspend_aware = suspend_aware

    def awake(self) -> float | None:
        awake = super().awake()
        return None if awake is None or not self._suspend_aware else awake + self.slept

    def wall(self) -> float:
        return super().wall() + self.slept + self.set_by


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.mark.slow
def test_segments_follow_a_suspend_and_ignore_a_wall_clock_set() -> None:
    events: list[Event] = []
    segments: list[Segment] = []
    time_source = ShiftedTime()
    clock = CaptureClock(events.append, source=time_source)
    recorder = CameraRecorder(
        "pattern", width=160, height=120, fps=10.0, report=events.append, clock=clock,
        segment_length=0.6,
    )  # fmt: skip
    recorder.start(segments.append)
    try:
        _wait(lambda: len(segments) >= 1 and recorder._segment is not None, 10)
        time_source.slept = SUSPEND  # the computer slept for an hour
        suspended_at = datetime.now(UTC)
        _wait(lambda: clock.epoch == 1, 5)
        _wait(lambda: any(s.start_utc > suspended_at + timedelta(minutes=30) for s in segments), 10)
        time_source.set_by = -600.0  # then the clock was set back ten minutes
        set_at = datetime.now(UTC) + timedelta(seconds=SUSPEND)
        _wait(lambda: any(e.payload.get("kind") == "set" for e in events), 5)
        _wait(lambda: any(s.start_utc > set_at for s in segments), 10)
    finally:
        recorder.stop()
    jumps = [e.payload for e in events if e.type == "clock.jump"]
    assert [j["kind"] for j in jumps] == ["suspend", "set"]
    assert jumps[0]["seconds"] == pytest.approx(SUSPEND, abs=0.5)
    assert jumps[1]["seconds"] == pytest.approx(-600.0, abs=0.5)
    # The segment recording at the suspend ended there; the next began an hour later (on
    # the wall clock the journal uses), and none spans the suspend.
    before = [s for s in segments if s.start_utc < suspended_at]
    after = [s for s in segments if s.start_utc >= suspended_at]
    assert before and after
    assert [s.seq for s in segments] == list(range(len(segments)))
    assert before[-1].end_utc <= suspended_at + timedelta(seconds=0.3)
    gap = (after[0].start_utc - before[-1].end_utc).total_seconds()
    assert gap == pytest.approx(SUSPEND, abs=0.5)
    for segment in segments:
        assert segment.end_utc - segment.start_utc == timedelta(seconds=segment.duration)
        assert segment.duration <= 0.6 + 0.3
    # The clock set back moved nothing: segments run on, back to back, an hour ahead of
    # the computer's own monotonic timeline.
    for earlier, later in itertools.pairwise(after):
        assert abs((later.start_utc - earlier.end_utc).total_seconds()) < 0.3
    assert after[-1].end_utc > datetime.now(UTC) + timedelta(seconds=SUSPEND - 5)


@pytest.mark.slow
def test_without_the_suspend_aware_clock_segment_times_lag_after_a_resume() -> None:
    """Positive control: the clock the capture clock leans on switched off, the suspend
    is only a wall-clock jump, and the segments after it lag the wall clock by the slept
    hour (what the journal's times and the segments' disagreed by before)."""
    events: list[Event] = []
    segments: list[Segment] = []
    time_source = ShiftedTime(suspend_aware=False)
    clock = CaptureClock(events.append, source=time_source)
    recorder = CameraRecorder(
        "pattern", width=160, height=120, fps=10.0, report=events.append, clock=clock,
        segment_length=0.6,
    )  # fmt: skip
    recorder.start(segments.append)
    try:
        _wait(lambda: len(segments) >= 1, 10)
        time_source.slept = SUSPEND
        resumed = datetime.now(UTC)
        _wait(lambda: len(segments) >= 3, 10)
    finally:
        recorder.stop()
    assert [e.payload["kind"] for e in events if e.type == "clock.jump"] == ["wall"]
    assert clock.epoch == 0
    for earlier, later in itertools.pairwise(segments):
        assert abs((later.start_utc - earlier.end_utc).total_seconds()) < 0.3
    assert segments[-1].end_utc < resumed + timedelta(seconds=30)
