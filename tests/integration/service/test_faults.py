"""Faults on the service side: a full disk, a reset mid-body, ``kill -9`` mid-request, and
a seeded run through the fault proxy with kills at random points — every segment ends up
stored exactly once and byte-identical, and the manifest matches the spool."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from lockdown.capture.base import Stream
from lockdown_server.store import models
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.service import (
    Api,
    ServiceProcess,
    Storage,
    StoredSegment,
    launch_token,
    spool_segments,
)
from tests.unit.upload.factory import segment

Factory = Callable[..., ServiceProcess]


def _start_session(service: ServiceProcess, base: str | None = None) -> tuple[str, str]:
    """A new exam, candidate and session on ``service``: (session id, upload token)."""
    exam_id = f"exam-{uuid.uuid4().hex[:8]}"
    service.create_exam(exam_id)
    link = service.add_candidate(exam_id, "u-fault")
    api = Api(base or service.url)
    try:
        token = api.session_token(launch_token(link))
        sid = str(uuid.uuid4())
        reply = api.create_session(token, sid)
        assert reply.status_code == 201, reply.text
        return sid, reply.json()["upload_token"]
    finally:
        api.close()


def _segments(
    service: ServiceProcess, folder: Path, sizes: list[tuple[Stream, int]]
) -> list[StoredSegment]:
    recipient = (service.data / "keys" / "recipient.pub").read_text().strip()
    counters: dict[Stream, int] = {}
    made = []
    for stream, size in sizes:
        seq = counters.get(stream, 0)
        counters[stream] = seq + 1
        made.append(segment(stream, seq, size))
    return spool_segments(folder, recipient, made)[1]


def _temporaries(service: ServiceProcess) -> list[str]:
    """Temporary objects: files in the folder's ``.tmp``, or ``.tmp/`` keys in the bucket."""
    if service.storage.s3_bucket:
        return service.object_keys(".tmp/")
    return [p.name for p in (service.data / "objects" / ".tmp").iterdir()]


def _stored_rows(service: ServiceProcess, sid: str) -> dict[tuple[str, int], bytes]:
    """(stream, seq) -> the stored object's bytes, read through the database."""
    opened = service.open()
    with opened.engine.connect() as conn:
        rows = conn.execute(
            select(models.segments).where(models.segments.c.session_id == sid)
        ).all()
    return {(r.stream, r.seq): opened.objects.read(r.object_key) for r in rows}


def test_a_full_disk_gets_507_with_retry_after_and_stores_nothing(
    service_factory: Factory, tmpfs: Callable[[str], Path], tmp_path: Path
) -> None:
    disk = tmpfs("6m")
    service = service_factory(data=disk / "data", extra=("--min-free-mb", "0"))
    sid, upload = _start_session(service)
    segments = _segments(service, tmp_path / "spool", [(Stream.SCREEN, 400_000)] * 6)
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * max(free - 1_000_000, 0))
    api = Api(service.url)
    codes = []
    for seg in segments:
        reply = api.put(upload, sid, seg)
        codes.append(reply.status_code)
        if reply.status_code == 507:
            assert reply.json()["error"] == "storage_full"
            assert int(reply.headers["Retry-After"]) > 0
            assert api.head(upload, sid, seg.stream, seg.seq).status_code == 404
            break
    assert 201 in codes and codes[-1] == 507, codes
    assert _temporaries(service) == []
    refused = segments[len(codes) - 1]
    tight = disk / "tight"  # not one byte left: the database cannot write either
    with tight.open("wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError:
            pass
    full = api.put(upload, sid, refused)
    assert full.status_code == 507 and full.json()["error"] == "storage_full"
    tight.unlink()
    filler.unlink()  # the operator makes room; the client's retry goes through
    assert api.put(upload, sid, refused).status_code == 201
    stored = _stored_rows(service, sid)
    assert len(stored) == len(codes)
    assert all(stored[(s.stream, s.seq)] == s.body for s in segments[: len(codes)])
    api.close()


def test_a_reset_mid_body_stores_nothing(
    service_factory: Factory, tmp_path: Path, storage: Storage
) -> None:
    service = service_factory(storage=storage)
    sid, upload = _start_session(service)
    (seg,) = _segments(service, tmp_path / "spool", [(Stream.CAMERA, 300_000)])
    with FaultProxy(("127.0.0.1", service.port), seed=1) as proxy:
        proxy.set_faults(Faults(reset=1.0, reset_after=100_000))
        with pytest.raises(requests.ConnectionError):
            Api(proxy.url).put(upload, sid, seg)
    # the service may still be granting the request when the reset comes: the temporary
    # is made and then removed once it reads the cut; it says so in its log
    deadline = time.monotonic() + 20
    while "was cut off after" not in service.log.read_text():
        assert time.monotonic() < deadline, service.log.read_text()[-2000:]
        time.sleep(0.05)
    api = Api(service.url)
    assert api.head(upload, sid, "camera", 0).status_code == 404
    assert _temporaries(service) == []
    assert api.put(upload, sid, seg).status_code == 201  # control: the whole body stores


def test_kill_9_mid_request_leaves_nothing_half_stored_or_unnamed(
    service_factory: Factory, tmp_path: Path
) -> None:
    service = service_factory()
    sid, upload = _start_session(service)
    (seg,) = _segments(service, tmp_path / "spool", [(Stream.SCREEN, 600_000)])
    errors: list[BaseException] = []
    with FaultProxy(("127.0.0.1", service.port), seed=2) as proxy:
        proxy.set_faults(Faults(rate_bps=300_000))

        def slow_put() -> None:
            try:
                Api(proxy.url).put(upload, sid, seg)
            except requests.RequestException as exc:
                errors.append(exc)

        worker = threading.Thread(target=slow_put)
        worker.start()
        deadline = time.monotonic() + 10
        while not _temporaries(service) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _temporaries(service), "the upload never started"
        service.kill()
        worker.join(20)
    assert errors, "the client must see the upload fail"
    assert _temporaries(service)  # the torn temporary is still on disk after the kill
    # an object committed whose row never was (a kill between the two) is never acknowledged
    orphan = service.data / "objects" / "segments" / sid / "ab" / ("ab" + "0" * 30)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"stored, but its row was never committed")
    service.start()
    assert _temporaries(service) == []  # removed at the start, before anything is answered
    assert not orphan.exists()
    api = Api(service.url)
    assert api.head(upload, sid, seg.stream, seg.seq).status_code == 404
    assert api.put(upload, sid, seg).status_code == 201
    assert _stored_rows(service, sid) == {(seg.stream, seg.seq): seg.body}


def _acknowledged(reply: requests.Response, seg: StoredSegment) -> bool:
    return reply.status_code in (200, 201) and reply.json().get("digest") == seg.digest


def test_every_segment_is_stored_exactly_once_through_faults_and_kills(
    service_factory: Factory, tmp_path: Path, storage: Storage
) -> None:
    """On SQLite + folder and on PostgreSQL + S3; one process here, so its start may sweep
    every leftover (``--sweep-age 0``)."""
    seed = int(os.environ.get("LOCKDOWN_TEST_SEED", "1919"))
    print(f"seed {seed} (set LOCKDOWN_TEST_SEED to repeat another run)")
    rng = random.Random(seed)
    service = service_factory(storage=storage, extra=("--sweep-age", "0"))
    sizes = [(rng.choice(list(Stream)), rng.randrange(2_000, 120_000)) for _ in range(16)]
    segments = _segments(service, tmp_path / "spool", sizes)
    kill_delays = [rng.uniform(0.2, 1.2) for _ in range(3)]  # after the service is ready
    problems: list[str] = []
    attempts = 0
    with FaultProxy(("127.0.0.1", service.port), seed=seed) as proxy:
        sid, upload = _start_session(service, proxy.url)
        proxy.set_faults(
            Faults(
                drop=0.1, error=0.1, reset=0.1, reset_after=3000, cut_reply=0.15, rate_bps=400_000
            )
        )

        def uploader() -> None:
            """Oldest first; acknowledged only on a reply echoing the digest; after a
            failure, reconcile with the service's manifest (as after a crash)."""
            nonlocal attempts
            pending = list(segments)
            while pending and attempts < 500:
                seg = pending[0]
                attempts += 1
                client = Api(proxy.url, timeout=10)
                try:
                    reply = client.put(upload, sid, seg)
                    if _acknowledged(reply, seg):
                        pending.pop(0)
                        continue
                    if reply.status_code == 409:
                        problems.append(f"conflict on {seg.stream} {seg.seq}: {reply.text}")
                        return
                    manifest = client.manifest(upload, sid)
                    if manifest.status_code == 200:
                        have = {
                            (stream, int(seq)): digest
                            for stream, entry in manifest.json()["streams"].items()
                            for seq, digest in entry["seqs"].items()
                        }
                        pending = [p for p in pending if have.get((p.stream, p.seq)) != p.digest]
                except requests.RequestException:
                    time.sleep(0.05)
                finally:
                    client.close()
            if pending:
                problems.append(f"{len(pending)} segment(s) never acknowledged")

        worker = threading.Thread(target=uploader)
        worker.start()
        for delay in kill_delays:  # kill -9 wherever the upload happens to be
            time.sleep(delay)
            service.kill()
            service.start()
        worker.join(180)
        stats = dict(proxy.stats)
    print(f"{attempts} attempts, {len(kill_delays)} kills, proxy: {stats}")
    assert not worker.is_alive() and problems == []
    assert stats.get("cut_reply", 0) + stats.get("reset", 0) + stats.get("errors", 0) > 0
    service.restart()  # the start sweeps what the kills left
    manifest = Api(service.url).manifest(upload, sid).json()
    expected: dict[str, dict[str, dict[str, str]]] = {}
    for seg in segments:
        expected.setdefault(seg.stream, {"seqs": {}})["seqs"][str(seg.seq)] = seg.digest
    assert manifest["streams"] == expected
    stored = _stored_rows(service, sid)
    assert stored == {(s.stream, s.seq): s.body for s in segments}
    opened = service.open()
    with opened.engine.connect() as conn:
        rows = conn.scalar(
            select(func.count())
            .select_from(models.segments)
            .where(models.segments.c.session_id == sid)
        )
    assert rows == len(segments) == len(service.object_keys())
    assert _temporaries(service) == []
