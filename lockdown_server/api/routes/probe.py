"""``POST /api/v1/probe``: the system check's test upload (probe token, size-capped,
rate-limited per exam and client address): stored, read back, deleted, timed."""

from __future__ import annotations

import math
import time

from fastapi import APIRouter, Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from lockdown_server.api.deps import ProbeToken, service_of
from lockdown_server.errors import ApiError
from lockdown_server.service import PROBE_PREFIX

router = APIRouter(prefix="/api/v1", tags=["probe"])


class ProbeReply(BaseModel):
    bytes: int
    seconds: float
    rate_bps: float


@router.post(
    "/probe",
    summary="The system check's timed test upload",
    response_model=ProbeReply,
    responses={413: {"description": "above 4 MiB"}, 429: {"description": "too many probes"}},
    openapi_extra={
        "requestBody": {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        }
    },
)
async def probe(
    request: Request,
    token: ProbeToken,
) -> ProbeReply:
    service = service_of(request)
    limit = service.settings.probe_max_bytes
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, "too_large", f"a probe is at most {limit} bytes")
    address = request.client.host if request.client else "?"
    wait = service.probes.take(f"{token.claim('exam')}|{address}")
    if wait > 0:
        raise ApiError(
            429,
            "too_many_probes",
            "too many test uploads; wait a little",
            retry_after=math.ceil(wait),
        )
    upload = await run_in_threadpool(service.objects.begin)
    size = 0
    started = time.monotonic()
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "too_large", f"a probe is at most {limit} bytes")
            upload.write(chunk)
        seconds = max(time.monotonic() - started, 1e-6)
    except ClientDisconnect:
        raise ApiError(400, "incomplete", "the body was cut off") from None
    except BaseException:
        upload.abort()
        raise

    def store_and_delete() -> None:
        key = service.objects.commit(upload, PROBE_PREFIX)
        try:
            if len(service.objects.read(key)) != size:
                raise ApiError(500, "probe_lost", "the test upload did not read back whole")
        finally:
            service.objects.delete(key)

    await run_in_threadpool(store_and_delete)
    return ProbeReply(bytes=size, seconds=round(seconds, 6), rate_bps=round(size * 8 / seconds, 1))
