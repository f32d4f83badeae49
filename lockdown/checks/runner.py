"""Run the checks in order, each within its time limit, and tell a listener as they go.

Each check runs on a worker thread of its own, and the runner waits for it at most its
time limit (``Check.time_limit``, else the ``checks.time_limit`` setting). A check past
its limit is reported as its own FAIL (``check.timed_out``), its thread is left behind
(a daemon: it cannot keep the process alive) and told through ``ctx.cancelled``; a
check that raises is its own FAIL (``check.crashed``, with the reason). Either way the
next check runs. A check that must ask the toolkit (``main_thread``) runs on the
runner's own thread; it cannot be interrupted, and if it took longer than its limit it
is reported as timed out all the same.

The listener (``progress``) is called before each check (with no outcome) and after it
(with its outcome), from the runner's thread: the command line prints a line, the check
screen will move its bar.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lockdown import log
from lockdown.checks.base import Check, CheckContext, CheckResult, Status


@dataclass(frozen=True)
class StepOutcome:
    """One check's result with what the runner knows about it."""

    check_id: str
    title_id: str
    blocking: bool
    result: CheckResult
    seconds: float

    @property
    def blocks(self) -> bool:
        """This step stops the exam: a blocking check that failed."""
        return self.blocking and self.result.status is Status.FAIL


#: (index from 0, how many, the check, its outcome — None when it starts)
Progress = Callable[[int, int, Check, StepOutcome | None], None]


def _crashed(exc: BaseException) -> CheckResult:
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return CheckResult(
        Status.FAIL,
        "check.crashed",
        {"reason": reason[:300]},
        "check.crashed_remedy",
        details={"error": reason[:1000]},
    )


def _timed_out(limit: float) -> CheckResult:
    return CheckResult(
        Status.FAIL,
        "check.timed_out",
        {"seconds": f"{limit:g}"},
        "check.timed_out_remedy",
        details={"time_limit_s": limit},
    )


def _guarded(check: Check, ctx: CheckContext) -> CheckResult:
    try:
        return check.run(ctx)
    except Exception as exc:
        log.checks.warning("Check %s raised", check.id, exc_info=True)
        return _crashed(exc)


def _on_worker(check: Check, ctx: CheckContext, limit: float) -> CheckResult:
    box: list[CheckResult] = []

    def work() -> None:
        box.append(_guarded(check, ctx))

    worker = threading.Thread(target=work, name=f"check-{check.id}", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive() or not box:
        ctx.cancelled.set()
        log.checks.warning("Check %s passed its time limit of %g s", check.id, limit)
        return _timed_out(limit)
    return box[0]


def run_check(check: Check, ctx: CheckContext, default_limit: float) -> StepOutcome:
    """Run one check within its time limit; never raises."""
    limit = check.time_limit if check.time_limit is not None else default_limit
    own = dataclasses.replace(ctx, cancelled=threading.Event())  # ``shared`` stays shared
    started = time.monotonic()
    if check.main_thread:
        result = _guarded(check, own)
        if time.monotonic() - started > limit:
            result = _timed_out(limit)
    else:
        result = _on_worker(check, own, limit)
    seconds = time.monotonic() - started
    log.checks.info("Check %s: %s (%.2f s)", check.id, result.status.value, seconds)
    return StepOutcome(check.id, check.title_id, check.blocking, result, seconds)


def run_checks(
    checks: Sequence[Check],
    ctx: CheckContext,
    *,
    time_limit: float,
    progress: Progress | None = None,
) -> list[StepOutcome]:
    """Run ``checks`` in order; every one gets its outcome whatever the others did."""
    outcomes: list[StepOutcome] = []
    for index, check in enumerate(checks):
        if progress is not None:
            progress(index, len(checks), check, None)
        outcome = run_check(check, ctx, time_limit)
        ctx.shared.setdefault("outcomes", {})[check.id] = outcome
        outcomes.append(outcome)
        if progress is not None:
            progress(index, len(checks), check, outcome)
    return outcomes
