"""The proctoring service's protocol client: one method per endpoint of docs/protocol.md.

Every method returns a :class:`Reply` and never raises into its caller: a refused
connection, a timeout, a reset mid-body or a reply that is not JSON all come back as a
reply with ``status == 0`` (no answer) and an ``error`` code, so the uploader and the UI
decide what to do from values. Parsing stays in :class:`Reply`; the transport is a
``requests`` session that trusts nothing from the environment
(:func:`lockdown.session.http.trusted_session`).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from lockdown import __version__, log

if TYPE_CHECKING:
    import requests

API: Final = "/api/v1"
#: (connect, read) seconds: a dead service is found quickly, a slow upload is given time.
TIMEOUT_S: Final = (5.0, 60.0)
#: Statuses that mean "try again later" (with back-off), the rest are answers.
RETRYABLE: Final = frozenset({408, 425, 429, 500, 502, 503, 504, 507})
#: 400s that say the body was damaged or cut on the way: sending it again is right.
RETRYABLE_ERRORS: Final = frozenset({"digest_mismatch", "incomplete"})
#: Error codes of our own for a request that got no usable answer.
UNREACHABLE: Final = "unreachable"
TIMEOUT: Final = "timeout"
BAD_REPLY: Final = "bad_reply"
USER_AGENT: Final = f"Lockdown/{__version__}"


def content_digest(body: bytes) -> str:
    """The RFC 9530 ``Content-Digest`` value of ``body``: ``sha-256=:<base64>:``."""
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii") + ":"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date); None if absent."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class Reply:
    """What one request got: the status (0 when no answer came), the JSON body, the error."""

    status: int
    body: Mapping[str, Any] = field(default_factory=dict)
    #: "" on success; the service's error code, or unreachable / timeout / bad_reply
    error: str = ""
    #: one line for a person (the service's message, or what went wrong on the way)
    message: str = ""
    #: seconds the service asked us to wait (``Retry-After``)
    retry_after: float | None = None
    #: the service's ``Date`` header (the system check measures the clock offset)
    date: str | None = None
    #: the ``Content-Digest`` header (a ``HEAD`` on a segment)
    digest: str | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retryable(self) -> bool:
        """No answer, an overloaded or failing service, or a body damaged on the way."""
        return self.status == 0 or self.status in RETRYABLE or self.error in RETRYABLE_ERRORS

    def describe(self) -> str:
        """The reply in a few words, for the log and the journal (never a token)."""
        what = str(self.status) if self.status else "no answer"
        return f"{what} {self.error}".strip()


def _parse(response: requests.Response) -> Reply:
    body: Mapping[str, Any] = {}
    error = ""
    message = ""
    if response.content:
        try:
            parsed = json.loads(response.content)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
        elif response.status_code < 300 or response.request.method != "HEAD":
            error = BAD_REPLY
            message = f"the service answered {response.status_code} with a body that is not JSON"
    if response.status_code >= 400:
        error = str(body.get("error") or error or f"http_{response.status_code}")
        message = str(body.get("message") or message or response.reason or "")
    return Reply(
        status=response.status_code if not (error == BAD_REPLY and response.ok) else 0,
        body=body,
        error=error,
        message=message,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        date=response.headers.get("Date"),
        digest=response.headers.get("Content-Digest"),
    )


class ServiceClient:
    """One method per endpoint; each returns a :class:`Reply`, none raises.

    Args:
        base_url: the service (``service.url`` of the exam configuration).
        http: the transport; by default a session with the organisation's proxy and
            certificate authorities only.
        organisation_values: the organisation file's values (proxy, CAs).
        timeout: (connect, read) seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        http: requests.Session | None = None,
        organisation_values: Mapping[str, Any] | None = None,
        timeout: tuple[float, float] = TIMEOUT_S,
    ) -> None:
        from lockdown.session.http import trusted_session

        self.base_url = base_url.rstrip("/")
        self._http = http if http is not None else trusted_session(organisation_values or {})
        self._timeout = timeout

    def close(self) -> None:
        self._http.close()

    # -- the transport --------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Reply:
        import requests

        sent = {"User-Agent": USER_AGENT, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":")).encode("utf-8")
            sent["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method,
                self.base_url + path,
                data=data,
                headers=sent,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout:
            return Reply(0, error=TIMEOUT, message=f"{self.base_url}: the service did not answer")
        except requests.RequestException as exc:
            reason = type(exc).__name__
            log.session.debug("%s %s: %s", method, path, exc)
            return Reply(
                0,
                error=UNREACHABLE,
                message=f"{self.base_url}: cannot reach the service ({reason})",
            )
        reply = _parse(response)
        log.session.debug("%s %s -> %s", method, path, reply.describe())
        return reply

    # -- the endpoints ----------------------------------------------------------------------

    def healthz(self) -> Reply:
        """``GET /healthz``: 200 once the service is ready."""
        return self._call("GET", "/healthz")

    def exchange(self, launch_token: str) -> Reply:
        """``POST /token`` with a launch token: a session token, the exam and the candidate."""
        return self._call("POST", f"{API}/token", json_body={"launch_token": launch_token})

    def renew(self, session_token: str) -> Reply:
        """``POST /token`` with a valid session token: a new one."""
        return self._call("POST", f"{API}/token", json_body={"session_token": session_token})

    def create_session(self, session_token: str, request: Mapping[str, Any]) -> Reply:
        """``POST /sessions`` (idempotent by the client's ``session_id``)."""
        return self._call("POST", f"{API}/sessions", token=session_token, json_body=request)

    def put_segment(
        self,
        token: str,
        session_id: str,
        stream: str,
        seq: int,
        body: bytes,
        *,
        digest: str,
        meta: Mapping[str, Any],
    ) -> Reply:
        """``PUT …/segments/{stream}/{seq}``: the encrypted segment exactly as spooled."""
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Digest": digest,
            "Lockdown-Segment": json.dumps(dict(meta), separators=(",", ":")),
        }
        return self._call(
            "PUT",
            self._segment_path(session_id, stream, seq),
            token=token,
            data=body,
            headers=headers,
        )

    def head_segment(self, token: str, session_id: str, stream: str, seq: int) -> Reply:
        """``HEAD …/segments/{stream}/{seq}``: 200 with the stored digest, or 404."""
        return self._call("HEAD", self._segment_path(session_id, stream, seq), token=token)

    def manifest(self, token: str, session_id: str) -> Reply:
        """``GET …/manifest``: what the service has of the session."""
        return self._call(
            "GET", f"{API}/sessions/{quote(session_id, safe='')}/manifest", token=token
        )

    def post_events(
        self,
        token: str,
        session_id: str,
        events: Sequence[Mapping[str, Any]],
        heads: Mapping[str, Any],
    ) -> Reply:
        """``POST …/events``: journal records with client ids and the chain heads."""
        return self._call(
            "POST",
            f"{API}/sessions/{quote(session_id, safe='')}/events",
            token=token,
            json_body={"events": list(events), "heads": dict(heads)},
        )

    def close_session(
        self, token: str, session_id: str, heads: Mapping[str, Any], segments: Mapping[str, int]
    ) -> Reply:
        """``POST …/close`` (idempotent): the final heads and segment counts."""
        return self._call(
            "POST",
            f"{API}/sessions/{quote(session_id, safe='')}/close",
            token=token,
            json_body={"heads": dict(heads), "segments": dict(segments)},
        )

    def probe(self, probe_token: str, data: bytes) -> Reply:
        """``POST /probe``: a size-capped test upload; the service reports the rate."""
        return self._call(
            "POST",
            f"{API}/probe",
            token=probe_token,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def post_check(
        self,
        token: str,
        check_id: str,
        report: Mapping[str, Any],
        session_id: str | None = None,
    ) -> Reply:
        """``POST /checks``: a system check report (idempotent by ``check_id``)."""
        body: dict[str, Any] = {"check_id": check_id, "report": dict(report)}
        if session_id:
            body["session_id"] = session_id
        return self._call("POST", f"{API}/checks", token=token, json_body=body)

    @staticmethod
    def _segment_path(session_id: str, stream: str, seq: int) -> str:
        return (
            f"{API}/sessions/{quote(session_id, safe='')}/segments/"
            f"{quote(stream, safe='')}/{int(seq)}"
        )
