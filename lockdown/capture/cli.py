"""``lockdown record --seconds N --out DIR``: a short test recording for support and IT.

Records the configured sources into a spool in DIR (with a journal of what happened,
``journal.jsonl``), prints progress every second and a summary at the end. Without
``--config`` it records the generated camera test pattern, the default microphone when
there is one, and the screen when there is a display.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lockdown.capture.base import State, Stream
from lockdown.capture.operation import SWITCHES, ProctoringOperation
from lockdown.capture.sources import SourceUnavailable, find_input_device
from lockdown.errors import UserError
from lockdown.events import Event, Journal
from lockdown.lifecycle.base import Outcome

MAX_SECONDS: Final = 3600.0
JOURNAL_FILE: Final = "journal.jsonl"


def _recipient(args: argparse.Namespace, settings: Mapping[str, Any]) -> Any:
    """``--recipient FILE|KEY``, else the organisation's ``proctoring.recipient_key``."""
    from lockdown.upload import crypto

    given = getattr(args, "recipient", None) or settings["proctoring.recipient_key"]
    if not given:
        raise UserError(
            "no recipient key: a recording is sealed for the one who may open it; pass "
            "--recipient NAME.pub (from `lockdown keys generate --recipient --out NAME`) or "
            "set proctoring.recipient_key in the organisation file"
        )
    try:
        return crypto.load_recipient(str(given))
    except crypto.SpoolKeyError as exc:
        raise UserError(f"--recipient: {exc}") from None


def _settings(args: argparse.Namespace) -> Mapping[str, Any]:
    from lockdown.config.settings import choose_organisation, layer

    org = choose_organisation(getattr(args, "organisation", None))
    config_path = getattr(args, "config", None)
    if not config_path:
        return layer(org, {})
    from lockdown.config import examfile

    return layer(org, examfile.load_file(Path(config_path), org).values)


def _streams(args: argparse.Namespace, settings: Mapping[str, Any]) -> tuple[Stream, ...]:
    if getattr(args, "config", None):
        configured = tuple(stream for key, stream in SWITCHES if settings[key])
        if not configured:
            raise UserError(
                f"{args.config}: records no stream (proctoring.camera, .microphone and "
                ".screen are all off); switch one on or leave out --config"
            )
        return configured
    streams = [Stream.CAMERA]
    try:
        _, name = find_input_device(str(settings["proctoring.microphone_device"]))
        streams.append(Stream.MICROPHONE)
        print(f"microphone: {name}")
    except SourceUnavailable as exc:
        print(f"microphone: not recorded ({exc})")
    if sys.platform != "linux" or os.environ.get("DISPLAY"):
        streams.append(Stream.SCREEN)
    else:
        print("screen: not recorded (no display: DISPLAY is not set)")
    return tuple(streams)


class _DefaultCamera(Mapping[str, Any]):
    """The settings with the camera source set to the test pattern."""

    def __init__(self, base: Mapping[str, Any]) -> None:
        self._base = base

    def __getitem__(self, key: str) -> Any:
        return "pattern" if key == "proctoring.camera_source" else self._base[key]

    def __iter__(self) -> Any:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


def _details(payload: Mapping[str, Any]) -> str:
    """``key=value`` of a payload, the stream left out (it is shown already)."""
    return ", ".join(f"{key}={value}" for key, value in payload.items() if key != "stream")


def main_record(args: argparse.Namespace) -> int:
    """Record for ``args.seconds`` into the spool folder ``args.out``; 0 when every stream
    recorded, 1 when one did not (the summary says which and why)."""
    from lockdown.upload.base import SpoolError
    from lockdown.upload.spool import Spool

    seconds = float(args.seconds)
    if not 0 < seconds <= MAX_SECONDS:
        raise UserError(f"--seconds must be between 0 and {MAX_SECONDS:.0f}, not {args.seconds}")
    settings = _settings(args)
    if not getattr(args, "config", None):
        settings = _DefaultCamera(settings)
    streams = _streams(args, settings)
    recipient = _recipient(args, settings)
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        journal = Journal.open(out / JOURNAL_FILE)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the recording folder ({exc.strerror})") from None
    hints: list[Event] = []

    def report(event: Event) -> None:
        journal.append(event)
        if event.type.startswith(
            (
                "hint.",
                "recorder.unavailable",
                "recorder.lost",
                "recorder.failed",
                "recorder.segment_lost",
                "recorder.stop_timeout",
                "microphone.",
                "clock.",
                "proctoring.not_started",
            )
        ):
            hints.append(event)
            payload = event.payload
            detail = payload.get("reason") or payload.get("utc") or _details(payload)
            print(f"  {event.type} ({payload.get('stream', 'all')}): {detail}")

    try:
        spool = Spool.open(
            out,
            report=report,
            max_bytes=int(settings["proctoring.spool_max_mb"]) << 20,
            recipient=recipient,
        )
    except SpoolError as exc:
        journal.close()
        raise UserError(f"cannot record into {out}: {exc}") from None
    operation = ProctoringOperation(settings, report, spool, streams=streams)
    print(
        f"recording {seconds:g} s of {', '.join(s.value for s in streams)} into {out} "
        f"(camera: {settings['proctoring.camera_source']})"
    )
    try:
        if operation.perform() is not Outcome.SUCCESS:
            print("lockdown: the recorders could not be set up; see the log", file=sys.stderr)
            return 1
        started = time.monotonic()
        next_tick = started + 1
        while (now := time.monotonic()) < started + seconds:
            time.sleep(max(0.0, min(next_tick, started + seconds) - now))
            if time.monotonic() >= next_tick:
                next_tick += 1
                parts = [
                    f"{r.kind.value} {r.health().state.value} {r.stats.segments} seg"
                    for r in operation.recorders
                ]
                print(f"  {time.monotonic() - started:4.0f}/{seconds:g} s  " + ", ".join(parts))
        recorders = list(operation.recorders)
        health = {r.kind: r.health() for r in recorders}
    finally:
        operation.revert()
        spool.close()
        journal.close()
    print("summary:")
    ok = True
    for recorder in recorders:
        stats = recorder.stats
        state = health[recorder.kind]
        line = (
            f"  {recorder.kind.value:<10} {stats.segments} segments, {stats.seconds:.1f} s, "
            f"{stats.bytes / 1024:.0f} KiB ({recorder.backend or 'no source'})"
        )
        if state.state is not State.RUNNING or stats.segments == 0:
            ok = False
            line += f": {state.state.value}, {state.reason or 'nothing recorded'}"
        if stats.failures:
            # an unexpected error, even one the recorder recovered from, needs a look
            ok = False
            if stats.last_failure == state.reason:
                line += f" ({stats.failures} failed attempt(s))"
            else:
                line += f"; failed {stats.failures} time(s), last: {stats.last_failure}"
        if stats.lost_segments:
            line += f"; {stats.lost_segments} segment(s) lost (see the journal)"
        print(line)
    print(f"  hints and problems: {len(hints)} (journal: {out / JOURNAL_FILE})")
    print(f"check it with: lockdown spool verify {out}")
    return 0 if ok else 1
