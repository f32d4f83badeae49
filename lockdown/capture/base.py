"""The recorder contract and the segment value recorders hand to the spool."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class Stream(enum.Enum):
    CAMERA = "camera"
    MICROPHONE = "microphone"
    SCREEN = "screen"


@dataclass(frozen=True)
class Segment:
    """One finished, self-contained media segment (plain bytes; the spool encrypts them)."""

    stream: Stream
    seq: int
    start_utc: datetime
    end_utc: datetime
    duration: float
    #: video frames, or audio samples, in the segment
    units: int
    mime: str
    data: bytes


SegmentSink = Callable[[Segment], None]


class State(enum.Enum):
    STOPPED = "stopped"
    RUNNING = "running"
    DEGRADED = "degraded"
    FAILED = "failed"


@dataclass(frozen=True)
class Health:
    state: State
    #: why, in plain words (device vanished, permission denied, encoder error)
    reason: str = ""
    backend: str = ""


class Recorder(Protocol):
    @property
    def kind(self) -> Stream: ...

    def start(self, sink: SegmentSink) -> None:
        """Begin recording; finished segments go to ``sink`` (from a worker thread)."""
        ...

    def stop(self, timeout: float | None = None) -> bool:
        """Stop and hand the last, partial segment to the sink before returning, within
        ``timeout`` seconds (None: the recorder's own); False when it could not (a source
        or sink that hangs: journalled as ``recorder.stop_timeout``)."""
        ...

    def health(self) -> Health: ...
