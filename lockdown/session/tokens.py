"""The proctoring service's tokens: Ed25519-signed, compact, shared by client and service.

A token is ``base64url(payload JSON) "." base64url(Ed25519 signature over the first part)``
without padding (docs/protocol.md, "Keys and tokens"). The payload always holds ``v`` (1),
``typ``, ``iat`` and ``exp`` (Unix seconds) and ``jti`` (random); each type adds its own
claims (``launch``: ``sub``, ``grp``, ``name``, ``exam``; ``session``: ``sub``, ``exam``,
``launch``; ``upload``: ``sid``, ``exam``; ``probe``: ``exam``).

The service signs and verifies with its own clock. A client may read a token
(:func:`verify` with ``check_time=False``) to check who signed it and what it names, but
its clock may be hours off: the service's verdict on expiry is the one that counts.
Qt-free; imported by ``lockdown.session`` and by ``lockdown_server``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION: Final = 1
#: Longest token read at all (a launch token is ~350 characters).
MAX_TOKEN_CHARS: Final = 4096
#: Seconds a token's ``iat`` may lie in the verifier's future (two servers' clocks).
CLOCK_LEEWAY_S: Final = 60
PUBLIC_PREFIX: Final = "ed25519:"
RESERVED: Final = frozenset({"v", "typ", "iat", "exp", "jti"})


class TokenType(StrEnum):
    LAUNCH = "launch"
    SESSION = "session"
    UPLOAD = "upload"
    PROBE = "probe"


class Problem(StrEnum):
    """Why a token was refused (all of them are ``401 unauthorized`` on the wire)."""

    MALFORMED = "malformed"
    FORGED = "forged"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_TYPE = "wrong_type"


class TokenError(Exception):
    """A token cannot be accepted; :attr:`problem` says why, the message in one line."""

    def __init__(self, problem: Problem, message: str) -> None:
        super().__init__(message)
        self.problem = problem


@dataclass(frozen=True)
class Token:
    """A verified token: its type, times, id and the claims of its type."""

    typ: TokenType
    iat: int
    exp: int
    jti: str
    claims: Mapping[str, Any] = field(default_factory=dict)
    #: the token text itself
    text: str = ""

    def claim(self, name: str) -> str:
        """A text claim, ``""`` when absent or not a text."""
        value = self.claims.get(name, "")
        return value if isinstance(value, str) else ""


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def public_text(key: Ed25519PublicKey) -> str:
    """``ed25519:<base64>``: the form of ``service.token_key`` in an exam configuration."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str) -> Ed25519PublicKey:
    """The key of :func:`public_text`.

    Raises:
        ValueError: not such a key.
    """
    if not text.startswith(PUBLIC_PREFIX):
        raise ValueError(f"not an Ed25519 public key ({PUBLIC_PREFIX}<base64>)")
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ValueError("not an Ed25519 public key") from None


def issue(
    key: Ed25519PrivateKey,
    typ: TokenType,
    claims: Mapping[str, Any],
    *,
    lifetime_s: float,
    now: float | None = None,
) -> str:
    """A new token of ``typ`` with ``claims``, valid ``lifetime_s`` seconds from ``now``.

    Raises:
        ValueError: a claim uses a reserved name, or the lifetime is not positive.
    """
    if RESERVED & set(claims):
        raise ValueError(f"reserved claim names: {sorted(RESERVED & set(claims))}")
    if lifetime_s <= 0:
        raise ValueError("a token's lifetime must be positive")
    moment = int(time.time() if now is None else now)
    payload = {
        "v": VERSION,
        "typ": str(typ),
        "iat": moment,
        "exp": moment + int(lifetime_s),
        "jti": secrets.token_urlsafe(12),
        **claims,
    }
    body = _b64encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return body + "." + _b64encode(key.sign(body.encode("ascii")))


def _payload(token: str) -> tuple[str, bytes, dict[str, Any]]:
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError(Problem.MALFORMED, "the token is malformed")
    body, signature = token.split(".")
    try:
        sig = _b64decode(signature)
        payload = json.loads(_b64decode(body))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise TokenError(Problem.MALFORMED, "the token is malformed") from None
    if not isinstance(payload, dict):
        raise TokenError(Problem.MALFORMED, "the token is malformed")
    return body, sig, payload


def _fields(payload: dict[str, Any]) -> tuple[TokenType, int, int, str]:
    typ, iat, exp, jti = (payload.get(k) for k in ("typ", "iat", "exp", "jti"))
    if payload.get("v") != VERSION:
        raise TokenError(Problem.MALFORMED, f"unsupported token version {payload.get('v')!r}")
    if not (
        isinstance(iat, int)
        and isinstance(exp, int)
        and not isinstance(iat, bool)
        and not isinstance(exp, bool)
        and isinstance(jti, str)
        and isinstance(typ, str)
        and typ in set(TokenType)
    ):
        raise TokenError(Problem.MALFORMED, "the token is malformed")
    return TokenType(typ), iat, exp, jti


def unverified(token: str) -> Token:
    """The token's fields without checking its signature or times (for display only).

    Raises:
        TokenError: malformed.
    """
    _, _, payload = _payload(token)
    typ, iat, exp, jti = _fields(payload)
    claims = {k: v for k, v in payload.items() if k not in RESERVED}
    return Token(typ, iat, exp, jti, claims, token)


def verify(
    token: str,
    key: Ed25519PublicKey,
    *,
    types: Collection[TokenType],
    now: float | None = None,
    check_time: bool = True,
) -> Token:
    """The verified token: signed by ``key``, one of ``types``, and (``check_time``) current.

    Raises:
        TokenError: malformed, forged (signature does not match), of another type,
            expired, or issued in the future.
    """
    body, sig, payload = _payload(token)
    try:
        key.verify(sig, body.encode("ascii"))
    except InvalidSignature:
        raise TokenError(Problem.FORGED, "the token's signature does not match") from None
    typ, iat, exp, jti = _fields(payload)
    if typ not in types:
        raise TokenError(Problem.WRONG_TYPE, f"a {typ} token is not accepted here")
    if check_time:
        moment = time.time() if now is None else now
        if moment >= exp:
            raise TokenError(Problem.EXPIRED, "the token has expired")
        if iat > moment + CLOCK_LEEWAY_S:
            raise TokenError(Problem.NOT_YET_VALID, "the token is not valid yet")
    claims = {k: v for k, v in payload.items() if k not in RESERVED}
    return Token(typ, iat, exp, jti, claims, token)
