"""The guard contract: start with a report callback, stop idempotently, describe the backend."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from lockdown.events import EventSink


class Availability(enum.Enum):
    FULL = "full"
    #: works, with a documented gap on this system (say which in ``reason``)
    PARTIAL = "partial"
    #: cannot work here (no permission, missing API); the policy decides what happens
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True)
class GuardInfo:
    """What a guard can do on this machine, for `lockdown environment` and the journal."""

    name: str
    backend: str
    availability: Availability
    reason: str = ""


class GuardUnavailable(Exception):
    """Raised by ``start`` when the guard cannot work here; the message says why."""


class Guard(Protocol):
    """A monitor that reports events; it never decides UI and never ends the exam itself."""

    @property
    def name(self) -> str: ...

    def info(self) -> GuardInfo:
        """Backend and availability on this machine (no side effects)."""
        ...

    def start(self, report: EventSink) -> None:
        """Begin guarding; events go to ``report`` (from any thread).

        Raises:
            GuardUnavailable: the guard cannot work on this machine.
        """
        ...

    def stop(self) -> None:
        """Stop guarding and undo every change made; safe to call twice."""
        ...
