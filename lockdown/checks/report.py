"""The system check's report: text for people, and one JSON document for machines.

The JSON document (``--json``, and what ``--send`` posts to the service) follows the
schema in ``docs/check-report.schema.json``, named by ``schema`` and versioned by
``schema_version`` (:data:`SCHEMA_VERSION`): a new field may appear within a version,
a change of meaning or a removal is a new version. ``docs/checks.md`` describes it.
Every sentence in either form comes from :mod:`lockdown.texts` by id; the JSON carries
the ids beside the texts, so a service can show them in another language.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from lockdown import __version__, build
from lockdown.checks.base import CheckContext, Status
from lockdown.checks.runner import StepOutcome
from lockdown.texts import text

SCHEMA: Final = "lockdown-check-report"
SCHEMA_VERSION: Final = 1
STATUS_TEXT: Final = {s: f"check.status.{s.value}" for s in Status}


def exit_code(outcomes: Sequence[StepOutcome]) -> int:
    """0 when nothing blocking failed, 1 when something did."""
    return 1 if any(o.blocks for o in outcomes) else 0


def _message(outcome: StepOutcome) -> str:
    return text(outcome.result.message_id, **outcome.result.values)


def _remedy(outcome: StepOutcome) -> str | None:
    remedy = outcome.result.remedy_id
    return text(remedy, **outcome.result.values) if remedy else None


def next_step_id(outcomes: Sequence[StepOutcome]) -> str:
    if any(o.blocks for o in outcomes):
        return "check.next.fix"
    if any(o.result.status in (Status.WARN, Status.FAIL) for o in outcomes):
        return "check.next.warnings"
    return "check.next.ready"


def _plain(value: Any) -> Any:
    """Details as JSON: mappings, lists and scalars; anything else as text."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def document(
    outcomes: Sequence[StepOutcome],
    ctx: CheckContext,
    *,
    exam_title: str | None = None,
    started: datetime | None = None,
) -> dict[str, Any]:
    """The JSON report (see the module docstring and ``docs/checks.md``)."""
    from lockdown.checks import needs

    current = build.current()
    counts = {s.value: sum(1 for o in outcomes if o.result.status is s) for s in Status}
    steps = [
        {
            "id": o.check_id,
            "title": text(o.title_id),
            "blocking": o.blocking,
            "status": o.result.status.value,
            "message_id": o.result.message_id,
            "message": _message(o),
            "remedy_id": o.result.remedy_id,
            "remedy": _remedy(o),
            "measured": _plain(o.result.measured),
            "details": _plain(o.result.details),
            "seconds": round(o.seconds, 3),
        }
        for o in outcomes
    ]
    code = exit_code(outcomes)
    next_id = next_step_id(outcomes)
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "ok": code == 0,
        "exit_code": code,
        "time_utc": (started or datetime.now(UTC)).isoformat(timespec="seconds"),
        "lockdown": {
            "version": __version__,
            "build": current.kind,
            "identity": current.identity,
        },
        "os": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "exam": {
            "config": ctx.exam_origin,
            "title": exam_title,
            "streams": list(ctx.streams),
            "recording_kbps": round(needs.recording_kbps(ctx.settings, ctx.streams), 1),
        },
        "service": {"url": ctx.service.url} if ctx.service is not None else None,
        "checks": steps,
        "summary": {
            **counts,
            "blocking_failed": [o.check_id for o in outcomes if o.blocks],
            "next_id": next_id,
            "next": text(next_id),
        },
    }


def _measured(values: Mapping[str, Any]) -> str:
    shown = [f"{k} {v}" for k, v in values.items() if v is not None]
    return f" [{', '.join(shown)}]" if shown else ""


def step_lines(index: int, outcome: StepOutcome) -> list[str]:
    """One step of the text report: number, name, result, what was found, what to do."""
    status = text(STATUS_TEXT[outcome.result.status])
    title = text(outcome.title_id)
    lines = [
        f"{index:>2}. {title:<28} {status:<7} {_message(outcome)}{_measured(outcome.result.measured)}"
    ]
    remedy = _remedy(outcome)
    if remedy and outcome.result.status in (Status.FAIL, Status.WARN):
        lines.append(f"    {text('check.report.what_to_do')} {remedy}")
    return lines


def header_lines(ctx: CheckContext, exam_title: str | None) -> list[str]:
    current = build.current()
    lines = [
        text(
            "check.report.header",
            version=__version__,
            build=current.kind,
            system=f"{platform.system()} {platform.release()}",
        )
    ]
    streams = ", ".join(ctx.streams) or text("check.report.no_streams")
    if ctx.exam_origin is None:
        lines.append(text("check.report.no_exam", streams=streams))
    else:
        lines.append(text("check.report.exam", exam=exam_title or ctx.exam_origin, streams=streams))
    if ctx.service is None:
        lines.append(text("check.report.no_service"))
    else:
        lines.append(text("check.report.service", url=ctx.service.url))
    return [*lines, ""]


def summary_lines(outcomes: Sequence[StepOutcome]) -> list[str]:
    counts = {s: sum(1 for o in outcomes if o.result.status is s) for s in Status}
    failed = [text(o.title_id) for o in outcomes if o.blocks]
    lines = [
        "",
        text(
            "check.report.summary",
            passed=counts[Status.PASS],
            warned=counts[Status.WARN]
            + sum(1 for o in outcomes if o.result.status is Status.FAIL and not o.blocking),
            failed=len(failed),
            skipped=counts[Status.SKIP],
        ),
    ]
    if failed:
        lines.append(text("check.report.failed", steps=", ".join(failed)))
    lines.append(text(next_step_id(outcomes)))
    return lines
