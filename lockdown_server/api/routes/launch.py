"""``GET /launch?token=…``: the exam configuration for one candidate's launch link.

The client turns ``lockdown[s]://HOST/launch?token=T`` into ``http[s]://HOST/launch?token=T``
and expects a signed Lockdown exam configuration; it carries ``service.launch_token = T``.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lockdown.session.tokens import TokenType
from lockdown_server import exams
from lockdown_server.api.deps import service_of, verify_text
from lockdown_server.errors import ApiError

router = APIRouter(tags=["launch"])


@router.get(
    "/launch",
    summary="The signed exam configuration of a launch link",
    response_class=Response,
    responses={
        200: {"content": {"application/toml": {}}, "description": "the signed configuration"},
        401: {"description": "the launch token is forged or expired"},
    },
)
async def launch(request: Request, token: str = Query(max_length=4096)) -> Response:
    service = service_of(request)
    verified = verify_text(service, token, {TokenType.LAUNCH})

    def config() -> bytes:
        with service.engine.connect() as conn:
            exam = exams.find(conn, verified.claim("exam"))
        if exam is None:
            raise ApiError(404, "no_such_exam", "this exam no longer exists on the service")
        return exams.signed_config(service, exam, launch_token=token)

    body = await run_in_threadpool(config)
    return Response(body, media_type="application/toml", headers={"Cache-Control": "no-store"})
