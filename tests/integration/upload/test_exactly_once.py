"""Every finalized segment reaches the real service exactly once and byte-identical,
through the project's fault proxy (drops, delays, resets mid-body, cut replies, 5xx) and
``kill -9`` of the client and of the service at seeded random moments.

The seed is printed (``-s`` shows it); set ``LOCKDOWN_FAULT_SEED`` to replay a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from lockdown.session.client import ServiceClient, content_digest
from lockdown.session.state import Connection, ServiceSession, SessionRecord
from lockdown.upload.base import Stream
from lockdown.upload.spool import Spool, listing
from lockdown_server.store import models
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.service import REPO, ServiceProcess, Storage, launch_token
from tests.unit.upload.factory import TEST_KEY, Events, segment

SEED = int(os.environ.get("LOCKDOWN_FAULT_SEED", "1919"))
SEGMENTS = 10  # per stream, three streams
CLIENT_KILLS = 3
SERVICE_KILLS = 2
FAULTS = Faults(
    drop=0.06,
    error=0.06,
    error_status=503,
    retry_after=None,
    reset=0.15,
    reset_after=2048,
    cut_reply=0.15,
    delay_s=0.005,
)


def _session(service: ServiceProcess, folder: Path, url: str, exam: str) -> SessionRecord:
    """A spool and its session at the service, created through ``url`` (the proxy)."""
    service.create_exam(exam)
    link = service.add_candidate(exam, f"{exam}-u")
    Spool.open(folder, report=Events(), max_bytes=1 << 30, key=TEST_KEY).close()
    client = ServiceClient(url)
    session = ServiceSession(client, Events(), pause=lambda _s: time.sleep(0.05))
    assert session.exchange(launch_token(link)).state is Connection.CONNECTED
    request = {"client_version": "test", "build": "development", "build_identity": "t"}
    created = session.create(folder, {**request, "settings_hash": "h", "isolation_mode": "shared"})
    client.close()
    assert created.state is Connection.CONNECTED, created
    record = SessionRecord.load(folder)
    assert record is not None and record.upload_token
    return record


def _child(folder: Path, seed: int, segments: int = SEGMENTS) -> subprocess.Popen[bytes]:
    """The recording client; its output goes to ``client.log`` beside the spool."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with (folder.parent / "client.log").open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.upload_child",
                str(folder),
                "--segments",
                str(segments),
                "--seed",
                str(seed),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _stored(service: ServiceProcess, sid: str) -> dict[tuple[str, int], list[str]]:
    """(stream, seq) -> object keys of the service's rows (read from its database)."""
    with service.open().engine.connect() as conn:
        rows = conn.execute(
            select(
                models.segments.c.stream, models.segments.c.seq, models.segments.c.object_key
            ).where(models.segments.c.session_id == sid)
        ).all()
    stored: dict[tuple[str, int], list[str]] = {}
    for stream, seq, key in rows:
        stored.setdefault((stream, int(seq)), []).append(key)
    return stored


def test_every_segment_is_stored_exactly_once_through_faults_and_kills(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path, storage: Storage
) -> None:
    """On SQLite + folder and on PostgreSQL + S3 (the real client's whole path)."""
    print(f"fault seed {SEED} (LOCKDOWN_FAULT_SEED replays it)")
    rng = random.Random(SEED)
    service = service_factory(storage=storage, extra=("--sweep-age", "0"))  # one process
    proxy = FaultProxy(("127.0.0.1", service.port), seed=SEED).start()
    folder = tmp_path / "client" / "spool"
    record = _session(service, folder, proxy.url, f"once-{SEED}")
    proxy.set_faults(FAULTS)
    schedule = sorted(
        [("client", rng.uniform(0.3, 4.0)) for _ in range(CLIENT_KILLS)]
        + [("service", rng.uniform(0.3, 4.0)) for _ in range(SERVICE_KILLS)],
        key=lambda item: item[1],
    )
    kills = {"client": 0, "service": 0}
    child = _child(folder, SEED)
    began = time.monotonic()
    try:
        for kind, at in schedule:
            time.sleep(max(0.0, began + at - time.monotonic()))
            if kind == "client" and child.poll() is None:
                child.send_signal(signal.SIGKILL)  # kill -9: no chance to finish anything
                child.wait(10)
                kills["client"] += 1
                child = _child(folder, SEED + kills["client"])
            elif kind == "service":
                service.kill()
                kills["service"] += 1
                time.sleep(rng.uniform(0.0, 0.5))
                service.start()
        child.wait(timeout=150)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    print(f"kills {kills}, proxy {dict(proxy.stats)}")
    assert child.returncode == 0, (folder.parent / "client.log").read_text()[-3000:]
    proxy.stop()

    # what the spool holds: every finalized segment of the three streams
    records, dropped = listing(folder)
    assert not dropped and len(records) == 3 * SEGMENTS
    spooled = {
        (r.stream.value, r.seq): (folder / "segments" / r.file).read_bytes() for r in records
    }
    # the service's manifest matches the spool, digest for digest
    direct = ServiceClient(service.url)
    manifest = direct.manifest(record.upload_token, record.session_id)
    direct.close()
    assert manifest.ok, manifest
    held = {
        (stream, int(seq)): digest
        for stream, info in manifest.body["streams"].items()
        for seq, digest in info["seqs"].items()
    }
    assert held == {key: content_digest(body) for key, body in spooled.items()}
    assert manifest.body["closed"] is True
    # stored exactly once (one row per segment) and byte-identical
    stored = _stored(service, record.session_id)
    assert set(stored) == set(spooled)
    assert all(len(keys) == 1 for keys in stored.values())
    for key, (object_key,) in stored.items():
        assert service.open().objects.read(object_key) == spooled[key], key
    assert len(service.object_keys()) == len(spooled)  # no object twice, none unnamed
    # the faults and kills happened (else this test proves nothing)
    assert kills["service"] == SERVICE_KILLS and kills["client"] >= 1
    # (which kinds a seed rolls varies; each kind on its own is the next test's)
    assert sum(proxy.stats[f] for f in ("dropped", "errors", "reset", "cut_reply")) >= 5
    journal = [
        json.loads(line) for line in (folder.parent / "journal.jsonl").read_text().splitlines()
    ]
    types = [r["type"] for r in journal]
    assert "upload.retry" in types and "upload.reconciled" in types
    # the events went too, with the chain heads: the service holds the journal's records
    assert any(r["type"] == "upload.acknowledged" for r in journal)


def test_a_cut_reply_and_a_reset_mid_body_never_store_twice(
    service_factory: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    """A cut reply: the service stored the segment and the client never heard. The retry
    gets 200 with the same digest, and one row."""
    service = service_factory()
    proxy = FaultProxy(("127.0.0.1", service.port), seed=SEED).start()
    folder = tmp_path / "spool"
    record = _session(service, folder, proxy.url, f"cut-{SEED}")
    spool = Spool.open(folder, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    spool.add(segment(Stream.CAMERA, 0, size=50_000))
    body = (folder / "segments" / "camera-000000.seg").read_bytes()
    digest = content_digest(body)
    client = ServiceClient(proxy.url)
    meta = {"start_utc": "2026-11-22T09:00:00+00:00", "duration": 2.0}
    meta |= {"plain_sha256": "0" * 64, "previous_digest": ""}
    proxy.set_faults(Faults(cut_reply=1.0))
    first = client.put_segment(
        record.upload_token, record.session_id, "camera", 0, body, digest=digest, meta=meta
    )
    assert first.status == 0  # no answer: the client cannot know it was stored
    proxy.set_faults(Faults())
    again = client.put_segment(
        record.upload_token, record.session_id, "camera", 0, body, digest=digest, meta=meta
    )
    client.close()
    assert (again.status, again.body.get("digest")) == (200, digest), again
    assert list(_stored(service, record.session_id)) == [("camera", 0)]
    # a reset mid-body: nothing stored, the retry stores it once
    spool.add(segment(Stream.CAMERA, 1, size=50_000))
    body = (folder / "segments" / "camera-000001.seg").read_bytes()
    digest = content_digest(body)
    proxy.set_faults(Faults(reset=1.0, reset_after=10_000))
    torn = client.put_segment(
        record.upload_token, record.session_id, "camera", 1, body, digest=digest, meta=meta
    )
    assert torn.status == 0 and ("camera", 1) not in _stored(service, record.session_id)
    proxy.set_faults(Faults())
    stored = client.put_segment(
        record.upload_token, record.session_id, "camera", 1, body, digest=digest, meta=meta
    )
    assert (stored.status, stored.body.get("digest")) == (201, digest)
    assert proxy.stats["reset"] == 1 and proxy.stats["cut_reply"] == 1
    client.close()
    spool.close()
    proxy.stop()
