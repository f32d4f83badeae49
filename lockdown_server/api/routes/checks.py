"""``POST /api/v1/checks``: a system check report (probe or session token), idempotent by
the client's check id, kept with the session when it names one; at most 30 a minute per
exam and client address (429 with Retry-After)."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from lockdown.session.tokens import TokenType
from lockdown_server.api.deps import ProbeOrSessionToken, check_access, service_of, session_row
from lockdown_server.errors import ApiError
from lockdown_server.store import db, models

router = APIRouter(prefix="/api/v1", tags=["checks"])


class CheckIn(BaseModel):
    check_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$")
    session_id: str | None = Field(default=None, max_length=64)
    report: dict[str, Any]


class CheckReply(BaseModel):
    check_id: str
    session_id: str | None


@router.post(
    "/checks",
    summary="A system check report (idempotent by its id)",
    response_model=CheckReply,
    status_code=201,
    responses={
        200: {"description": "the same check id again", "model": CheckReply},
        429: {"description": "more than 30 reports a minute from one address for one exam"},
    },
)
async def post_check(
    request: Request,
    response: Response,
    body: CheckIn,
    token: ProbeOrSessionToken,
) -> CheckReply:
    service = service_of(request)
    address = request.client.host if request.client else "?"
    wait = service.checks.take(f"{token.claim('exam')}|{address}")
    if wait > 0:
        raise ApiError(
            429,
            "too_many_checks",
            "too many check reports; wait a little",
            retry_after=math.ceil(wait),
        )

    def write() -> int:
        with service.engine.begin() as conn:
            if body.session_id is not None:
                row = session_row(conn, body.session_id)
                if token.typ is TokenType.SESSION:
                    check_access(token, row)
                elif row.exam_id != token.claim("exam"):
                    raise ApiError(403, "forbidden", "this session belongs to another exam")
            inserted = db.insert_once(
                conn,
                models.checks,
                {
                    "id": body.check_id,
                    "exam_id": token.claim("exam"),
                    "session_id": body.session_id,
                    "report": json.dumps(body.report),
                    "client_address": address,
                    "received_at": time.time(),
                },
            )
        return 201 if inserted else 200

    response.status_code = await run_in_threadpool(write)
    return CheckReply(check_id=body.check_id, session_id=body.session_id)
