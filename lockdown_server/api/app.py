"""The ASGI application: routes by resource, errors as ``{"error", "message"}`` JSON.

Every reply carries ``Date`` (uvicorn adds it). Request bodies are capped before they are
read (``Content-Length`` above the cap: 413) except segment uploads, whose handler streams
and caps them itself.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from lockdown_server import __version__
from lockdown_server.api.routes import (
    checks,
    events,
    health,
    launch,
    probe,
    segments,
    sessions,
    token,
)
from lockdown_server.errors import ApiError, StorageFull
from lockdown_server.service import Service
from lockdown_server.settings import ServiceSettings
from lockdown_server.store import db

log = logging.getLogger("lockdown_server")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
_CODES |= {405: "method_not_allowed", 411: "length_required", 413: "too_large"}


def error_response(
    status: int, code: str, message: str, retry_after: int | None = None, **extra: Any
) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": code, "message": message, **extra}, status, headers=headers)


class BodyCap:
    """413 for a declared body above ``limit`` (segment and probe uploads cap themselves)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "/segments/" not in scope["path"]:
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > self.limit):
                response = error_response(413, "too_large", "the request body is too large")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a code for programs"},
        "message": {"type": "string", "description": "one line for a person"},
    },
}
_ERROR_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _error_responses(path: str, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    wanted = {"400": "malformed request (bad_request and the codes below)"}
    if operation.get("security"):
        wanted |= {
            "401": "no, forged, expired or wrong-type token (unauthorized)",
            "403": "a token for another session or exam (forbidden)",
        }
    if "{sid}" in path:
        wanted["404"] = "no such session (no_such_session)"
    for status, description in wanted.items():
        responses.setdefault(status, {"description": description})
    for status, entry in responses.items():
        if status[0] in "45":
            entry.setdefault("content", _ERROR_REF)


def create_app(service: Service | None) -> FastAPI:
    """The application serving ``service`` (None: only to publish the OpenAPI document)."""
    app = FastAPI(
        title="Lockdown proctoring service",
        version=__version__,
        description="The protocol between the Lockdown client and its proctoring service "
        "(docs/protocol.md).",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    for module in (health, launch, token, sessions, segments, events, probe, checks):
        app.include_router(module.router)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.retry_after, **exc.extra)

    settings = service.settings if service is not None else ServiceSettings(Path("."))

    @app.exception_handler(StorageFull)
    async def storage_full(_request: Request, _exc: StorageFull) -> JSONResponse:
        return error_response(
            507,
            "storage_full",
            "the service has no room left; the upload is kept and retried later",
            settings.storage_retry_after_s,
        )

    @app.exception_handler(OperationalError)
    async def database_error(request: Request, exc: OperationalError) -> JSONResponse:
        if db.is_full(exc):
            return await storage_full(request, StorageFull(str(exc.orig)))
        log.error("Database error: %s", exc.orig)
        return error_response(
            503, "unavailable", "the service's database is not answering; try again", 5
        )

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception) -> JSONResponse:
        log.error("Internal error", exc_info=exc)
        return error_response(500, "internal", "the service failed; try again later")

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error_response(400, "bad_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail))

    def openapi() -> dict[str, Any]:
        """FastAPI's document with our error replies: 400 (not 422) for a malformed
        request, 401/403/404 where a token is needed, all in the ``Error`` shape."""
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document["components"]["schemas"]["Error"] = _ERROR_SCHEMA
            for path, item in document["paths"].items():
                for operation in item.values():
                    _error_responses(path, operation)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    limit = max(settings.max_event_batch_bytes, settings.max_check_bytes)
    app.add_middleware(BodyCap, limit=limit)
    return app
