"""What every route needs: the service, the caller's verified token, the session it may use."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, select

from lockdown.session import tokens
from lockdown.session.tokens import Token, TokenType
from lockdown_server.errors import ApiError
from lockdown_server.service import Service
from lockdown_server.store import models

#: Only for the OpenAPI document (the scheme); the token is checked by :func:`verified`.
bearer_scheme = HTTPBearer(auto_error=False, description="a token of the service")
#: The ``Authorization: Bearer`` credentials of a request, None when absent.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def service_of(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


def unauthorized(message: str = "a valid token is needed") -> ApiError:
    return ApiError(401, "unauthorized", message)


def verified(
    service: Service,
    credentials: HTTPAuthorizationCredentials | None,
    types: Collection[TokenType],
) -> Token:
    """The caller's token, checked (signature, type, expiry); else 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise unauthorized("send the token as Authorization: Bearer <token>")
    return verify_text(service, credentials.credentials, types)


def verify_text(service: Service, text: str, types: Collection[TokenType]) -> Token:
    try:
        return tokens.verify(text, service.keys.token.public_key(), types=types)
    except tokens.TokenError as exc:
        raise unauthorized(f"{exc}; start again from the exam link") from None


def session_row(conn: Connection, sid: str) -> Any:
    row = conn.execute(select(models.sessions).where(models.sessions.c.id == sid)).first()
    if row is None:
        raise ApiError(404, "no_such_session", f"no session {sid}")
    return row


def check_access(token: Token, row: Any) -> None:
    """403 unless ``token`` may act on the session ``row``."""
    if token.typ is TokenType.UPLOAD:
        allowed = token.claim("sid") == row.id and token.claim("exam") == row.exam_id
    elif token.typ is TokenType.SESSION:
        allowed = token.claim("sub") == row.user_id and token.claim("exam") == row.exam_id
    else:
        allowed = False
    if not allowed:
        raise ApiError(403, "forbidden", "this token is for another session or exam")


def touch(conn: Connection, sid: str, now: float | None = None) -> None:
    """The session was seen now (presence: a second session is refused while it is alive)."""
    conn.execute(
        models.sessions.update()
        .where(models.sessions.c.id == sid)
        .values(last_seen=time.time() if now is None else now)
    )


def _require(*types: TokenType) -> Any:
    allowed = frozenset(types)

    def dependency(request: Request, credentials: Credentials) -> Token:
        return verified(service_of(request), credentials, allowed)

    return Depends(dependency)


# The caller's verified token, checked before the body is read or validated (401 first).
SessionToken = Annotated[Token, _require(TokenType.SESSION)]
SessionOrUploadToken = Annotated[Token, _require(TokenType.SESSION, TokenType.UPLOAD)]
ProbeToken = Annotated[Token, _require(TokenType.PROBE)]
ProbeOrSessionToken = Annotated[Token, _require(TokenType.PROBE, TokenType.SESSION)]
