"""The system check's calls to the proctoring service: one function per endpoint.

``GET /healthz`` (is the service there; its ``Date`` header gives the clock offset),
``POST /api/v1/probe`` (the upload test: a body of random bytes, stored, read back and
deleted by the service, which answers how fast it arrived) and ``POST /api/v1/checks``
(the check report, kept with the exam or the session). See ``docs/protocol.md``.

Every function returns a :class:`Reply` and never raises: no answer, a refusal and an
answer that is not what the protocol promises are all results with a one-line reason.
Requests trust nothing from the environment (no proxy, CA bundle or ``.netrc`` of the
candidate's): the proxy and extra certificate authorities come from the organisation's
``network.proxy`` / ``network.ca_certificates``, as for the exam download. Plain http is
refused unless the service is on this computer.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from lockdown import __version__, log

if TYPE_CHECKING:
    import requests

API: Final = "/api/v1"
#: The service refuses larger probe bodies (413).
MAX_PROBE_BYTES: Final = 4 * 1024 * 1024
#: Refusals read from an answer's body at most (a service error is one small JSON object).
_MAX_ANSWER: Final = 64 * 1024
_ERRNO: Final = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


@dataclass(frozen=True)
class Reply:
    """What one call got back.

    Attributes:
        ok: a 2xx answer with the body the protocol promises.
        status: the HTTP status, None when nothing answered.
        body: the JSON object answered (empty when none).
        error: "" when ok, else the kind: ``unreachable``, ``timeout``, ``tls``,
            ``insecure``, ``bad_answer``, ``config``, or the service's own error code
            (``unauthorized``, ``rate_limited`` …).
        reason: one line for people when not ok.
        date: the ``Date`` header, when there was one.
        sent: local UTC time (seconds since the epoch) the request left.
        received: local UTC time the answer's headers arrived.
        retry_after: the service's ``Retry-After`` in seconds, when given.
    """

    ok: bool
    status: int | None = None
    body: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""
    reason: str = ""
    date: datetime | None = None
    sent: float = 0.0
    received: float = 0.0
    retry_after: float | None = None

    @property
    def elapsed(self) -> float:
        return max(0.0, self.received - self.sent)


def _is_loopback(host: str | None) -> bool:
    name = (host or "").lower().strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def endpoint(service_url: str, path: str) -> str:
    """``service_url`` (with or without a trailing slash or a path prefix) + ``path``."""
    return service_url.rstrip("/") + path


def _insecure(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname))


def http_session(settings: Mapping[str, Any]) -> requests.Session:
    """A requests session that trusts nothing from the environment (see the module doc).

    Raises:
        OSError, ssl.SSLError: the organisation's CA file cannot be read.
    """
    import certifi
    import requests
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False
    session.headers["User-Agent"] = f"Lockdown/{__version__} check"
    proxy = str(settings["network.proxy"])
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    extra = str(settings["network.ca_certificates"])
    if extra:
        context = ssl.create_default_context(cafile=certifi.where())
        context.load_verify_locations(cafile=extra)

        class _Adapter(HTTPAdapter):
            def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
                kwargs["ssl_context"] = context
                super().init_poolmanager(*args, **kwargs)

        session.mount("https://", _Adapter())
    return session


def parse_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime; None when missing or malformed."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds < 86400 else None


def _one_line(text: str, limit: int = 200) -> str:
    """``text`` for a one-line message: control characters escaped, cut at ``limit``."""
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)


def _service_error(status: int, body: Mapping[str, Any]) -> tuple[str, str]:
    code = body.get("error") if isinstance(body.get("error"), str) else ""
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    if not code:
        code = {401: "unauthorized", 403: "forbidden", 413: "too_large", 429: "rate_limited"}.get(
            status, "refused"
        )
    said = f": {_one_line(str(message))}" if message else ""
    return _one_line(
        str(code), 60
    ), f"the service answered {status} {_one_line(str(code), 60)}{said}"


def _call(
    settings: Mapping[str, Any],
    method: str,
    url: str,
    *,
    timeout: float,
    token: str = "",
    data: bytes | None = None,
    json_body: Mapping[str, Any] | None = None,
) -> Reply:
    import requests

    if _insecure(url):
        return Reply(
            False,
            error="insecure",
            reason=f"{url}: plain http is allowed only for a service on this computer",
        )
    headers = {"Accept": "application/json"}
    if token:
        log.register_secret(token)
        headers["Authorization"] = f"Bearer {token}"
    if json_body is not None:
        data = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    elif data is not None:
        headers["Content-Type"] = "application/octet-stream"
    try:
        session = http_session(settings)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or exc
        return Reply(
            False,
            error="config",
            reason=f"cannot read the organisation's certificate authorities ({why})",
        )
    sent = time.time()
    with session:
        try:
            response = session.request(
                method, url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            )
        except requests.exceptions.SSLError as exc:
            return Reply(False, error="tls", reason=f"TLS failed: {_short(exc)}", sent=sent)
        except requests.Timeout:
            return Reply(
                False, error="timeout", reason=f"no answer within {timeout:g} s", sent=sent
            )
        except requests.RequestException as exc:
            return Reply(False, error="unreachable", reason=_short(exc), sent=sent)
        received = time.time()
        with response:
            raw = response.content[:_MAX_ANSWER]
    date = parse_date(response.headers.get("Date"))
    retry = _retry_after(response.headers.get("Retry-After"))
    common: dict[str, Any] = {
        "status": response.status_code,
        "date": date,
        "sent": sent,
        "received": received,
        "retry_after": retry,
    }
    try:
        decoded = json.loads(raw) if raw else {}
    except ValueError:
        decoded = None
    body: Mapping[str, Any] = decoded if isinstance(decoded, dict) else {}
    if not 200 <= response.status_code < 300:
        code, reason = _service_error(response.status_code, body)
        return Reply(False, body=body, error=code, reason=reason, **common)
    if decoded is None or not isinstance(decoded, dict):
        return Reply(
            False, error="bad_answer", reason="the service's answer is not a JSON object", **common
        )
    return Reply(True, body=body, **common)


def _short(exc: BaseException) -> str:
    """A connection error in one line, without urllib3's nested reprs."""
    text = str(exc)
    if found := _ERRNO.search(text):
        return found.group(0).strip()
    if "timed out" in text:
        return "timed out"
    return (text or type(exc).__name__)[:200]


def health(service_url: str, settings: Mapping[str, Any], *, timeout: float) -> Reply:
    """``GET /healthz``: ok when the service answers ``{"status": "ok"}``."""
    reply = _call(settings, "GET", endpoint(service_url, "/healthz"), timeout=timeout)
    if reply.ok and reply.body.get("status") != "ok":
        return Reply(
            False,
            reply.status,
            reply.body,
            "bad_answer",
            "the service is not ready (its health answer is not ok)",
            reply.date,
            reply.sent,
            reply.received,
        )
    return reply


@dataclass(frozen=True)
class ProbeReply:
    """The upload test: the call's reply and what went through."""

    reply: Reply
    #: bytes sent
    size: int
    #: bits per second the service measured as the body arrived (None: no usable figure)
    service_rate_bps: float | None = None
    #: bits per second measured here: the size over the time to the answer
    client_rate_bps: float | None = None

    @property
    def rate_bps(self) -> float | None:
        """The service's figure when it gave one, else ours."""
        return self.service_rate_bps if self.service_rate_bps is not None else self.client_rate_bps


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if number > 0 and number < 1e13 else None


def probe(
    service_url: str, token: str, settings: Mapping[str, Any], *, size: int, timeout: float
) -> ProbeReply:
    """``POST /api/v1/probe`` with ``size`` random bytes (they do not compress)."""
    size = max(1, min(size, MAX_PROBE_BYTES))
    reply = _call(
        settings,
        "POST",
        endpoint(service_url, f"{API}/probe"),
        timeout=timeout,
        token=token,
        data=os.urandom(size),
    )
    if not reply.ok:
        return ProbeReply(reply, size)
    client = size * 8 / reply.elapsed if reply.elapsed > 0 else None
    stored = reply.body.get("bytes")
    if isinstance(stored, int) and not isinstance(stored, bool) and stored != size:
        bad = Reply(
            False,
            reply.status,
            reply.body,
            "bad_answer",
            f"the service stored {stored} bytes of the {size} sent",
            reply.date,
            reply.sent,
            reply.received,
        )
        return ProbeReply(bad, size, client_rate_bps=client)
    service_rate = _number(reply.body.get("rate_bps"))
    if service_rate is None:
        seconds = _number(reply.body.get("seconds"))
        service_rate = size * 8 / seconds if seconds else None
    return ProbeReply(reply, size, service_rate, client)


def send_checks(
    service_url: str,
    token: str,
    settings: Mapping[str, Any],
    *,
    check_id: str,
    report: Mapping[str, Any],
    session_id: str | None = None,
    timeout: float,
) -> Reply:
    """``POST /api/v1/checks``: the report, under a client-chosen id (a retry is safe)."""
    body: dict[str, Any] = {"check_id": check_id, "report": report}
    if session_id:
        body["session_id"] = session_id
    return _call(
        settings,
        "POST",
        endpoint(service_url, f"{API}/checks"),
        timeout=timeout,
        token=token,
        json_body=body,
    )
