"""Segments and event collectors for the spool tests."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

from lockdown.capture.base import Segment, Stream
from lockdown.events import Event

START = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
#: The session key the spool tests hold themselves (a real exam wraps a fresh one).
TEST_KEY = bytes(range(32))


def media(stream: Stream, seq: int, size: int) -> bytes:
    """Deterministic, incompressible-looking media bytes for one segment."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{stream.value}/{seq}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def segment(stream: Stream, seq: int, size: int = 1000, length: float = 2.0) -> Segment:
    start = START + timedelta(seconds=seq * length)
    return Segment(
        stream=stream,
        seq=seq,
        start_utc=start,
        end_utc=start + timedelta(seconds=length),
        duration=length,
        units=30 if stream is not Stream.MICROPHONE else int(16000 * length),
        mime="audio/webm" if stream is Stream.MICROPHONE else "video/webm",
        data=media(stream, seq, size),
    )


class Events:
    """An EventSink that keeps what it is given (thread-safe)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: str) -> list[dict[str, object]]:
        with self._lock:
            return [dict(e.payload) for e in self.events if e.type == kind]

    def types(self) -> list[str]:
        with self._lock:
            return [e.type for e in self.events]
