"""RateLimitedSink: first event passes, repeats become one summary with their count."""

from __future__ import annotations

from lockdown.events import Event
from lockdown.guards.ratelimit import RateLimitedSink


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_event_passes_and_repeats_are_counted_in_one_summary() -> None:
    out: list[Event] = []
    clock = Clock()
    sink = RateLimitedSink(out.append, 10.0, key_field="exe", clock=clock)
    for _ in range(50):
        sink(Event("guards.app_started", {"exe": "obs"}))
    sink(Event("guards.app_started", {"exe": "anydesk"}))
    assert out == [
        Event("guards.app_started", {"exe": "obs"}),
        Event("guards.app_started", {"exe": "anydesk"}),
    ]
    clock.now += 10.0
    sink.poll()
    assert out[2:] == [Event("guards.app_started", {"exe": "obs", "suppressed": 49})]
    # the next window counts again and flush() at stop loses nothing
    sink(Event("guards.app_started", {"exe": "obs"}))
    sink(Event("guards.app_started", {"exe": "obs"}))
    sink.flush()
    assert out[3:] == [Event("guards.app_started", {"exe": "obs", "suppressed": 2})]
    sink.flush()
    assert len(out) == 4


def test_a_quiet_key_is_forgotten_and_passes_again() -> None:
    out: list[Event] = []
    clock = Clock()
    sink = RateLimitedSink(out.append, 1.0, clock=clock)
    sink(Event("a"))
    clock.now += 2
    sink(Event("a"))
    assert out == [Event("a"), Event("a")]


def test_total_count_is_never_lost() -> None:
    out: list[Event] = []
    clock = Clock()
    sink = RateLimitedSink(out.append, 0.5, key_field="k", clock=clock)
    for i in range(1000):
        clock.now += 0.01
        sink(Event("x", {"k": str(i % 3)}))
    sink.flush()
    # a plain event stands for itself, a summary for the repeats it counts
    assert sum(e.payload.get("suppressed", 1) for e in out) == 1000


def test_burst_lets_the_first_events_through_then_counts() -> None:
    from lockdown.events import Event as _Event
    from lockdown.guards.ratelimit import RateLimitedSink as _Sink

    out: list[_Event] = []
    now = [0.0]
    sink = _Sink(out.append, 10.0, clock=lambda: now[0], burst=3)
    for i in range(10):
        sink(_Event("guards.focus_lost", {"i": i}))
    assert [e.payload["i"] for e in out] == [0, 1, 2]
    sink.flush()
    assert out[-1].payload == {"i": 9, "suppressed": 7}
