"""The uploader against the real service through the fault proxy: its health for the
kiosk, Retry-After honoured, and journal events that never wait behind media."""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lockdown.events import Event, Journal
from lockdown.session.client import ServiceClient
from lockdown.session.state import Connection, ServiceSession, SessionRecord
from lockdown.upload.base import Stream
from lockdown.upload.source import SpoolSource
from lockdown.upload.spool import Spool
from lockdown.upload.uploader import Health, RetryPolicy, Uploader, UploadSettings
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.service import ServiceProcess, launch_token
from tests.unit.upload.factory import TEST_KEY, Events, segment

FAST = UploadSettings(retry=RetryPolicy(first_s=0.02, max_s=0.2), idle_s=0.05)


@pytest.fixture
def proxy(lockdown_service: ServiceProcess) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", lockdown_service.port), seed=19) as started:
        yield started


def session_spool(service: ServiceProcess, folder: Path, exam: str) -> tuple[Spool, SessionRecord]:
    service.create_exam(exam)
    link = service.add_candidate(exam, f"{exam}-u")
    spool = Spool.open(folder, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    session = ServiceSession(ServiceClient(service.url), Events(), pause=lambda _s: None)
    assert session.exchange(launch_token(link)).state is Connection.CONNECTED
    request = {"client_version": "t", "build": "development", "build_identity": "t"}
    created = session.create(folder, {**request, "settings_hash": "h", "isolation_mode": "shared"})
    session.client.close()
    assert created.state is Connection.CONNECTED
    record = SessionRecord.load(folder)
    assert record is not None
    return spool, record


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_health_goes_offline_backing_off_and_ok_and_retry_after_is_honoured(
    tmp_path: Path, lockdown_service: ServiceProcess, proxy: FaultProxy
) -> None:
    spool, record = session_spool(lockdown_service, tmp_path / "s", "lanes-health")
    events = Events()
    proxy.set_faults(Faults(drop=1.0))  # nothing answers
    uploader = Uploader(
        ServiceClient(proxy.url),
        record.session_id,
        record.upload_token,
        SpoolSource(spool),
        journal=None,
        report=events,
        settings=FAST,
        rng=random.Random(19),
    )
    seen: list[Health] = []
    uploader.on_health(seen.append)
    uploader.start()
    try:
        wait_for(lambda: uploader.health is Health.OFFLINE)
        # the service answers 503 with Retry-After: 1
        proxy.set_faults(Faults(error=1.0, error_status=503, retry_after=1))
        wait_for(lambda: uploader.health is Health.BACKING_OFF)
        wait_for(lambda: any(e["status"] == 503 for e in events.of("upload.retry")))
        proxy.set_faults(Faults())
        spool.add(segment(Stream.CAMERA, 0))
        uploader.wake()
        wait_for(lambda: uploader.health is Health.OK and not spool.pending())
    finally:
        uploader.stop()
        spool.close()
    assert seen[:3] == [Health.BACKING_OFF, Health.OFFLINE, Health.BACKING_OFF]
    assert seen[-1] is Health.OK
    retried = [e for e in events.of("upload.retry") if e["status"] == 503]
    assert retried and all(float(e["delay_s"]) >= 1.0 for e in retried)  # Retry-After: 1
    silent = [e for e in events.of("upload.retry") if e["status"] == 0]
    assert all(0.02 <= float(e["delay_s"]) <= 0.2 for e in silent)  # the jitter's bounds
    assert [(e["stream"], e["seq"]) for e in events.of("upload.acknowledged")] == [("camera", 0)]


def test_journal_events_never_wait_behind_a_slow_segment(
    tmp_path: Path, lockdown_service: ServiceProcess, proxy: FaultProxy
) -> None:
    spool, record = session_spool(lockdown_service, tmp_path / "s", "lanes-events")
    spool.add(segment(Stream.SCREEN, 0, size=1_500_000))  # 1.5 MB at 150 kB/s: ~10 s
    journal = Journal.open(tmp_path / "journal.jsonl")
    proxy.set_faults(Faults(rate_bps=150_000))
    uploader = Uploader(
        ServiceClient(proxy.url),
        record.session_id,
        record.upload_token,
        SpoolSource(spool),
        journal=journal.path,
        report=Events(),
        settings=FAST,
    ).start()

    def events_held() -> int:
        db = sqlite3.connect(lockdown_service.data / "service.db")
        try:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM events WHERE session_id = ?", (record.session_id,)
            ).fetchone()
        finally:
            db.close()
        return int(count)

    try:
        wait_for(lambda: proxy.stats["bytes_up"] > 100_000)  # the segment is on its way
        journal.append(Event("guards.focus_lost", {"n": 1}))
        journal.flush()
        began = time.monotonic()
        wait_for(lambda: events_held() >= 1, timeout=8.0)
        arrived = time.monotonic() - began
        assert spool.pending(), "the segment was still on its way"
    finally:
        uploader.stop(timeout=1.0)
        journal.close()
        spool.close()
    print(f"events arrived {arrived:.2f} s after being journalled, behind a 10 s segment")
    assert arrived < 5.0
