"""``POST /api/v1/token``: a launch token (or a current session token) for a session token."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from lockdown.session import tokens
from lockdown.session.tokens import TokenType
from lockdown_server import exams
from lockdown_server.api.deps import service_of, unauthorized, verify_text
from lockdown_server.errors import ApiError
from lockdown_server.store import models

router = APIRouter(prefix="/api/v1", tags=["token"])


class TokenRequest(BaseModel):
    launch_token: str | None = Field(default=None, max_length=4096)
    session_token: str | None = Field(default=None, max_length=4096)


class ExamInfo(BaseModel):
    id: str
    title: str


class CandidateInfo(BaseModel):
    id: str
    group: str
    name: str


class TokenReply(BaseModel):
    session_token: str
    expires_utc: str
    exam: ExamInfo
    candidate: CandidateInfo


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


@router.post(
    "/token",
    summary="Exchange a launch (or current session) token for a session token",
    response_model=TokenReply,
    responses={401: {"description": "forged, expired or wrong-type token"}},
)
async def exchange(request: Request, body: TokenRequest) -> TokenReply:
    service = service_of(request)
    if bool(body.launch_token) == bool(body.session_token):
        raise ApiError(400, "bad_request", "send either launch_token or session_token")
    if body.launch_token:
        given = verify_text(service, body.launch_token, {TokenType.LAUNCH})
        launch_jti = given.jti
    else:
        given = verify_text(service, body.session_token or "", {TokenType.SESSION})
        launch_jti = given.claim("launch")
    exam_id, user_id = given.claim("exam"), given.claim("sub")

    def lookup() -> tuple[exams.Exam | None, object]:
        with service.engine.connect() as conn:
            exam = exams.find(conn, exam_id)
            person = conn.execute(
                select(models.candidates).where(
                    (models.candidates.c.exam_id == exam_id)
                    & (models.candidates.c.user_id == user_id)
                )
            ).first()
        return exam, person

    exam, person = await run_in_threadpool(lookup)
    if exam is None or person is None:
        raise unauthorized("this candidate or exam is no longer on the service")
    now = time.time()
    lifetime = service.settings.session_token_s
    session_token = tokens.issue(
        service.keys.token,
        TokenType.SESSION,
        {"sub": user_id, "exam": exam_id, "launch": launch_jti},
        lifetime_s=lifetime,
        now=now,
    )
    return TokenReply(
        session_token=session_token,
        expires_utc=_utc(now + lifetime),
        exam=ExamInfo(id=exam.id, title=exam.title),
        candidate=CandidateInfo(
            id=user_id,
            group=getattr(person, "grp", ""),
            name=getattr(person, "name", ""),
        ),
    )
