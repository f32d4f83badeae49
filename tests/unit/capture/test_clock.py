"""The capture clock follows a suspend, journals a wall-clock jump, and never moves a
segment's stamps out of the epoch it began in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lockdown.capture.clock import CaptureClock, SystemTime
from lockdown.events import Event

T0 = 1_800_000_000.0  # a wall-clock time (2027)


class SteppedTime:
    """Three clocks the test moves by hand: ``run`` advances all of them together,
    ``suspend`` only the one that counts a suspend and the wall clock, ``set_wall`` only
    the wall clock."""

    def __init__(self, *, awake: bool = True) -> None:
        self.mono = 100.0
        self.boot = 200.0
        self.wall_s = T0
        self.has_awake = awake

    def monotonic(self) -> float:
        return self.mono

    def awake(self) -> float | None:
        return self.boot if self.has_awake else None

    def wall(self) -> float:
        return self.wall_s

    def run(self, seconds: float) -> None:
        self.mono += seconds
        self.boot += seconds
        self.wall_s += seconds

    def suspend(self, seconds: float) -> None:
        self.boot += seconds
        self.wall_s += seconds

    def set_wall(self, seconds: float) -> None:
        self.wall_s += seconds


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def test_plain_running_maps_stamps_to_wall_time_and_journals_nothing() -> None:
    time = SteppedTime()
    events: list[Event] = []
    clock = CaptureClock(events.append, source=time)
    for _ in range(50):
        time.run(0.07)
        clock.now()
    assert clock.utc(100.0) == _utc(T0)
    assert clock.utc(103.5) == _utc(T0 + 3.5)
    assert clock.mono(_utc(T0 + 3.5)) == pytest.approx(103.5)
    assert events == [] and clock.epoch == 0


def test_a_suspend_is_journalled_and_later_stamps_carry_the_slept_time() -> None:
    time = SteppedTime()
    events: list[Event] = []
    clock = CaptureClock(events.append, source=time)
    time.run(10.0)
    before = clock.now()
    time.suspend(3600.0)  # the monotonic clock stood still for an hour
    time.run(0.05)
    after = clock.now()
    assert [(e.type, e.payload["kind"]) for e in events] == [("clock.jump", "suspend")]
    assert events[0].payload["seconds"] == pytest.approx(3600.0)
    assert clock.epoch == 1
    # a stamp from before the suspend keeps its time; one after it is an hour later, as
    # the wall clock (and the journal's utc) says
    assert clock.utc(before) == _utc(T0 + 10.0)
    assert clock.utc(after) == _utc(T0 + 3610.05)
    assert clock.utc(after + 5.0) == _utc(T0 + 3615.05)
    # a segment that began before maps all its stamps in its own epoch
    assert clock.utc(before + 0.02, epoch=0) == _utc(T0 + 10.02)
    assert clock.mono(_utc(T0 + 3615.05)) == pytest.approx(after + 5.0)
    # the next calls see no new jump
    time.run(1.0)
    clock.now()
    assert len(events) == 1


@pytest.mark.parametrize("moved", [-600.0, 90.0])
def test_a_wall_clock_set_is_journalled_and_does_not_move_capture_times(moved: float) -> None:
    time = SteppedTime()
    events: list[Event] = []
    clock = CaptureClock(events.append, source=time)
    time.run(5.0)
    clock.now()
    time.set_wall(moved)  # the candidate (or NTP) set the clock
    time.run(0.1)
    stamp = clock.now()
    assert [(e.type, e.payload["kind"]) for e in events] == [("clock.jump", "set")]
    assert events[0].payload["seconds"] == pytest.approx(moved)
    # the session's timeline goes on; the journal's utc field moved by ``moved``
    assert clock.epoch == 0
    assert clock.utc(stamp) == _utc(T0 + 5.1)


def test_without_a_suspend_aware_clock_a_wall_jump_is_journalled_and_the_mapping_stays() -> None:
    time = SteppedTime(awake=False)
    events: list[Event] = []
    clock = CaptureClock(events.append, source=time)
    time.suspend(120.0)
    time.run(0.1)
    stamp = clock.now()
    assert [(e.type, e.payload["kind"]) for e in events] == [("clock.jump", "wall")]
    assert clock.epoch == 0 and clock.utc(stamp) == _utc(T0 + 0.1)


def test_small_scheduling_noise_is_no_jump() -> None:
    time = SteppedTime()
    events: list[Event] = []
    clock = CaptureClock(events.append, source=time)
    time.suspend(0.2)  # under the threshold: a thread that ran late, not a suspend
    time.set_wall(0.3)
    clock.now()
    assert events == [] and clock.epoch == 0


def test_the_system_clocks_agree_with_each_other_here() -> None:
    """On this machine the suspend-aware clock exists and the clock sees no jump."""
    source = SystemTime()
    assert source.awake() is not None
    events: list[Event] = []
    clock = CaptureClock(events.append)
    for _ in range(100):
        clock.now()
    assert events == []
    assert abs(clock.utc(clock.now()) - datetime.now(UTC)) < timedelta(seconds=0.5)
