"""The runner: order, progress, a check that raises or hangs is its own FAIL, the rest go on."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lockdown.checks.base import Check, CheckContext, CheckDefaults, CheckResult, Status
from lockdown.checks.report import exit_code
from lockdown.checks.runner import StepOutcome, run_checks
from lockdown.config.settings import Settings


def _ctx(tmp_path: Path) -> CheckContext:
    return CheckContext(Settings.defaults(), ("camera",), tmp_path)


class Passes(CheckDefaults):
    title_id = "check.app.title"

    def __init__(self, name: str) -> None:
        self.id = name
        self.thread = ""

    def run(self, ctx: CheckContext) -> CheckResult:
        self.thread = threading.current_thread().name
        return CheckResult(Status.PASS, "check.app.ok", {"version": "1", "os": "x"})


class Raises(CheckDefaults):
    id = "raises"
    title_id = "check.app.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        raise RuntimeError("the sensor fell off")


class Hangs(CheckDefaults):
    id = "hangs"
    title_id = "check.app.title"
    time_limit = 0.3

    def __init__(self) -> None:
        self.told = threading.Event()
        self.released = threading.Event()

    def run(self, ctx: CheckContext) -> CheckResult:
        ctx.cancelled.wait(30)  # a check that listens stops when told; others just hang
        self.told.set()
        # hangs on until its test ends, then answers late, quietly (a late exception's
        # logged traceback would run ast.parse beside another test's: CPython 3.11 bug)
        self.released.wait(30)
        return CheckResult(Status.PASS, "check.app.ok", {"version": "late", "os": "x"})


class FailsQuietly(CheckDefaults):
    id = "bandwidthish"
    title_id = "check.bandwidth.title"
    blocking = False

    def run(self, ctx: CheckContext) -> CheckResult:
        return CheckResult(Status.FAIL, "check.bandwidth.no_upload")


def test_a_raising_and_a_hanging_check_fail_on_their_own_and_the_rest_still_run(
    tmp_path: Path,
) -> None:
    first, last, hangs = Passes("first"), Passes("last"), Hangs()
    seen: list[tuple[int, str, str | None]] = []

    def progress(index: int, total: int, check: Check, outcome: StepOutcome | None) -> None:
        assert total == 4
        seen.append((index, check.id, outcome.result.status.value if outcome else None))

    started = time.monotonic()
    outcomes = run_checks(
        [first, Raises(), hangs, last], _ctx(tmp_path), time_limit=5.0, progress=progress
    )
    took = time.monotonic() - started

    assert [o.result.status for o in outcomes] == [
        Status.PASS,
        Status.FAIL,
        Status.FAIL,
        Status.PASS,
    ]
    crashed, timed_out = outcomes[1].result, outcomes[2].result
    assert crashed.message_id == "check.crashed"
    assert crashed.values["reason"] == "RuntimeError: the sensor fell off"
    assert crashed.remedy_id == "check.crashed_remedy"
    assert timed_out.message_id == "check.timed_out"
    assert timed_out.values["seconds"] == "0.3"  # its own limit, not the runner's 5 s
    assert 0.3 <= outcomes[2].seconds < 3.0
    assert took < 4.0, "the runner waited for the hanging check"
    assert hangs.told.wait(2), "the abandoned check was not told through ctx.cancelled"
    assert seen == [
        (0, "first", None),
        (0, "first", "pass"),
        (1, "raises", None),
        (1, "raises", "fail"),
        (2, "hangs", None),
        (2, "hangs", "fail"),
        (3, "last", None),
        (3, "last", "pass"),
    ]
    assert first.thread.startswith("check-") and first.thread != threading.current_thread().name
    assert exit_code(outcomes) == 1
    hangs.released.set()


def test_a_main_thread_check_runs_on_the_runners_thread(tmp_path: Path) -> None:
    check = Passes("toolkit")
    check.main_thread = True
    run_checks([check], _ctx(tmp_path), time_limit=5.0)
    assert check.thread == threading.current_thread().name


def test_a_warning_only_check_never_blocks(tmp_path: Path) -> None:
    outcomes = run_checks([Passes("a"), FailsQuietly()], _ctx(tmp_path), time_limit=5.0)
    assert outcomes[1].result.status is Status.FAIL
    assert not outcomes[1].blocks
    assert exit_code(outcomes) == 0


def test_checks_pass_measurements_on_through_the_context(tmp_path: Path) -> None:
    class Writes(CheckDefaults):
        id = "writes"
        title_id = "check.upload.title"

        def run(self, ctx: CheckContext) -> CheckResult:
            ctx.shared["upload"] = 42
            return CheckResult(Status.PASS, "check.service.none")

    class Reads(CheckDefaults):
        id = "reads"
        title_id = "check.bandwidth.title"

        def run(self, ctx: CheckContext) -> CheckResult:
            assert ctx.shared["upload"] == 42
            assert ctx.shared["outcomes"]["writes"].result.status is Status.PASS
            return CheckResult(Status.PASS, "check.service.none")

    outcomes = run_checks([Writes(), Reads()], _ctx(tmp_path), time_limit=5.0)
    assert [o.result.status for o in outcomes] == [Status.PASS, Status.PASS]
