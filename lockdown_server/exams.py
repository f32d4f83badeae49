"""Exams and candidates: the signed exam configuration, launch tokens and launch links.

An exam's configuration is a Lockdown exam configuration (``lockdown.config.examfile``)
signed with the service's Ed25519 key: it carries the service URL, the service's token key
and recipient key, and the exam's probe token. The configuration a candidate's launch link
downloads (``GET /launch?token=…``) is the same with the candidate's launch token added,
signed again. Launch links follow the client's grammar: ``lockdowns://HOST/launch?token=…``,
``lockdown://`` for loopback.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from lockdown.config import examfile
from lockdown.session import tokens
from lockdown.session.tokens import TokenType
from lockdown_server.errors import ServiceError
from lockdown_server.service import Service
from lockdown_server.store import db, models

STREAMS: Final = ("camera", "microphone", "screen")
EXAM_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
DAY: Final = 86400


@dataclass(frozen=True)
class Exam:
    id: str
    title: str
    streams: tuple[str, ...]
    valid_from: float | None
    valid_until: float | None
    retention_days: int
    config_body: str

    @property
    def retention_s(self) -> int:
        return self.retention_days * DAY

    @classmethod
    def from_row(cls, row: Any) -> Exam:
        return cls(
            row.id,
            row.title,
            tuple(json.loads(row.streams)),
            row.valid_from,
            row.valid_until,
            row.retention_days,
            row.config_body,
        )


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def _when(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def service_url_of(url: str) -> str:
    """``url`` checked: http(s) with a host; http only for loopback addresses.

    Raises:
        ServiceError: not such a URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServiceError(f"{url!r} is not the service's URL (http(s)://HOST[:PORT]/)")
    if parts.scheme == "http" and not _loopback(parts.hostname):
        raise ServiceError(
            f"{url}: plain http is for this computer only; give the service's https:// URL"
        )
    return url if url.endswith("/") else url + "/"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def launch_link(service_url: str, token: str) -> str:
    parts = urlsplit(service_url)
    scheme = "lockdown" if parts.scheme == "http" else "lockdowns"
    base = parts.path.rstrip("/")
    return f"{scheme}://{parts.netloc}{base}/launch?token={token}"


def _body(
    *,
    exam_id: str,
    title: str,
    streams: Sequence[str],
    valid_from: float | None,
    valid_until: float | None,
    start_url: str,
    service_url: str,
    token_key: str,
    recipient_key: str,
    probe_token: str,
) -> str:
    lines = ["format = 1", "", "[exam]", f"id = {_toml(exam_id)}", f"title = {_toml(title)}"]
    if valid_from is not None:
        lines.append(f"valid_from = {_when(valid_from)}")
    if valid_until is not None:
        lines.append(f"valid_until = {_when(valid_until)}")
    if start_url:
        lines += ["", "[browser]", f"start_url = {_toml(start_url)}"]
    lines += ["", "[proctoring]"]
    lines += [f"{stream} = {'true' if stream in streams else 'false'}" for stream in STREAMS]
    lines += [
        "",
        "[service]",
        f"url = {_toml(service_url)}",
        f"token_key = {_toml(token_key)}",
        f"recipient_key = {_toml(recipient_key)}",
        f"probe_token = {_toml(probe_token)}",
    ]
    return "\n".join(lines) + "\n"


def create(
    service: Service,
    *,
    title: str,
    streams: Sequence[str],
    valid_from: float | None,
    valid_until: float | None,
    service_url: str,
    exam_id: str = "",
    start_url: str = "",
    retention_days: int = 30,
    now: float | None = None,
) -> tuple[Exam, bytes]:
    """Record a new exam; its signed configuration.

    Raises:
        ServiceError: a bad id, title, stream or window, or the id is taken.
    """
    moment = time.time() if now is None else now
    exam_id = exam_id or re.sub(r"[^A-Za-z0-9]+", "-", title).strip("-")[:40].lower()
    exam_id = exam_id or "exam"
    if not EXAM_ID.fullmatch(exam_id):
        raise ServiceError(f"{exam_id!r} is not an exam id (letters, digits, . _ -; 100 at most)")
    if not title.strip() or len(title) > 300:
        raise ServiceError("the exam needs a title of 1 to 300 characters")
    unknown = sorted(set(streams) - set(STREAMS))
    if unknown:
        raise ServiceError(f"unknown stream {unknown[0]!r}; choose from {', '.join(STREAMS)}")
    if valid_from is not None and valid_until is not None and valid_until <= valid_from:
        raise ServiceError("the start window ends before it starts; check --start and --end")
    if not 1 <= retention_days <= 3650:
        raise ServiceError("--retention-days must be from 1 to 3650")
    url = service_url_of(service_url)
    probe_until = (valid_until or moment + 365 * DAY) + retention_days * DAY
    probe = tokens.issue(
        service.keys.token,
        TokenType.PROBE,
        {"exam": exam_id},
        lifetime_s=max(probe_until - moment, 60),
        now=moment,
    )
    body = _body(
        exam_id=exam_id,
        title=title,
        streams=streams,
        valid_from=valid_from,
        valid_until=valid_until,
        start_url=start_url,
        service_url=url,
        token_key=service.keys.token_public,
        recipient_key=service.keys.recipient_public,
        probe_token=probe,
    )
    examfile.parse_body(body.encode(), origin="the new exam")  # the client's own parser
    with service.engine.begin() as conn:
        inserted = db.insert_once(
            conn,
            models.exams,
            {
                "id": exam_id,
                "title": title,
                "streams": json.dumps(sorted(set(streams))),
                "valid_from": valid_from,
                "valid_until": valid_until,
                "retention_days": retention_days,
                "config_body": body,
                "created_at": moment,
            },
        )
    if not inserted:
        raise ServiceError(f"an exam with id {exam_id!r} exists already; choose another --id")
    exam = Exam(exam_id, title, tuple(streams), valid_from, valid_until, retention_days, body)
    return exam, signed_config(service, exam)


def signed_config(service: Service, exam: Exam, launch_token: str = "") -> bytes:
    """The exam's configuration, with a candidate's launch token when given, signed."""
    body = exam.config_body
    if launch_token:  # [service] is the last table of the body
        body += f"launch_token = {_toml(launch_token)}\n"
    return examfile.sign(body.encode("utf-8"), service.keys.token)


def find(conn: Connection, exam_id: str) -> Exam | None:
    row = conn.execute(select(models.exams).where(models.exams.c.id == exam_id)).first()
    return Exam.from_row(row) if row is not None else None


def get(service: Service, exam_id: str) -> Exam:
    with service.engine.connect() as conn:
        exam = find(conn, exam_id)
    if exam is None:
        raise ServiceError(f"no exam {exam_id!r}; `lockdown-server exam list` shows them")
    return exam


def all_exams(service: Service) -> list[Exam]:
    with service.engine.connect() as conn:
        rows = conn.execute(select(models.exams).order_by(models.exams.c.created_at)).all()
    return [Exam.from_row(row) for row in rows]


@dataclass(frozen=True)
class Candidate:
    user_id: str
    group: str
    name: str


def add_candidates(
    service: Service,
    exam: Exam,
    people: Sequence[Candidate],
    service_url: str,
    *,
    now: float | None = None,
) -> list[str]:
    """Record candidates (again: their names are updated) and issue a launch link each.

    Raises:
        ServiceError: a candidate without an id, or with fields too long.
    """
    moment = time.time() if now is None else now
    until = exam.valid_until or moment + 30 * DAY
    if until <= moment:
        raise ServiceError(f"the exam {exam.id!r} has ended; no launch links are issued")
    url = service_url_of(service_url)
    links = []
    with service.engine.begin() as conn:
        for person in people:
            if not person.user_id or len(person.user_id) > 200:
                raise ServiceError("every candidate needs an id of 1 to 200 characters")
            if len(person.group) > 200 or len(person.name) > 300:
                raise ServiceError(f"candidate {person.user_id!r}: group or name too long")
            values = {
                "exam_id": exam.id,
                "user_id": person.user_id,
                "grp": person.group,
                "name": person.name,
                "created_at": moment,
            }
            if not db.insert_once(conn, models.candidates, values):
                conn.execute(
                    models.candidates.update()
                    .where(
                        (models.candidates.c.exam_id == exam.id)
                        & (models.candidates.c.user_id == person.user_id)
                    )
                    .values(grp=person.group, name=person.name)
                )
            token = tokens.issue(
                service.keys.token,
                TokenType.LAUNCH,
                {"sub": person.user_id, "grp": person.group, "name": person.name, "exam": exam.id},
                lifetime_s=until - moment,
                now=moment,
            )
            links.append(launch_link(url, token))
    return links


def new_id() -> str:
    return secrets.token_hex(8)
