"""Several service processes on one PostgreSQL and one S3 bucket, and the retention job.

Two ``lockdown-server serve`` processes share a database, a bucket and a keys folder; the
fault proxy stands for the load balancer in front of them. The real recording client
uploads a whole exam while the proxy moves it from one process to the other and back,
then one process is killed with ``kill -9`` mid-upload: every segment is stored once and
byte-identical, every event once. A start beside a running process leaves what that
process may be committing (young leftovers), and only removes old ones.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from lockdown.capture.base import Stream
from lockdown.session.client import ServiceClient, content_digest
from lockdown.upload.spool import listing
from lockdown_server import retention
from lockdown_server.store import models
from tests.conftest import shared_storage
from tests.integration.upload.test_exactly_once import _child, _session
from tests.support.faultproxy import FaultProxy
from tests.support.s3 import MotoServer
from tests.support.service import Api, ServiceProcess, Storage, launch_token, spool_segments
from tests.unit.upload.factory import segment

Factory = Callable[..., ServiceProcess]
SEGMENTS = 30  # per stream, three streams
DAY = 86400


@pytest.fixture
def pg_s3(request: pytest.FixtureRequest) -> Storage:
    return shared_storage(request)


def _rows(service: ServiceProcess, sid: str) -> int:
    with service.open().engine.connect() as conn:
        count = conn.scalar(
            select(func.count())
            .select_from(models.segments)
            .where(models.segments.c.session_id == sid)
        )
    return int(count or 0)


def _wait_rows(service: ServiceProcess, sid: str, at_least: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    while (count := _rows(service, sid)) < at_least:
        assert time.monotonic() < deadline, f"only {count} segments stored"
        time.sleep(0.02)
    return count


def test_two_processes_switched_mid_exam_and_one_killed_lose_and_duplicate_nothing(
    service_factory: Factory, tmp_path: Path, pg_s3: Storage
) -> None:
    data = tmp_path / "shared"  # the keys folder both processes use
    first = service_factory(data=data, storage=pg_s3)
    second = service_factory(data=data, storage=pg_s3)
    assert first.port != second.port
    balancer = FaultProxy(("127.0.0.1", first.port), seed=20).start()
    folder = tmp_path / "client" / "spool"
    record = _session(first, folder, balancer.url, f"shared-{uuid.uuid4().hex[:6]}")
    sid = record.session_id
    child = _child(folder, 20, segments=SEGMENTS)
    served: dict[str, int] = {}
    try:
        served["first"] = _wait_rows(first, sid, 10)
        balancer.set_upstream(("127.0.0.1", second.port))
        balancer.sever()  # the client's next request lands on the other process
        served["second"] = _wait_rows(first, sid, served["first"] + 15) - served["first"]
        balancer.set_upstream(("127.0.0.1", first.port))
        balancer.sever()
        before_kill = _wait_rows(first, sid, served["first"] + served["second"] + 10)
        first.kill()  # kill -9 mid-upload; the balancer sends everything to the other one
        balancer.set_upstream(("127.0.0.1", second.port))
        child.wait(timeout=150)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    balancer.stop()
    print(f"served {served}, {before_kill} stored when the first process was killed")
    assert child.returncode == 0, (folder.parent / "client.log").read_text()[-3000:]
    assert served["first"] >= 10 and served["second"] >= 15  # both processes took uploads
    assert before_kill < 3 * SEGMENTS  # the kill landed mid-exam

    records, dropped = listing(folder)
    assert not dropped and len(records) == 3 * SEGMENTS
    spooled = {
        (r.stream.value, r.seq): (folder / "segments" / r.file).read_bytes() for r in records
    }
    direct = ServiceClient(second.url)
    manifest = direct.manifest(record.upload_token, sid)
    direct.close()
    held = {
        (stream, int(seq)): digest
        for stream, info in manifest.body["streams"].items()
        for seq, digest in info["seqs"].items()
    }
    assert held == {key: content_digest(body) for key, body in spooled.items()}
    assert manifest.body["closed"] is True
    opened = second.open()
    with opened.engine.connect() as conn:
        rows = conn.execute(
            select(models.segments).where(models.segments.c.session_id == sid)
        ).all()
        events = conn.execute(
            select(models.events.c.client_id).where(models.events.c.session_id == sid)
        ).all()
    assert len(rows) == len(spooled)  # one row each: nothing duplicated
    for row in rows:
        assert opened.objects.read(row.object_key) == spooled[(row.stream, row.seq)]
    assert events and len({e.client_id for e in events}) == len(events)
    # what the kill left (an object stored, its row never committed) goes at a later start
    # once no process can still be committing it (--sweep-age 0: nobody else is running)
    second.stop()
    first.extra = ("--sweep-age", "0")
    first.start()
    assert set(first.object_keys()) == {row.object_key for row in rows}
    assert first.object_keys(".tmp/") == []


def test_a_start_beside_a_running_process_removes_only_old_leftovers(
    service_factory: Factory, tmp_path: Path, pg_s3: Storage, moto: MotoServer
) -> None:
    data = tmp_path / "shared"
    running = service_factory(data=data, storage=pg_s3)
    client = moto.client()
    young = ["segments/s1/ab/young-object", ".tmp/young-temporary"]
    for key in young:
        client.put_object(Bucket=pg_s3.s3_bucket, Key=key, Body=b"mid-upload elsewhere")
    # another process starts: what may be another's upload in progress stays
    second = service_factory(data=data, storage=pg_s3)
    assert set(young) <= set(moto.keys(pg_s3.s3_bucket))
    # a start that counts them as old (positive control: the sweep does remove leftovers)
    second.stop()
    second.extra = ("--sweep-age", "0")
    second.start()
    assert not set(young) & set(moto.keys(pg_s3.s3_bucket))
    assert running.process is not None and running.process.poll() is None


def _retained_session(service: ServiceProcess, api: Api, days: int) -> tuple[str, str]:
    """A new exam keeping recordings ``days`` days, a candidate, a session: (sid, upload)."""
    exam_id = f"keep-{uuid.uuid4().hex[:8]}"
    service.create_exam(exam_id, retention_days=days)
    token = api.session_token(launch_token(service.add_candidate(exam_id, "u-keep")))
    sid = str(uuid.uuid4())
    reply = api.create_session(token, sid)
    assert reply.status_code == 201, reply.text
    return sid, str(reply.json()["upload_token"])


def _expire(service: ServiceProcess, sid: str, *, last_seen: float, closed: bool) -> None:
    with service.open().engine.begin() as conn:
        conn.execute(
            update(models.sessions)
            .where(models.sessions.c.id == sid)
            .values(last_seen=last_seen, closed_at=last_seen if closed else None)
        )


@pytest.mark.parametrize("backend", ["sqlite", "pg-s3"])
def test_retention_deletes_exactly_what_has_expired(
    service_factory: Factory,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    backend: str,
) -> None:
    """Exams keeping 7 and 30 days; sessions last active 10 and 40 days ago: only the
    7-day exam's 10-day-old and both 40-day-old sessions go (objects, then rows)."""
    storage = shared_storage(request) if backend == "pg-s3" else Storage()
    service = service_factory(storage=storage)
    api = Api(service.url)
    now = time.time()
    plan = {  # (retention days, days since last activity, closed) -> expired?
        ("short", 10, True): True,
        ("short", 3, False): False,
        ("long", 10, True): False,
        ("long", 40, False): True,
    }
    sessions: dict[tuple[str, int, bool], str] = {}
    for n, (exam_kind, age, closed) in enumerate(plan):
        days = 7 if exam_kind == "short" else 30
        sid, upload = _retained_session(service, api, days)
        recipient = (service.data / "keys" / "recipient.pub").read_text().strip()
        made = [segment(Stream.CAMERA, seq, 5000) for seq in range(2)]
        for seg in spool_segments(tmp_path / f"spool-{n}", recipient, made)[1]:
            assert api.put(upload, sid, seg).status_code == 201
        event = {"id": f"e{n}", "record": {"type": "t"}}
        assert api.events(upload, sid, [event], {}).status_code == 200
        _expire(service, sid, last_seen=now - age * DAY, closed=closed)
        sessions[(exam_kind, age, closed)] = sid
    keys_before = set(service.object_keys())
    opened = service.open()
    with opened.engine.connect() as conn:
        owner: dict[str, str] = {
            row.object_key: row.session_id for row in conn.execute(select(models.segments))
        }
    due = {sid for key, sid in sessions.items() if plan[key]}

    dry = service.cli("retention", "--dry-run")
    assert set(service.object_keys()) == keys_before and dry.stdout.count("\t") == 4 * len(due)
    done = service.cli("retention")
    assert {line.split("\t")[1] for line in done.stdout.splitlines()} == due
    # the expired sessions' objects are gone, every other object is still there
    assert set(service.object_keys()) == {k for k in keys_before if owner[k] not in due}
    with opened.engine.connect() as conn:
        left = set(conn.scalars(select(models.sessions.c.id)))
        segment_owners = set(conn.scalars(select(models.segments.c.session_id)))
        event_owners = set(conn.scalars(select(models.events.c.session_id)))
        log = conn.execute(select(models.retention_log)).all()
    assert left & due == set() and set(sessions.values()) - due <= left
    assert segment_owners == event_owners == set(sessions.values()) - due
    assert {r.session_id for r in log} == due
    assert all(r.objects == 2 and r.bytes > 0 and r.rows >= 4 for r in log)
    # a second run finds nothing more
    assert service.cli("retention").stdout == ""
    assert retention.run(opened) == []
