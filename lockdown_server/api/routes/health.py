"""``GET /healthz``: ready once the database and the object store answer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from lockdown_server import __version__
from lockdown_server.api.deps import service_of
from lockdown_server.errors import ApiError

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    version: str


@router.get(
    "/healthz",
    summary="Ready once the database and object store answer",
    response_model=Health,
    responses={503: {"description": "not ready"}},
)
async def healthz(request: Request) -> Health:
    service = service_of(request)

    def probe() -> bool:
        try:
            with service.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError:
            return False
        return service.objects.ready()

    if not await run_in_threadpool(probe):
        raise ApiError(
            503, "not_ready", "the service is starting or its storage is away", retry_after=5
        )
    return Health(status="ok", version=__version__)
