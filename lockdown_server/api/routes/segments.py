"""``PUT``/``HEAD /api/v1/sessions/{sid}/segments/{stream}/{seq}``: exactly-once segment upload.

The body (the encrypted segment file, exactly as the spool stores it) streams into a
temporary object while its SHA-256 is computed; a body that does not match its
``Content-Digest`` is refused (400, the client retries). Then the object is synced and
committed under a generated key, the row inserted under ``UNIQUE(session, stream, seq)``
and committed, and **only then** the reply is 201. The same digest again is 200 (the
client's retry after a lost reply); a different digest is 409 with an integrity flag on
the session. A full disk is 507 with ``Retry-After``: nothing is stored, the client keeps
the segment. A ``kill -9`` at any point leaves a temporary or unnamed object, removed at
the next start, and never a row without its object.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from lockdown.session.tokens import Token
from lockdown_server.api.deps import (
    SessionOrUploadToken,
    check_access,
    service_of,
    session_row,
    touch,
)
from lockdown_server.api.routes.sessions import INTEGRITY, flag
from lockdown_server.errors import ApiError, StorageFull
from lockdown_server.service import SEGMENT_PREFIX, Service
from lockdown_server.store import db, models
from lockdown_server.store.objects import Upload

log = logging.getLogger("lockdown_server")

router = APIRouter(prefix="/api/v1", tags=["segments"])

_DIGEST = re.compile(r"sha-256=:([A-Za-z0-9+/]{43}=):")
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_SEQ = 10_000_000


class StreamName(StrEnum):
    camera = "camera"
    microphone = "microphone"
    screen = "screen"


class SegmentReply(BaseModel):
    stream: str
    seq: int
    digest: str


@dataclass(frozen=True)
class SegmentMeta:
    start_utc: str
    duration: float
    plain_sha256: str
    previous_digest: str


def digest_header(raw: bytes) -> str:
    return "sha-256=:" + base64.b64encode(raw).decode("ascii") + ":"


def parse_digest(value: str | None) -> bytes:
    """The SHA-256 of a ``Content-Digest: sha-256=:<base64>:`` header (RFC 9530)."""
    for part in (value or "").split(","):
        match = _DIGEST.fullmatch(part.strip())
        if match:
            try:
                return base64.b64decode(match.group(1), validate=True)
            except binascii.Error:
                break
    raise ApiError(
        400, "bad_digest_header", "send Content-Digest: sha-256=:<base64 SHA-256 of the body>:"
    )


def parse_meta(value: str | None) -> SegmentMeta:
    try:
        obj = json.loads(value or "")
        if not isinstance(obj, dict):
            raise TypeError
        start, duration = obj["start_utc"], obj["duration"]
        plain, previous = obj["plain_sha256"], obj.get("previous_digest", "")
        if not (
            isinstance(start, str)
            and len(start) <= 40
            and isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and 0 <= duration < 86400
            and isinstance(plain, str)
            and _HEX64.fullmatch(plain)
            and isinstance(previous, str)
            and (previous == "" or _DIGEST.fullmatch(previous))
        ):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        raise ApiError(
            400,
            "bad_segment_header",
            "send Lockdown-Segment: {start_utc, duration, plain_sha256, previous_digest}",
        ) from None
    return SegmentMeta(start, float(duration), plain, previous)


async def _drain(request: Request) -> None:
    """Read the rest of the body so the reply reaches the client (then answer)."""
    try:
        async for _ in request.stream():
            pass
    except ClientDisconnect:
        pass


def _find(service: Service, sid: str, stream: str, seq: int) -> Any:
    with service.engine.connect() as conn:
        return conn.execute(
            select(models.segments).where(
                (models.segments.c.session_id == sid)
                & (models.segments.c.stream == stream)
                & (models.segments.c.seq == seq)
            )
        ).first()


def _access(service: Service, token: Token, sid: str) -> None:
    with service.engine.connect() as conn:
        check_access(token, session_row(conn, sid))
    try:  # presence is best effort: a full disk must still answer 507, not fail here
        with service.engine.begin() as conn:
            touch(conn, sid)
    except OperationalError as exc:
        if not db.is_full(exc):
            raise


def _conflict(
    service: Service, sid: str, *, stream: str, seq: int, stored: str, offered: str
) -> None:
    with service.engine.begin() as conn:
        flag(
            conn,
            sid,
            INTEGRITY,
            {"stream": stream, "seq": seq, "stored": stored, "offered": offered},
            time.time(),
        )
    raise ApiError(
        409,
        "digest_conflict",
        f"a different {stream} segment {seq} is stored already; this is recorded for review",
        extra={"digest": stored},
    )


def _commit(
    service: Service,
    sid: str,
    *,
    stream: str,
    seq: int,
    upload: Upload,
    digest: str,
    size: int,
    meta: SegmentMeta,
) -> int:
    """Store the object, then the row; the status to answer."""
    existing = _find(service, sid, stream, seq)
    if existing is not None:
        upload.abort()
        if existing.digest == digest:
            return 200
        _conflict(service, sid, stream=stream, seq=seq, stored=existing.digest, offered=digest)
    key = service.objects.commit(upload, f"{SEGMENT_PREFIX}/{sid}")
    try:
        with service.engine.begin() as conn:
            inserted = db.insert_once(
                conn,
                models.segments,
                {
                    "session_id": sid,
                    "stream": stream,
                    "seq": seq,
                    "digest": digest,
                    "object_key": key,
                    "size": size,
                    "plain_sha256": meta.plain_sha256,
                    "start_utc": meta.start_utc,
                    "duration": meta.duration,
                    "previous_digest": meta.previous_digest,
                    "stored_at": time.time(),
                },
            )
    except OperationalError as exc:
        service.objects.delete(key)
        db.raise_if_full(exc)
        raise
    if inserted:
        return 201
    service.objects.delete(key)  # a concurrent PUT of the same key won
    existing = _find(service, sid, stream, seq)
    if existing.digest == digest:
        return 200
    _conflict(service, sid, stream=stream, seq=seq, stored=existing.digest, offered=digest)
    return 409  # not reached


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "already stored with this digest (a retry)", "model": SegmentReply},
    400: {"description": "digest_mismatch: the body does not match its Content-Digest"},
    409: {"description": "digest_conflict: a different body is stored for this key"},
    413: {"description": "larger than the service takes"},
    507: {"description": "storage_full, with Retry-After"},
}


@router.put(
    "/sessions/{sid}/segments/{stream}/{seq}",
    summary="Store a segment exactly once",
    response_model=SegmentReply,
    status_code=201,
    responses=_RESPONSES,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        "parameters": [
            {
                "name": "Content-Digest",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
            {
                "name": "Lockdown-Segment",
                "in": "header",
                "required": True,
                "schema": {"type": "string"},
            },
        ],
    },
)
async def put_segment(  # noqa: PLR0917 (FastAPI passes parameters by name)
    request: Request,
    response: Response,
    sid: str,
    stream: StreamName,
    seq: Annotated[int, Path(ge=0, le=MAX_SEQ)],
    token: SessionOrUploadToken,
) -> SegmentReply:
    service = service_of(request)
    settings = service.settings
    await run_in_threadpool(_access, service, token, sid)
    expected = parse_digest(request.headers.get("content-digest"))
    meta = parse_meta(request.headers.get("lockdown-segment"))
    declared = request.headers.get("content-length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > settings.max_segment_bytes:
        raise ApiError(413, "too_large", "the segment is larger than the service takes")
    free = service.objects.free_bytes()
    if free is not None and free < (length or 0) + settings.min_free_bytes:
        await _drain(request)
        raise StorageFull(f"{free} bytes free")
    try:
        upload = await run_in_threadpool(service.objects.begin)
    except StorageFull:
        await _drain(request)
        raise
    hasher = hashlib.sha256()
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_segment_bytes:
                upload.abort()
                raise ApiError(413, "too_large", "the segment is larger than the service takes")
            hasher.update(chunk)
            upload.write(chunk)
    except ClientDisconnect:
        upload.abort()
        log.warning(
            "A %s segment %d of session %s was cut off after %d bytes: nothing stored",
            stream.value,
            seq,
            sid,
            size,
        )
        raise ApiError(400, "incomplete", "the body was cut off") from None
    except StorageFull:
        await _drain(request)
        raise
    except BaseException:
        upload.abort()
        raise
    digest = digest_header(hasher.digest())
    if hasher.digest() != expected:
        upload.abort()
        raise ApiError(
            400,
            "digest_mismatch",
            "the body does not match its Content-Digest (damaged on the way); send it again",
        )
    try:
        status = await run_in_threadpool(
            functools.partial(
                _commit,
                service,
                sid,
                stream=stream.value,
                seq=seq,
                upload=upload,
                digest=digest,
                size=size,
                meta=meta,
            )
        )
    except BaseException:
        upload.abort()
        raise
    response.status_code = status
    response.headers["Content-Digest"] = digest
    return SegmentReply(stream=stream.value, seq=seq, digest=digest)


@router.head(
    "/sessions/{sid}/segments/{stream}/{seq}",
    summary="Whether a segment is stored, and its digest",
    responses={200: {"description": "stored; Content-Digest names it"}, 404: {}},
)
async def head_segment(
    request: Request,
    sid: str,
    stream: StreamName,
    seq: Annotated[int, Path(ge=0, le=MAX_SEQ)],
    token: SessionOrUploadToken,
) -> Response:
    service = service_of(request)
    await run_in_threadpool(_access, service, token, sid)
    row = await run_in_threadpool(_find, service, sid, stream.value, seq)
    if row is None:
        return Response(status_code=404)
    return Response(status_code=200, headers={"Content-Digest": row.digest})
