"""The retention job (``lockdown-server retention``): delete what each exam keeps no longer.

A session expires when its exam's ``retention_days`` have passed since its last activity
(its close, else the last time it was seen). For each expired session the job deletes its
segment objects first, then, in one transaction, its rows (segments, events, anchors,
flags, checks, the session) and writes a ``retention_log`` row saying what went. A job
killed between the two steps leaves rows naming objects already gone; the next run
deletes them again (deleting a missing object is no error), so a run can always be
repeated. Several service processes may keep serving while it runs: an expired session
has not been seen for days.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, delete, func, select

from lockdown_server.service import Service
from lockdown_server.store import models

DAY: Final = 86400
log = logging.getLogger("lockdown_server")


@dataclass(frozen=True)
class Deleted:
    """One expired session and what was deleted with it."""

    exam_id: str
    session_id: str
    user_id: str
    last_activity: float
    objects: int
    bytes: int
    rows: int


def expired(conn: Connection, now: float) -> list[Any]:
    """The sessions whose exam's retention has run out at ``now``."""
    sessions, exams = models.sessions, models.exams
    activity = func.coalesce(sessions.c.closed_at, sessions.c.last_seen)
    query = (
        select(sessions.c.id, sessions.c.exam_id, sessions.c.user_id, activity.label("activity"))
        .join(exams, exams.c.id == sessions.c.exam_id)
        .where(activity + exams.c.retention_days * DAY < now)
        .order_by(activity)
    )
    return list(conn.execute(query))


def _delete_rows(conn: Connection, sid: str) -> int:
    count = 0
    for table in (
        models.segments,
        models.events,
        models.anchors,
        models.session_flags,
        models.checks,
    ):
        count += conn.execute(delete(table).where(table.c.session_id == sid)).rowcount
    count += conn.execute(delete(models.sessions).where(models.sessions.c.id == sid)).rowcount
    return count


def run(
    service: Service,
    *,
    now: float | None = None,
    dry_run: bool = False,
    report: Callable[[Deleted], None] = lambda _d: None,
) -> list[Deleted]:
    """Delete every expired session (objects, then rows); what was (or would be) deleted."""
    moment = time.time() if now is None else now
    with service.engine.connect() as conn:
        due = expired(conn, moment)
    done: list[Deleted] = []
    for session in due:
        with service.engine.connect() as conn:
            objects = list(
                conn.execute(
                    select(models.segments.c.object_key, models.segments.c.size).where(
                        models.segments.c.session_id == session.id
                    )
                )
            )
        size = sum(int(row.size) for row in objects)
        rows = 0
        if not dry_run:
            for row in objects:
                service.objects.delete(row.object_key)
            with service.engine.begin() as conn:
                rows = _delete_rows(conn, session.id)
                conn.execute(
                    models.retention_log.insert().values(
                        run_at=moment,
                        exam_id=session.exam_id,
                        session_id=session.id,
                        user_id=session.user_id,
                        last_activity=float(session.activity),
                        objects=len(objects),
                        bytes=size,
                        rows=rows,
                    )
                )
            log.info("retention: deleted session %s (%d objects)", session.id, len(objects))
        item = Deleted(
            session.exam_id,
            session.id,
            session.user_id,
            float(session.activity),
            len(objects),
            size,
            rows,
        )
        report(item)
        done.append(item)
    return done
