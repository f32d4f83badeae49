"""RateLimitedSink: first event passes, repeats become one summary with their count."""

from __future__ import annotations

import json
from pathlib import Path

from lockdown.events import Event
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.platform.null import NullPlatform


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


def test_held_repeats_are_on_disk_until_their_summary_is_journalled(tmp_path: Path) -> None:
    from lockdown.guards.ratelimit import RestoreHeldCounts
    from lockdown.guards.restore import RestoreLog

    restore = RestoreLog(tmp_path)
    out: list[Event] = []

    def journal(event: Event) -> None:
        # when a summary reaches the journal its count is still on disk (crash-safe order)
        if "suppressed" in event.payload:
            assert [r.data["suppressed"] for r in restore.pending()] == [3]
        out.append(event)

    clock = Clock()
    sink = RateLimitedSink(
        journal, 10.0, key_field="key", clock=clock, held=RestoreHeldCounts(restore)
    )
    sink(Event("guards.prohibited_app", {"key": "obs", "pid": 1}))
    assert restore.pending() == []  # passed straight through: nothing held
    for pid in (2, 3, 4):
        sink(Event("guards.prohibited_app", {"key": "obs", "pid": pid}))
        [held] = restore.pending()
        assert held.kind == "journal_held"
        assert held.data["suppressed"] == pid - 1
        assert held.data["payload"] == {"key": "obs", "pid": pid}
    clock.now += 10.0
    sink.poll()
    assert out[-1] == Event("guards.prohibited_app", {"key": "obs", "pid": 4, "suppressed": 3})
    assert restore.pending() == []


def test_a_held_count_left_by_a_dead_run_is_journalled_at_the_next_start(tmp_path: Path) -> None:
    from lockdown.guards.ratelimit import RestoreHeldCounts
    from lockdown.guards.restore import RestoreLog, undo_leftovers

    restore = RestoreLog(tmp_path)
    held = RestoreHeldCounts(restore)
    record = held.hold(None, Event("guards.prohibited_app", {"key": "obs"}), 1)
    held.hold(record, Event("guards.prohibited_app", {"key": "obs", "pid": 8}), 2)
    # the run "died": make the record look like another (finished) process's
    body = json.loads(record.path.read_text())
    record.path.write_text(json.dumps({**body, "pid": 999_999_999, "started": 1.0}))
    journal: list[Event] = []
    assert undo_leftovers(tmp_path, journal.append, platform=NullPlatform()) == 1
    [undone] = journal
    assert undone.type == "guards.restore_undone"
    assert undone.payload["kind"] == "journal_held"
    assert undone.payload["data"]["suppressed"] == 2
    assert undone.payload["data"]["payload"] == {"key": "obs", "pid": 8}
