"""``lockdown check [--config FILE] [--json] [--send]``: the system check on the command line.

Without ``--config`` it checks what a proctored exam recording camera, microphone and
screen needs, under the organisation's settings, and skips the service steps (no
service is known); with ``--config FILE`` it checks for that exam (its streams, its
policies, its proctoring service and probe token). Text mode prints each step as it
finishes; ``--json`` prints one document at the end (``docs/checks.md``). ``--send``
posts the document to the exam's service (``POST /api/v1/checks``), which keeps it with
the exam (or the session). Exit 0 when nothing blocking failed, 1 when something did
(or the report could not be sent), 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from lockdown import log
from lockdown.checks import needs, report
from lockdown.checks.base import Check, CheckContext, Service
from lockdown.checks.devices import (
    CameraCheck,
    CameraInventoryCheck,
    MicrophoneCheck,
    SampleRecordingCheck,
)
from lockdown.checks.machine import (
    AppCheck,
    DisplaysCheck,
    FreeDiskCheck,
    IsolationCheck,
    ProhibitedAppsCheck,
    RemoteSessionCheck,
    ScreenCaptureCheck,
    VirtualMachineCheck,
)
from lockdown.checks.network import BandwidthCheck, ClockCheck, ServiceCheck, UploadCheck
from lockdown.checks.runner import StepOutcome, run_checks
from lockdown.errors import UserError


def all_checks() -> list[Check]:
    """Every step, in the order of the report (``docs/checks.md``)."""
    return [
        AppCheck(),
        ServiceCheck(),
        ClockCheck(),
        DisplaysCheck(),
        VirtualMachineCheck(),
        RemoteSessionCheck(),
        IsolationCheck(),
        ProhibitedAppsCheck(),
        FreeDiskCheck(),
        CameraInventoryCheck(),
        CameraCheck(),
        MicrophoneCheck(),
        SampleRecordingCheck(),
        ScreenCaptureCheck(),
        UploadCheck(),
        BandwidthCheck(),
    ]


def _load(args: argparse.Namespace) -> tuple[Mapping[str, Any], str | None, str | None]:
    """The effective settings, the exam file checked for and its title."""
    from lockdown.config import examfile
    from lockdown.config.settings import choose_organisation, layer

    org = choose_organisation(getattr(args, "organisation", None))
    given = getattr(args, "config", None)
    if not given:
        return layer(org, {}), None, None
    from lockdown.config import seb

    data = examfile.read_file(Path(given))
    if Path(given).suffix.lower() == ".seb" or seb.looks_like_seb(data):
        raise UserError(
            f"{given}: a Safe Exam Browser file; `lockdown check --config` takes a Lockdown "
            "exam configuration (.toml): ask the exam organiser for it"
        )
    config = examfile.load_bytes(data, org, origin=str(given))
    return layer(org, config.values), str(given), config.meta.title or None


def probe_token(settings: Mapping[str, Any]) -> str:
    """The exam's probe token (``service.probe_token``), empty when it has none."""
    return str(settings["service.probe_token"])


def context(args: argparse.Namespace) -> tuple[CheckContext, str | None]:
    settings, origin, title = _load(args)
    streams = needs.exam_streams(settings) if origin else needs.ALL_STREAMS
    url = str(settings["service.url"])
    service = Service(url, probe_token(settings)) if url else None
    return CheckContext(settings, streams, args.paths.spool, service, origin), title


def prompt_stream(as_json: bool) -> TextIO | None:
    """Where the microphone step's sentence goes: the report's own stream as text; with
    ``--json`` stderr, and only when a person is at that terminal (a script that keeps
    stderr as its log gets only log records there)."""
    if not as_json:
        return sys.stdout
    return sys.stderr if sys.stderr.isatty() else None


@contextmanager
def _stdout_for_report_only(active: bool) -> Iterator[None]:
    """While checks run, native libraries' stray output goes to stderr, not the JSON."""
    if not active:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _send(ctx: CheckContext, doc: Mapping[str, Any]) -> dict[str, Any]:
    from lockdown.session import probe

    assert ctx.service is not None
    check_id = str(uuid.uuid4())
    reply = probe.send_checks(
        ctx.service.url,
        ctx.service.probe_token,
        ctx.settings,
        check_id=check_id,
        report=doc,
        timeout=float(ctx.settings["checks.time_limit"]),
    )
    if reply.ok:
        log.checks.info("Check report %s sent to %s", check_id, ctx.service.url)
        return {"ok": True, "check_id": check_id, "error": None}
    return {"ok": False, "check_id": check_id, "error": reply.reason}


def _gui(ctx: CheckContext, title: str | None) -> int:
    """``--gui``: the check screen; 0 when Continue was pressed (nothing blocking failed)."""
    from lockdown.ui.display import require_display

    require_display()  # before Qt: without a display its xcb plugin aborts the process
    from lockdown.app import qt_application
    from lockdown.ui.checkscreen import run_screen

    qt_application()
    return 0 if run_screen(ctx, all_checks(), title=title) else 1


def main(args: argparse.Namespace) -> int:
    """Run the check; print the report; 0 nothing blocking failed, 1 something did."""
    from lockdown.texts import text

    ctx, title = context(args)
    if getattr(args, "gui", False):
        return _gui(ctx, title)
    as_json = bool(getattr(args, "json", False))
    send = bool(getattr(args, "send", False))
    if send and (ctx.service is None or not ctx.service.probe_token):
        raise UserError(
            "--send needs an exam whose configuration names a proctoring service and a "
            "probe token (service.url, service.probe_token); pass it with --config FILE"
        )
    started = datetime.now(UTC)
    checks = all_checks()

    def progress(index: int, total: int, check: Check, outcome: StepOutcome | None) -> None:
        if outcome is None and check.id == "microphone" and "microphone" in ctx.streams:
            # the candidate reads while the step listens
            prompt = prompt_stream(as_json)
            if prompt is not None:
                print(text("check.microphone.sentence"), file=prompt, flush=True)
        if outcome is not None and not as_json:
            print("\n".join(report.step_lines(index + 1, outcome)), flush=True)

    if not as_json:
        print("\n".join(report.header_lines(ctx, title)), flush=True)
    if not getattr(args, "debug", False):
        # what the guards warn about (no display, a gap) is in the report itself
        logging.getLogger("lockdown.guards").setLevel(logging.ERROR)
    with _stdout_for_report_only(as_json):
        outcomes = run_checks(
            checks, ctx, time_limit=float(ctx.settings["checks.time_limit"]), progress=progress
        )
        doc = report.document(outcomes, ctx, exam_title=title, started=started)
        sent = _send(ctx, doc) if send else None
    code = doc["exit_code"]
    if sent is not None and not sent["ok"]:
        code = 1
    if as_json:
        out = dict(doc)
        if sent is not None:
            out["sent"] = sent
            out["ok"] = doc["ok"] and sent["ok"]
            out["exit_code"] = code
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.summary_lines(outcomes)))
        if sent is not None:
            print(
                text("check.report.sent", check_id=sent["check_id"])
                if sent["ok"]
                else text("check.report.not_sent", reason=sent["error"])
            )
    return int(code)
