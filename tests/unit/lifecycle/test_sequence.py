"""OperationSequence semantics: order, reverse revert of what ran, outcomes, exceptions, progress."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest

from lockdown.lifecycle.base import Outcome, Phase, Progress
from lockdown.lifecycle.sequence import OperationSequence


@dataclass
class Step:
    name: str
    calls: list[str]
    perform_result: Outcome | Exception | object = Outcome.SUCCESS
    revert_result: Outcome | Exception | object = Outcome.SUCCESS
    performed: int = field(default=0)

    def perform(self) -> Outcome:
        self.calls.append(f"perform {self.name}")
        self.performed += 1
        if isinstance(self.perform_result, Exception):
            raise self.perform_result
        return self.perform_result  # type: ignore[return-value]

    def revert(self) -> Outcome:
        self.calls.append(f"revert {self.name}")
        if isinstance(self.revert_result, Exception):
            raise self.revert_result
        return self.revert_result  # type: ignore[return-value]


def steps(calls: list[str], *specs: tuple[object, object]) -> list[Step]:
    return [Step(f"op{i}", calls, p, r) for i, (p, r) in enumerate(specs)]


OK = Outcome.SUCCESS


def test_performs_in_order_and_reverts_in_reverse() -> None:
    calls: list[str] = []
    seq = OperationSequence(steps(calls, (OK, OK), (OK, OK), (OK, OK)))
    assert seq.perform() is Outcome.SUCCESS
    assert seq.performed == ("op0", "op1", "op2")
    assert seq.revert() is Outcome.SUCCESS
    assert calls == [
        "perform op0",
        "perform op1",
        "perform op2",
        "revert op2",
        "revert op1",
        "revert op0",
    ]
    assert seq.performed == ()


@pytest.mark.parametrize("stop", [Outcome.ABORTED, Outcome.FAILED])
def test_stops_at_first_unsuccessful_step_and_reverts_only_what_ran(stop: Outcome) -> None:
    calls: list[str] = []
    ops = steps(calls, (OK, OK), (stop, OK), (OK, OK))
    seq = OperationSequence(ops)
    assert seq.perform() is stop
    assert ops[2].performed == 0
    assert seq.revert() is Outcome.SUCCESS
    assert calls == ["perform op0", "perform op1", "revert op1", "revert op0"]


def test_exception_in_perform_becomes_failed_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    seq = OperationSequence(steps(calls, (OK, OK), (RuntimeError("boom"), OK)))
    with caplog.at_level(logging.ERROR, logger="lockdown.init"):
        assert seq.perform() is Outcome.FAILED
    assert any("op1 raised while performing" in r.getMessage() for r in caplog.records)
    assert seq.revert() is Outcome.SUCCESS
    assert calls[-2:] == ["revert op1", "revert op0"]


def test_non_outcome_result_is_treated_as_failed() -> None:
    calls: list[str] = []
    seq = OperationSequence(steps(calls, (None, OK), (OK, OK)))
    assert seq.perform() is Outcome.FAILED
    assert calls == ["perform op0"]


def test_revert_continues_past_failures_and_reports_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    seq = OperationSequence(
        steps(calls, (OK, OK), (OK, ValueError("stuck")), (OK, Outcome.FAILED), (OK, OK))
    )
    assert seq.perform() is Outcome.SUCCESS
    with caplog.at_level(logging.ERROR, logger="lockdown.init"):
        assert seq.revert() is Outcome.FAILED
    assert calls[4:] == ["revert op3", "revert op2", "revert op1", "revert op0"]
    assert any("op1 raised while reverting" in r.getMessage() for r in caplog.records)


def test_aborted_revert_is_not_a_failure() -> None:
    calls: list[str] = []
    seq = OperationSequence(steps(calls, (OK, Outcome.ABORTED)))
    seq.perform()
    assert seq.revert() is Outcome.SUCCESS


def test_revert_twice_reverts_nothing_more() -> None:
    calls: list[str] = []
    seq = OperationSequence(steps(calls, (OK, OK)))
    seq.perform()
    seq.revert()
    seq.revert()
    assert calls == ["perform op0", "revert op0"]


def test_revert_without_perform_does_nothing() -> None:
    calls: list[str] = []
    assert OperationSequence(steps(calls, (OK, OK))).revert() is Outcome.SUCCESS
    assert calls == []


def test_empty_sequence_succeeds() -> None:
    seq = OperationSequence([])
    assert seq.perform() is Outcome.SUCCESS
    assert seq.revert() is Outcome.SUCCESS


def test_progress_is_reported_around_each_step() -> None:
    calls: list[str] = []
    seen: list[Progress] = []
    seq = OperationSequence(steps(calls, (OK, OK), (Outcome.ABORTED, OK)), progress=seen.append)
    seq.perform()
    seq.revert()
    assert [(p.phase, p.name, p.index, p.total, p.outcome) for p in seen] == [
        (Phase.PERFORMING, "op0", 0, 2, None),
        (Phase.PERFORMED, "op0", 0, 2, OK),
        (Phase.PERFORMING, "op1", 1, 2, None),
        (Phase.PERFORMED, "op1", 1, 2, Outcome.ABORTED),
        (Phase.REVERTING, "op1", 1, 2, None),
        (Phase.REVERTED, "op1", 1, 2, OK),
        (Phase.REVERTING, "op0", 0, 2, None),
        (Phase.REVERTED, "op0", 0, 2, OK),
    ]


def test_failing_progress_callback_does_not_break_the_sequence() -> None:
    calls: list[str] = []

    def explode(_: Progress) -> None:
        raise RuntimeError("ui gone")

    seq = OperationSequence(steps(calls, (OK, OK)), progress=explode)
    assert seq.perform() is Outcome.SUCCESS
    assert seq.revert() is Outcome.SUCCESS


def test_perform_after_partial_run_resumes_without_repeating() -> None:
    calls: list[str] = []
    ops = steps(calls, (OK, OK), (Outcome.ABORTED, OK))
    seq = OperationSequence(ops)
    assert seq.perform() is Outcome.ABORTED
    ops[1].perform_result = OK
    seq.revert()
    assert seq.perform() is Outcome.SUCCESS
    assert calls == [
        "perform op0",
        "perform op1",
        "revert op1",
        "revert op0",
        "perform op0",
        "perform op1",
    ]
