"""Sessions: create (idempotent by the client's id), the manifest, and close.

``POST /api/v1/sessions`` with the same id and candidate again answers 200 (a retry);
another live session of the same candidate and exam (seen within the presence window)
gets 409 ``session_active`` — unless the request proves it resumes that session: a
restarted client names its earlier session (``resumes``) and sends that session's upload
token (``resume_token``, kept beside the earlier spool). The new session is then linked
(``resumed_from``) and the earlier one superseded: it no longer counts as alive, and its
upload token still drains its spool. A proof that does not verify is ignored (the usual
rule applies). Sessions from development builds are flagged ``development_build``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Connection, select
from starlette.concurrency import run_in_threadpool

from lockdown.session import tokens
from lockdown.session.tokens import Token, TokenType
from lockdown_server import exams
from lockdown_server.api.deps import (
    SessionOrUploadToken,
    SessionToken,
    check_access,
    service_of,
    session_row,
    touch,
)
from lockdown_server.errors import ApiError
from lockdown_server.service import Service
from lockdown_server.store import db, models

router = APIRouter(prefix="/api/v1", tags=["sessions"])

SESSION_ID = r"^[A-Za-z0-9][A-Za-z0-9-]{7,63}$"
DEVELOPMENT_BUILD = "development_build"
INTEGRITY = "integrity"


class SessionRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID)
    client_version: str = Field(max_length=100)
    build: Literal["installed", "development"]
    build_identity: str = Field(default="", max_length=200)
    settings_hash: str = Field(default="", max_length=200)
    isolation_mode: str = Field(default="", max_length=100)
    spool_header: dict[str, Any] = Field(default_factory=dict)
    #: the earlier session of this candidate and exam that this one resumes (a restart)
    resumes: str | None = Field(default=None, pattern=SESSION_ID)
    #: the earlier session's upload token: the proof that this client held it
    resume_token: str | None = Field(default=None, max_length=4000)


class SessionReply(BaseModel):
    session_id: str
    upload_token: str
    upload_token_expires_utc: str
    flags: list[str]
    #: the earlier session this one resumes, when the proof held
    resumed_from: str | None = None


class Head(BaseModel):
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    mac: str = Field(default="0" * 64, pattern=r"^[0-9a-f]{64}$")
    records: int | None = Field(default=None, ge=0)


class StreamManifest(BaseModel):
    seqs: dict[str, str]


class Manifest(BaseModel):
    session_id: str
    streams: dict[str, StreamManifest]
    heads: dict[str, dict[str, Any]]
    closed: bool


class CloseRequest(BaseModel):
    heads: dict[Literal["journal", "spool"], Head] = Field(default_factory=dict)
    segments: dict[str, int] = Field(default_factory=dict)


class CloseReply(BaseModel):
    session_id: str
    closed: bool
    stored: dict[str, int]


def _utc(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


def flag(conn: Connection, sid: str, name: str, detail: dict[str, Any], now: float) -> None:
    conn.execute(
        models.session_flags.insert().values(
            session_id=sid, flag=name, detail=json.dumps(detail), created_at=now
        )
    )


def flags_of(conn: Connection, sid: str) -> list[str]:
    rows = conn.scalars(
        select(models.session_flags.c.flag)
        .where(models.session_flags.c.session_id == sid)
        .order_by(models.session_flags.c.id)
    )
    return list(dict.fromkeys(rows))


def anchor(conn: Connection, sid: str, heads: dict[Any, Head], now: float) -> None:
    for chain, head in heads.items():
        conn.execute(
            models.anchors.insert().values(
                session_id=sid,
                chain=str(chain),
                hash=head.hash,
                mac=head.mac,
                records=head.records,
                received_at=now,
            )
        )


def _resumed(service: Service, token: Token, body: SessionRequest) -> str | None:
    """The earlier session ``body`` proves it resumes, or None.

    The proof is the earlier session's upload token, signed by this service, for that
    session and this exam; the session itself must be this candidate's (checked in
    :func:`_create` against the row).
    """
    if not body.resumes or not body.resume_token or body.resumes == body.session_id:
        return None
    try:
        proof = tokens.verify(
            body.resume_token, service.keys.token.public_key(), types={TokenType.UPLOAD}
        )
    except tokens.TokenError:
        return None
    if proof.claim("sid") != body.resumes or proof.claim("exam") != token.claim("exam"):
        return None
    return body.resumes


def _create(service: Service, token: Token, body: SessionRequest) -> tuple[int, SessionReply]:
    now = time.time()
    exam_id, user_id = token.claim("exam"), token.claim("sub")
    with service.engine.begin() as conn:
        exam = exams.find(conn, exam_id)
        if exam is None:
            raise ApiError(403, "forbidden", "this exam is no longer on the service")
        # Serialise session starts per candidate (PostgreSQL: a row lock held to commit;
        # SQLite writes one at a time anyway), so two processes cannot both see "none alive".
        conn.execute(
            select(models.candidates.c.user_id)
            .where(
                (models.candidates.c.exam_id == exam_id) & (models.candidates.c.user_id == user_id)
            )
            .with_for_update()
        )
        row = conn.execute(
            select(models.sessions).where(models.sessions.c.id == body.session_id)
        ).first()
        if row is not None:
            if row.user_id != user_id or row.exam_id != exam_id:
                raise ApiError(403, "forbidden", "this session id belongs to someone else")
            status = 200
            touch(conn, row.id, now)
            resumed_from = row.resumed_from
        else:
            resumed_from = _resumed(service, token, body)
            if resumed_from is not None:
                earlier = conn.execute(
                    select(models.sessions).where(models.sessions.c.id == resumed_from)
                ).first()
                if earlier is None or earlier.user_id != user_id or earlier.exam_id != exam_id:
                    resumed_from = None
            alive = conn.execute(
                select(models.sessions.c.id).where(
                    (models.sessions.c.exam_id == exam_id)
                    & (models.sessions.c.user_id == user_id)
                    & (models.sessions.c.closed_at.is_(None))
                    & (models.sessions.c.superseded_by.is_(None))
                    & (models.sessions.c.last_seen > now - service.settings.presence_window_s)
                    # the session this one proves it resumes is the same client
                    & (models.sessions.c.id != (resumed_from or ""))
                )
            ).first()
            if alive is not None:
                raise ApiError(
                    409,
                    "session_active",
                    "this exam is already running for this candidate elsewhere; close it first",
                )
            inserted = db.insert_once(
                conn,
                models.sessions,
                {
                    "id": body.session_id,
                    "exam_id": exam_id,
                    "user_id": user_id,
                    "launch_jti": token.claim("launch"),
                    "client_version": body.client_version,
                    "build": body.build,
                    "build_identity": body.build_identity,
                    "settings_hash": body.settings_hash,
                    "isolation_mode": body.isolation_mode,
                    "spool_header": json.dumps(body.spool_header),
                    "created_at": now,
                    "last_seen": now,
                    "resumed_from": resumed_from,
                },
            )
            status = 201 if inserted else 200
            if inserted and resumed_from is not None:
                conn.execute(
                    models.sessions.update()
                    .where(models.sessions.c.id == resumed_from)
                    .values(superseded_by=body.session_id)
                )
            if inserted and body.build == "development":
                flag(conn, body.session_id, DEVELOPMENT_BUILD, {"build": body.build}, now)
        current = flags_of(conn, body.session_id)
    upload = tokens.issue(
        service.keys.token,
        TokenType.UPLOAD,
        {"sid": body.session_id, "exam": exam_id},
        lifetime_s=exam.retention_s,
        now=now,
    )
    return status, SessionReply(
        session_id=body.session_id,
        upload_token=upload,
        upload_token_expires_utc=_utc(now + exam.retention_s),
        flags=current,
        resumed_from=resumed_from,
    )


@router.post(
    "/sessions",
    summary="Create the session (idempotent by the client's id)",
    response_model=SessionReply,
    status_code=201,
    responses={
        200: {"description": "the same session again", "model": SessionReply},
        409: {
            "description": "another session of this candidate is alive (and no proof that "
            "this one resumes it)"
        },
    },
)
async def create_session(
    request: Request,
    response: Response,
    body: SessionRequest,
    token: SessionToken,
) -> SessionReply:
    service = service_of(request)
    status, reply = await run_in_threadpool(_create, service, token, body)
    response.status_code = status
    return reply


def manifest_of(conn: Connection, sid: str) -> Manifest:
    row = session_row(conn, sid)
    streams: dict[str, StreamManifest] = {}
    for seg in conn.execute(
        select(models.segments.c.stream, models.segments.c.seq, models.segments.c.digest)
        .where(models.segments.c.session_id == sid)
        .order_by(models.segments.c.stream, models.segments.c.seq)
    ):
        streams.setdefault(seg.stream, StreamManifest(seqs={})).seqs[str(seg.seq)] = seg.digest
    heads: dict[str, dict[str, Any]] = {}
    for head in conn.execute(
        select(models.anchors)
        .where(models.anchors.c.session_id == sid)
        .order_by(models.anchors.c.id)
    ):
        heads[head.chain] = {
            "hash": head.hash,
            "mac": head.mac,
            "records": head.records,
            "received_utc": _utc(head.received_at),
        }
    return Manifest(session_id=sid, streams=streams, heads=heads, closed=row.closed_at is not None)


@router.get(
    "/sessions/{sid}/manifest",
    summary="What the service holds of the session",
    response_model=Manifest,
)
async def manifest(
    request: Request,
    sid: str,
    token: SessionOrUploadToken,
) -> Manifest:
    service = service_of(request)

    def read() -> Manifest:
        with service.engine.begin() as conn:
            check_access(token, session_row(conn, sid))
            touch(conn, sid)
            return manifest_of(conn, sid)

    return await run_in_threadpool(read)


@router.post(
    "/sessions/{sid}/close",
    summary="Close the session with its final heads (idempotent)",
    response_model=CloseReply,
)
async def close(
    request: Request,
    sid: str,
    body: CloseRequest,
    token: SessionOrUploadToken,
) -> CloseReply:
    service = service_of(request)

    def write() -> CloseReply:
        now = time.time()
        with service.engine.begin() as conn:
            row = session_row(conn, sid)
            check_access(token, row)
            anchor(conn, sid, dict(body.heads), now)
            report = {
                "heads": {k: v.model_dump() for k, v in body.heads.items()},
                "segments": body.segments,
            }
            conn.execute(
                models.sessions.update()
                .where(models.sessions.c.id == sid)
                .values(
                    closed_at=row.closed_at or now, close_report=json.dumps(report), last_seen=now
                )
            )
            stored: dict[str, int] = {}
            for seg in conn.execute(
                select(models.segments.c.stream).where(models.segments.c.session_id == sid)
            ):
                stored[seg.stream] = stored.get(seg.stream, 0) + 1
        return CloseReply(session_id=sid, closed=True, stored=stored)

    return await run_in_threadpool(write)
