"""``lockdown upload``: send what earlier sessions left in their spools to the service.

Each spool that carries a ``service.json`` (written when its session was created) is
drained with that session's upload token: the segments the service does not hold yet,
then the session's journal records, then the session's close. The session keys are not
needed (segments travel encrypted, as stored). Exit code 0 when everything was sent,
1 when something stays for later (the service unreachable, the deadline passed), 2 when
there is no spool to send.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from lockdown import log
from lockdown.errors import UserError
from lockdown.events import Event
from lockdown.session.link import earlier_spools, uploader_for
from lockdown.session.state import SessionRecord
from lockdown.upload.base import SpoolError


class NothingToUpload(UserError):
    """No spool with a proctoring session was found."""


def _report(event: Event) -> None:
    log.upload.info("%s %s", event.type, json.dumps(event.payload, default=str))


def _spools(where: Path) -> list[tuple[Path, SessionRecord]]:
    record = SessionRecord.load(where)
    if record is not None:
        if not record.upload_token:
            raise NothingToUpload(
                f"{where}: its session was never created at the service, so it cannot be "
                "sent; keep the folder and tell your exam organiser"
            )
        return [(where, record)]
    if not where.is_dir():
        raise NothingToUpload(f"{where}: no such folder; give a spool folder or a folder of spools")
    return earlier_spools(where)


def main_upload(args: argparse.Namespace) -> int:
    where = Path(args.spool) if args.spool else args.paths.spool
    found = _spools(where)
    if not found:
        raise NothingToUpload(f"{where}: no recording waits to be sent")
    end = time.monotonic() + max(0.0, float(args.deadline))
    results: list[dict[str, Any]] = []
    for folder, record in found:
        try:
            uploader = uploader_for(folder, record, _report)
        except SpoolError as exc:
            print(f"lockdown: {exc}", file=sys.stderr)
            results.append(
                {
                    "spool": str(folder),
                    "session_id": record.session_id,
                    "error": str(exc),
                    "segments_left": -1,
                    "events_left": -1,
                }
            )
            continue
        uploader.start()
        try:
            result = uploader.drain(max(0.0, end - time.monotonic()), close=True)
        finally:
            uploader.stop()
            uploader.close_source()
        if result.complete and result.closed:
            record.finished(folder)
        results.append(
            {
                "spool": str(folder),
                "session_id": record.session_id,
                "service": record.url,
                "segments_left": result.segments_left,
                "events_left": result.events_left,
                "conflicts": result.conflicts,
                "sent": uploader.acknowledged,
                "closed": result.closed,
            }
        )
        if not args.json:
            state = (
                "all sent"
                if result.complete
                else (
                    f"{result.segments_left} segment(s) and {result.events_left} journal record(s) "
                    "left for later"
                )
            )
            print(
                f"{folder}: session {record.session_id}: {uploader.acknowledged} segment(s) sent, {state}"
            )
    complete = all(r["segments_left"] == 0 and r["events_left"] == 0 for r in results)
    if args.json:
        print(json.dumps({"ok": complete, "spools": results}, indent=2))
    return 0 if complete else 1
