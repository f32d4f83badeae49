"""The recorder contract (the segment it hands over is the spool's: ``lockdown.upload.base``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

# the segment is the spool's contract; re-exported for the recorders and older imports
from lockdown.upload.base import Segment, SegmentSink, Stream

__all__ = ["Health", "Recorder", "Segment", "SegmentSink", "State", "Stream"]


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

    def stop(self) -> None:
        """Stop and hand the last, partial segment to the sink before returning."""
        ...

    def health(self) -> Health: ...
