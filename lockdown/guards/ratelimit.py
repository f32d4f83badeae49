"""Flood control for the journal: repeated events are summarised with a count, never lost.

:class:`RateLimitedSink` passes the first event of a key (its type plus an optional key
field of the payload) straight through, then holds the repeats for ``per_key_interval``
seconds and emits one summary, the last held event with ``"suppressed": N`` (the number
of repeats it stands for). :meth:`RateLimitedSink.flush` emits whatever is still held,
so stopping a guard never drops the count.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lockdown.events import Event, EventSink

Clock = Callable[[], float]


@dataclass
class _KeyState:
    window_start: float
    passed: int = 1
    suppressed: int = 0
    last: Event | None = None


class RateLimitedSink:
    """An :data:`EventSink` that rate-limits per key; thread-safe.

    Args:
        sink: where events go (the journal).
        per_key_interval: seconds during which repeats of a key are held and counted.
        key_field: payload field that, with the event type, names the key (e.g. ``combo``,
            ``exe``); without it the event type alone is the key.
        clock: monotonic clock (tests pass their own).
        burst: how many events of a key pass straight through in one interval before the
            repeats are held and counted.
    """

    def __init__(
        self,
        sink: EventSink,
        per_key_interval: float,
        key_field: str | None = None,
        clock: Clock = time.monotonic,
        burst: int = 1,
    ) -> None:
        if per_key_interval < 0:
            raise ValueError("per_key_interval must be >= 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._burst = burst
        self._sink = sink
        self._interval = per_key_interval
        self._key_field = key_field
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _KeyState] = {}

    def _key(self, event: Event) -> tuple[str, str]:
        value = event.payload.get(self._key_field, "") if self._key_field else ""
        return (event.type, str(value))

    @staticmethod
    def _summary(state: _KeyState) -> Event | None:
        if state.suppressed == 0 or state.last is None:
            return None
        payload = dict(state.last.payload)
        payload["suppressed"] = state.suppressed
        return Event(state.last.type, payload)

    def __call__(self, event: Event) -> None:
        now = self._clock()
        out: list[Event] = []
        with self._lock:
            self._expire(now, out)
            key = self._key(event)
            state = self._keys.get(key)
            if state is None:
                self._keys[key] = _KeyState(window_start=now)
                out.append(event)
            elif state.passed < self._burst and state.suppressed == 0:
                state.passed += 1
                out.append(event)
            else:
                state.suppressed += 1
                state.last = event
        for item in out:
            self._sink(item)

    def _expire(self, now: float, out: list[Event]) -> None:
        for key, state in list(self._keys.items()):
            if now - state.window_start >= self._interval:
                summary = self._summary(state)
                if summary is not None:
                    out.append(summary)
                    # A summary opens a new window: further repeats are counted again.
                    self._keys[key] = _KeyState(window_start=now)
                else:
                    del self._keys[key]

    def poll(self) -> None:
        """Emit summaries whose interval is over (call from a timer; events also do it)."""
        out: list[Event] = []
        with self._lock:
            self._expire(self._clock(), out)
        for item in out:
            self._sink(item)

    def flush(self) -> None:
        """Emit every held summary now (at stop), so no count is lost."""
        out: list[Event] = []
        with self._lock:
            for state in self._keys.values():
                summary = self._summary(state)
                if summary is not None:
                    out.append(summary)
            self._keys.clear()
        for item in out:
            self._sink(item)
