"""OperationSequence: perform steps in order; wind down and revert what was performed, in
reverse.

Perform stops at the first step that does not succeed, or when the start is cancelled
(a SIGTERM while a dialog is open). A step whose perform() was
called is reverted even when it aborted or failed (it may have half-done its work), so
its revert() must cope with a partial perform. Exceptions become FAILED with a log line;
reverting goes on past a failing revert and reports FAILED at the end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from lockdown import log
from lockdown.lifecycle.base import Operation, Outcome, Phase, Progress, ProgressCallback


def _noop(_: Progress) -> None:
    return None


class OperationSequence:
    """Performs its operations in order, winds them down and reverts them in reverse."""

    def __init__(self, operations: Sequence[Operation], progress: ProgressCallback = _noop) -> None:
        self._operations = tuple(operations)
        self._progress = progress
        self._performed: list[Operation] = []
        self._cancelled = False

    @property
    def performed(self) -> tuple[str, ...]:
        """Names of the operations whose perform() ran and have not been reverted."""
        return tuple(op.name for op in self._performed)

    def cancel(self) -> None:
        """Stop a start under way: no further operation is performed (thread-safe)."""
        self._cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def _report(self, progress: Progress) -> None:
        try:
            self._progress(progress)
        except Exception:
            log.init.exception("Progress callback failed during %s", progress.name)

    def _step(
        self, op: Operation, action: Callable[[], Outcome], phases: tuple[Phase, Phase]
    ) -> Outcome:
        """Run one action of ``op`` with its progress reports; never raises."""
        index, total = self._operations.index(op), len(self._operations)
        self._report(Progress(phases[0], op.name, index, total))
        try:
            outcome = action()
        except Exception:
            log.init.exception("Operation %s raised while %s", op.name, phases[0].value)
            outcome = Outcome.FAILED
        if not isinstance(outcome, Outcome):
            log.init.error("Operation %s returned %r, not an Outcome", op.name, outcome)
            outcome = Outcome.FAILED
        self._report(Progress(phases[1], op.name, index, total, outcome))
        return outcome

    def perform(self) -> Outcome:
        for op in self._operations:
            if op in self._performed:
                continue
            if self._cancelled:
                log.init.warning("Start cancelled before %s", op.name)
                return Outcome.ABORTED
            log.init.info("Starting %s…", op.name)
            self._performed.append(op)
            outcome = self._step(op, op.perform, (Phase.PERFORMING, Phase.PERFORMED))
            if outcome is not Outcome.SUCCESS:
                log.init.warning("Operation %s: %s; stopping", op.name, outcome.value)
                return outcome
        return Outcome.ABORTED if self._cancelled else Outcome.SUCCESS

    def wind_down_steps(self) -> list[tuple[str, Callable[[], Outcome]]]:
        """The wind-down of each performed operation that has one, in reverse order.

        Winding down is the work an operation does while everything is still locked
        (the recording's last segments stored, uploads drained); the caller runs these
        with a deadline and the candidate sees their progress, then calls :meth:`revert`.
        """
        steps: list[tuple[str, Callable[[], Outcome]]] = []
        for op in reversed(self._performed):
            wind_down = getattr(op, "wind_down", None)
            if callable(wind_down):
                steps.append((op.name, functools.partial(self._wind_down, op, wind_down)))
        return steps

    def _wind_down(self, op: Operation, action: Callable[[], Outcome]) -> Outcome:
        return self._step(op, action, (Phase.WINDING_DOWN, Phase.WOUND_DOWN))

    def revert(self) -> Outcome:
        result = Outcome.SUCCESS
        while self._performed:
            op = self._performed.pop()
            log.init.info("Reverting %s…", op.name)
            outcome = self._step(op, op.revert, (Phase.REVERTING, Phase.REVERTED))
            if outcome is Outcome.FAILED:
                result = Outcome.FAILED
        return result
