"""``POST /api/v1/sessions/{sid}/events``: journal events, deduplicated by the client's ids,
with the chain heads of the journal and the spool anchored at the time received."""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lockdown_server.api.deps import (
    SessionOrUploadToken,
    check_access,
    service_of,
    session_row,
    touch,
)
from lockdown_server.api.routes.sessions import Head, anchor
from lockdown_server.store import db, models

router = APIRouter(prefix="/api/v1", tags=["events"])


class EventIn(BaseModel):
    id: str = Field(min_length=1, max_length=100)
    record: dict[str, Any]


class EventBatch(BaseModel):
    events: list[EventIn] = Field(default_factory=list, max_length=5000)
    heads: dict[Literal["journal", "spool"], Head] = Field(default_factory=dict)


class EventReply(BaseModel):
    accepted: int
    duplicates: int


@router.post(
    "/sessions/{sid}/events",
    summary="Journal events (deduplicated) and chain heads (anchored)",
    response_model=EventReply,
)
async def post_events(
    request: Request,
    sid: str,
    body: EventBatch,
    token: SessionOrUploadToken,
) -> EventReply:
    service = service_of(request)

    def write() -> EventReply:
        now = time.time()
        accepted = duplicates = 0
        with service.engine.begin() as conn:
            check_access(token, session_row(conn, sid))
            for event in body.events:
                values = {
                    "session_id": sid,
                    "client_id": event.id,
                    "record": json.dumps(event.record, sort_keys=True, separators=(",", ":")),
                    "received_at": now,
                }
                if db.insert_once(conn, models.events, values):
                    accepted += 1
                else:
                    duplicates += 1
            anchor(conn, sid, dict(body.heads), now)
            touch(conn, sid, now)
        return EventReply(accepted=accepted, duplicates=duplicates)

    return await run_in_threadpool(write)
