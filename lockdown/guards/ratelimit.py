"""Flood control for the journal: repeated events are summarised with a count, never lost.

:class:`RateLimitedSink` passes the first event of a key (its type plus an optional key
field of the payload) straight through, then holds the repeats for ``per_key_interval``
seconds and emits one summary, the last held event with ``"suppressed": N`` (the number
of repeats it stands for). :meth:`RateLimitedSink.flush` emits whatever is still held,
so stopping a guard never drops the count.

Nothing is held only in memory when the sink has a :class:`HeldCounts` store: each held
repeat rewrites the count on disk before the call returns (:class:`RestoreHeldCounts`: a
``journal_held`` restore record), and the record is dropped only after the summary has
reached the journal. A ``kill -9`` in between leaves the record, and the next start
journals it (:func:`lockdown.guards.restore.undo_leftovers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from lockdown import log
from lockdown.events import Event, EventSink
from lockdown.guards.restore import RestoreLog, RestoreRecord

#: The restore-record kind of a held count.
HELD_KIND: Final = "journal_held"

Clock = Callable[[], float]


class HeldCounts(Protocol):
    """Keeps held counts outside memory; ``handle`` is the store's own token for one key."""

    def hold(self, handle: Any, event: Event, suppressed: int) -> Any:
        """Write that ``suppressed`` repeats, the last being ``event``, are held; returns
        the handle to pass next time (None the first time)."""
        ...

    def release(self, handle: Any) -> None:
        """The summary of these repeats is in the journal: forget them."""
        ...


class RestoreHeldCounts:
    """A :class:`HeldCounts` over a :class:`RestoreLog`: one ``journal_held`` record per key."""

    def __init__(self, restore: RestoreLog) -> None:
        self.restore = restore

    def hold(self, handle: Any, event: Event, suppressed: int) -> Any:
        data = {"type": event.type, "payload": dict(event.payload), "suppressed": suppressed}
        try:
            if isinstance(handle, RestoreRecord):
                return self.restore.update(handle, data)
            return self.restore.record(HELD_KIND, data)
        except OSError as exc:  # the journal summary still carries the count
            log.guards.error("Cannot write the held count of %s: %s", event.type, exc)
            return handle

    def release(self, handle: Any) -> None:
        if isinstance(handle, RestoreRecord):
            self.restore.done(handle)


@dataclass
class _KeyState:
    window_start: float
    passed: int = 1
    suppressed: int = 0
    last: Event | None = None
    held: Any = None


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
        held: writes the held counts as they grow (None: memory only).
    """

    def __init__(
        self,
        sink: EventSink,
        per_key_interval: float,
        key_field: str | None = None,
        clock: Clock = time.monotonic,
        burst: int = 1,
        *,
        held: HeldCounts | None = None,
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
        self._held = held

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
        out: list[tuple[Event, Any]] = []
        with self._lock:
            self._expire(now, out)
            key = self._key(event)
            state = self._keys.get(key)
            if state is None:
                self._keys[key] = _KeyState(window_start=now)
                out.append((event, None))
            elif state.passed < self._burst and state.suppressed == 0:
                state.passed += 1
                out.append((event, None))
            else:
                state.suppressed += 1
                state.last = event
                if self._held is not None:  # on disk before the caller goes on
                    state.held = self._held.hold(state.held, event, state.suppressed)
        self._emit(out)

    def _emit(self, out: list[tuple[Event, Any]]) -> None:
        """Journal each event; then drop the held count it carries (a summary's)."""
        for item, held in out:
            self._sink(item)
            if held is not None and self._held is not None:
                self._held.release(held)

    def _expire(self, now: float, out: list[tuple[Event, Any]]) -> None:
        for key, state in list(self._keys.items()):
            if now - state.window_start >= self._interval:
                summary = self._summary(state)
                if summary is not None:
                    out.append((summary, state.held))
                    # A summary opens a new window: further repeats are counted again.
                    self._keys[key] = _KeyState(window_start=now)
                else:
                    del self._keys[key]

    def poll(self) -> None:
        """Emit summaries whose interval is over (call from a timer; events also do it)."""
        out: list[tuple[Event, Any]] = []
        with self._lock:
            self._expire(self._clock(), out)
        self._emit(out)

    def flush(self) -> None:
        """Emit every held summary now (at stop), so no count is lost."""
        out: list[tuple[Event, Any]] = []
        with self._lock:
            for state in self._keys.values():
                summary = self._summary(state)
                if summary is not None:
                    out.append((summary, state.held))
            self._keys.clear()
        self._emit(out)
