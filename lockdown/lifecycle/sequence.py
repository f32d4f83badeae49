"""OperationSequence: perform steps in order; revert what was performed, in reverse.

Perform stops at the first step that does not succeed. A step whose perform() was
called is reverted even when it aborted or failed (it may have half-done its work), so
its revert() must cope with a partial perform. Exceptions become FAILED with a log line;
reverting goes on past a failing revert and reports FAILED at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

from lockdown import log
from lockdown.lifecycle.base import Operation, Outcome, Phase, Progress, ProgressCallback


def _noop(_: Progress) -> None:
    return None


class OperationSequence:
    def __init__(self, operations: Sequence[Operation], progress: ProgressCallback = _noop) -> None:
        self._operations = tuple(operations)
        self._progress = progress
        self._performed: list[Operation] = []

    @property
    def performed(self) -> tuple[str, ...]:
        """Names of the operations whose perform() ran and have not been reverted."""
        return tuple(op.name for op in self._performed)

    def _report(self, progress: Progress) -> None:
        try:
            self._progress(progress)
        except Exception:
            log.init.exception("Progress callback failed during %s", progress.name)

    def perform(self) -> Outcome:
        total = len(self._operations)
        for index, op in enumerate(self._operations):
            if op in self._performed:
                continue
            self._report(Progress(Phase.PERFORMING, op.name, index, total))
            log.init.info("Starting %s…", op.name)
            self._performed.append(op)
            try:
                outcome = op.perform()
            except Exception:
                log.init.exception("Operation %s raised while performing", op.name)
                outcome = Outcome.FAILED
            if not isinstance(outcome, Outcome):
                log.init.error("Operation %s returned %r, not an Outcome", op.name, outcome)
                outcome = Outcome.FAILED
            self._report(Progress(Phase.PERFORMED, op.name, index, total, outcome))
            if outcome is not Outcome.SUCCESS:
                log.init.warning("Operation %s: %s; stopping", op.name, outcome.value)
                return outcome
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        result = Outcome.SUCCESS
        total = len(self._operations)
        while self._performed:
            op = self._performed.pop()
            index = self._operations.index(op)
            self._report(Progress(Phase.REVERTING, op.name, index, total))
            log.init.info("Reverting %s…", op.name)
            try:
                outcome = op.revert()
            except Exception:
                log.init.exception("Operation %s raised while reverting", op.name)
                outcome = Outcome.FAILED
            if not isinstance(outcome, Outcome):
                log.init.error("Operation %s returned %r, not an Outcome", op.name, outcome)
                outcome = Outcome.FAILED
            if outcome is Outcome.FAILED:
                result = Outcome.FAILED
            self._report(Progress(Phase.REVERTED, op.name, index, total, outcome))
        return result
