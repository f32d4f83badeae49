"""The session with the proctoring service: launch token -> session token -> session.

:class:`ServiceSession` exchanges the launch token of the candidate's link for a
short-lived session token, creates the session under an id the client chose (so a retry
of a request whose answer was lost creates nothing twice), renews the session token
before it expires, and keeps the session's **upload token** beside the spool in
``service.json`` (mode 0600): a later run, or ``lockdown upload``, drains the spool with
it after the process that recorded it is gone.

The spool folder is the candidate's. What they can do with the upload token: send
segments, events and the close of that one session — exactly what the uploader does for
them — until the exam's retention period ends. What they cannot: read anything back but
the session's digest list, touch another session or exam, start a session, or replace a
stored segment (a different body for a stored ``(stream, seq)`` is refused with 409 and
flags the session for review). See docs/upload.md.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from lockdown import durable, log
from lockdown.events import Event, EventSink
from lockdown.session.client import Reply, ServiceClient

#: The file beside the spool that keeps what a later run needs to drain it.
RECORD_FILE: Final = "service.json"
#: Renew the session token when less than this is left of its lifetime.
RENEW_BEFORE_S: Final = 300.0
#: Attempts (with a short pause) before the start says the service cannot be reached.
CONNECT_ATTEMPTS: Final = 4


class Connection(enum.Enum):
    CONNECTED = "connected"
    #: the service answered no (an expired or forged link, a second live session)
    REFUSED = "refused"
    #: no usable answer after every attempt
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Connected:
    """The outcome of :meth:`ServiceSession.connect`; ``text_id`` says why not."""

    state: Connection
    text_id: str = ""
    detail: str = ""


@dataclass(frozen=True)
class SessionRecord:
    """``service.json``: what a later run needs to drain this spool (no session token)."""

    url: str
    session_id: str
    upload_token: str = ""
    upload_token_expires_utc: str = ""
    journal: str = ""
    exam: str = ""
    candidate: str = ""
    #: when a later run (or ``lockdown upload``) sent everything and closed the session
    finished_utc: str = ""
    flags: tuple[str, ...] = ()

    def finished(self, folder: Path) -> SessionRecord:
        """Mark the spool as sent for good (later starts no longer look at it)."""
        done = replace(self, finished_utc=datetime.now(UTC).isoformat(timespec="seconds"))
        done.save(folder)
        return done

    def save(self, folder: Path) -> None:
        data = json.dumps({**asdict(self), "flags": list(self.flags)}, indent=2) + "\n"
        durable.atomic_write(folder / RECORD_FILE, data.encode("utf-8"), 0o600)

    @classmethod
    def load(cls, folder: Path) -> SessionRecord | None:
        """The record beside a spool, or None when there is none or it is unreadable."""
        try:
            obj = json.loads((folder / RECORD_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(obj, dict) or not all(
            isinstance(obj.get(k), str) for k in ("url", "session_id")
        ):
            return None
        fields = {k: str(obj.get(k, "")) for k in cls.__dataclass_fields__ if k != "flags"}
        flags = obj.get("flags", [])
        return cls(**fields, flags=tuple(str(f) for f in flags if isinstance(f, str)))


def _refusal(reply: Reply) -> str:
    """The text id that tells the candidate why the service said no."""
    if reply.error == "session_active":
        return "service.second_session"
    if reply.status == 401:
        return "service.expired_link"
    return "service.refused"


def _parse_utc(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


class ServiceSession:
    """The candidate's session with the service (one per exam run).

    Args:
        client: the protocol client.
        report: where ``session.service_*`` records are journalled (never a token).
        pause: how long to wait between connection attempts (tests pass a short one).
    """

    def __init__(
        self,
        client: ServiceClient,
        report: EventSink,
        *,
        pause: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._report = report
        self._pause = pause
        self._clock = clock
        self._session_token = ""
        self._session_expires = 0.0
        self.record: SessionRecord | None = None
        self.exam: Mapping[str, Any] = {}
        self.candidate: Mapping[str, Any] = {}

    def _retrying(self, call: Callable[[], Reply]) -> Reply:
        reply = call()
        for attempt in range(1, CONNECT_ATTEMPTS):
            if not reply.retryable:
                break
            self._pause(reply.retry_after if reply.retry_after is not None else 0.5 * attempt)
            reply = call()
        return reply

    def exchange(self, launch_token: str) -> Connected:
        """``POST /token``: the launch token of the candidate's link for a session token."""
        reply = self._retrying(lambda: self.client.exchange(launch_token))
        if not reply.ok or not self._take_session_token(reply):
            return self._failed("token", reply)
        self.exam = dict(reply.body.get("exam") or {})
        self.candidate = dict(reply.body.get("candidate") or {})
        return Connected(Connection.CONNECTED)

    def create(
        self,
        spool_folder: Path,
        request: Mapping[str, Any],
        *,
        resumes: SessionRecord | None = None,
    ) -> Connected:
        """``POST /sessions`` under a new client-chosen id; the record kept beside the spool.

        Args:
            spool_folder: the session's spool (its ``spool.json`` travels as
                ``spool_header``; ``service.json`` is written beside it).
            request: the rest of the body (version, build, hashes, isolation mode) and
                ``journal``, the journal file a later drain sends as events.
            resumes: the record of this candidate's earlier session at this service (a
                restart after a crash): its id and upload token go along as the proof
                that this client is the same one, so the service does not refuse the new
                session as a second concurrent one.
        """
        url = self.client.base_url
        session_id = str(uuid.uuid4())
        try:
            header = json.loads((spool_folder / "spool.json").read_bytes())
        except (OSError, ValueError) as exc:
            log.session.error("The spool header cannot be read: %s", exc)
            return Connected(Connection.REFUSED, "service.refused", "spool header unreadable")
        # the id is chosen (and kept) before the request: a lost answer is retried with it
        record = SessionRecord(
            url=url,
            session_id=session_id,
            exam=str(self.exam.get("id", "")),
            candidate=str(self.candidate.get("id", "")),
            journal=str(request.get("journal", "")),
        )
        try:
            record.save(spool_folder)
        except OSError as exc:
            log.session.error("service.json cannot be written: %s", exc)
            return Connected(Connection.REFUSED, "service.refused", "service.json unwritable")
        body = {k: v for k, v in request.items() if k != "journal"}
        body.update({"session_id": session_id, "spool_header": header})
        if resumes is not None:
            body.update({"resumes": resumes.session_id, "resume_token": resumes.upload_token})
        reply = self._retrying(lambda: self.client.create_session(self.session_token(), body))
        upload_token = reply.body.get("upload_token") if reply.ok else None
        if not isinstance(upload_token, str) or not upload_token:
            return self._failed("session", reply)
        flags = tuple(str(f) for f in reply.body.get("flags", []) if isinstance(f, str))
        record = SessionRecord(
            **{
                **asdict(record),
                "upload_token": upload_token,
                "upload_token_expires_utc": str(reply.body.get("upload_token_expires_utc", "")),
                "flags": flags,
            }
        )
        try:
            record.save(spool_folder)
        except OSError as exc:
            log.session.error("service.json cannot be written: %s", exc)
        self.record = record
        self._report(
            Event(
                "session.service_connected",
                {
                    "url": url,
                    "session_id": session_id,
                    "exam": record.exam,
                    "candidate": record.candidate,
                    "created": reply.status == 201,
                    "flags": list(flags),
                    "resumed_from": reply.body.get("resumed_from"),
                },
            )
        )
        log.session.info("Connected to %s: session %s", url, session_id)
        return Connected(Connection.CONNECTED)

    def _take_session_token(self, reply: Reply) -> bool:
        token = reply.body.get("session_token")
        if not isinstance(token, str) or not token:
            return False
        self._session_token = token
        self._session_expires = _parse_utc(str(reply.body.get("expires_utc", "")))
        return True

    def _failed(self, step: str, reply: Reply) -> Connected:
        if reply.ok:  # a 2xx without what the protocol promises
            reply = Reply(0, error="bad_reply", message="the service's answer lacks a token")
        state = Connection.UNREACHABLE if reply.retryable else Connection.REFUSED
        text_id = "service.unreachable" if state is Connection.UNREACHABLE else _refusal(reply)
        self._report(
            Event(
                "session.service_refused"
                if state is Connection.REFUSED
                else "session.service_unreachable",
                {
                    "url": self.client.base_url,
                    "step": step,
                    "status": reply.status,
                    "error": reply.error,
                    "message": reply.message,
                },
            )
        )
        log.session.warning("The service %s: %s %s", step, reply.describe(), reply.message)
        return Connected(state, text_id, reply.describe())

    def session_token(self) -> str:
        """The session token, renewed first when it expires within :data:`RENEW_BEFORE_S`."""
        if self._session_token and self._session_expires - self._clock() < RENEW_BEFORE_S:
            reply = self.client.renew(self._session_token)
            if reply.ok and self._take_session_token(reply):
                self._report(
                    Event("session.service_renewed", {"expires_utc": reply.body.get("expires_utc")})
                )
            else:
                log.session.warning("Renewing the session token: %s", reply.describe())
        return self._session_token
