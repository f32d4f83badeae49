"""The operation contract: small steps that can be performed and reverted."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Outcome(enum.Enum):
    SUCCESS = "success"
    #: An expected stop: the candidate chose to quit, a prohibited app was not closed.
    ABORTED = "aborted"
    #: Something unexpected went wrong.
    FAILED = "failed"


class Operation(Protocol):
    """One step of the session. Never raises into the sequence: returns an outcome."""

    @property
    def name(self) -> str: ...

    def perform(self) -> Outcome:
        """Do the step. Returns SUCCESS, ABORTED or FAILED."""
        ...

    def revert(self) -> Outcome:
        """Undo the step; called only when perform() ran (whatever its outcome)."""
        ...


class WindsDown(Protocol):
    """An operation with work to finish while the exam is still locked (optional)."""

    def wind_down(self) -> Outcome:
        """Finish work before anything reverts (store the last segments, drain uploads).

        Called off the GUI thread, with a deadline; revert() follows either way.
        """
        ...


class Phase(enum.Enum):
    PERFORMING = "performing"
    PERFORMED = "performed"
    WINDING_DOWN = "winding down"
    WOUND_DOWN = "wound down"
    REVERTING = "reverting"
    REVERTED = "reverted"


@dataclass(frozen=True)
class Progress:
    """Reported before and after each step."""

    phase: Phase
    name: str
    index: int
    total: int
    outcome: Outcome | None = None


ProgressCallback = Callable[[Progress], None]
