"""A whole exam session through the real proctoring service, in-process: the session is
made before proctoring starts, refusals say why, every segment is sent before the kiosk
unlocks, and the spools of earlier sessions are drained at the next start."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from lockdown.app import run_session
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, convert, flatten, layer
from lockdown.events import read_records
from lockdown.launch import load_exam
from lockdown.paths import temp_paths
from lockdown.session import tokens
from lockdown.session.client import ServiceClient, content_digest
from lockdown.session.state import Connection, ServiceSession, SessionRecord
from lockdown.texts import text
from lockdown.ui.kiosk import Kiosk
from lockdown.upload.base import Stream
from lockdown.upload.spool import Spool, listing
from tests.support.httpserver import LocalServer
from tests.support.service import ServiceProcess, launch_token
from tests.unit.upload.factory import TEST_KEY, Events, segment

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


def organisation(service: ServiceProcess) -> Organisation:
    """This computer's organisation: trusts the service's key; the machine policies and
    the camera relaxed so the session runs here (a generated camera pattern)."""
    public = (service.data / "keys" / "token.pub").read_text().strip()
    values = flatten(
        {
            "guards": {"virtual_machine": "warn", "remote_session": "allow"},
            "proctoring": {"camera_source": "pattern", "segment_length": 2},
            # the check screen before the exam is its own tests' (test_check_screen.py)
            "checks": {"before_exam": False},
        },
        origin="t",
    )
    return Organisation(
        values={
            **values,
            "config.trusted_keys": convert("config.trusted_keys", [public], origin="t"),
        }
    )


def service_exam(
    service: ServiceProcess, site: LocalServer, exam_id: str, user: str
) -> tuple[LoadedExam, str]:
    """The exam made at the service (camera and screen), opened from a candidate's link."""
    start = site.page("/", "<body style='background:#0a8'><h1>Exam</h1></body>")
    service.cli(
        "exam",
        "create",
        "--id",
        exam_id,
        "--title",
        exam_id,
        "--streams",
        "camera,screen",
        "--start-url",
        start,
        "--url",
        service.url,
    )
    link = service.add_candidate(exam_id, user)
    return load_exam(link, organisation(service), password=lambda _t: None), link


def end_after(seconds: float) -> Any:
    def journey(kiosk: Kiosk) -> None:
        kiosk.pageLoaded.connect(
            lambda ok, url: QTimer.singleShot(int(seconds * 1000), lambda: kiosk.end("test"))
        )

    return journey


def types_of(paths: Any) -> list[str]:
    (journal,) = paths.journals.glob("*.jsonl")
    return [r["type"] for r in read_records(journal)]


def test_a_second_live_session_of_the_same_link_is_refused_before_anything_records(
    qapp: Any, tmp_path: Path, lockdown_service: ServiceProcess, http_server: LocalServer
) -> None:
    exam, link = service_exam(lockdown_service, http_server, "second-live", "u1")
    # the candidate's link is already in use (another computer): that session is alive
    first = ServiceSession(ServiceClient(lockdown_service.url), Events())
    assert first.exchange(launch_token(link)).state is Connection.CONNECTED
    Spool.open(tmp_path / "other", report=Events(), max_bytes=1 << 30, key=TEST_KEY).close()
    request = {"client_version": "t", "build": "development", "build_identity": "t"}
    created = first.create(
        tmp_path / "other", {**request, "settings_hash": "h", "isolation_mode": "shared"}
    )
    first.client.close()
    assert created.state is Connection.CONNECTED
    paths = temp_paths(tmp_path / "lockdown")
    shown: list[str] = []
    code = run_session(exam, paths, single_instance=False, show_message=shown.append)
    assert code == 1
    assert shown == [text("service.second_session")]
    types = types_of(paths)
    assert "session.service_refused" in types
    assert "proctoring.started" not in types and "kiosk.started" not in types
    assert http_server.seen("/") == []


def test_an_expired_link_is_refused_with_a_clear_message(
    qapp: Any, tmp_path: Path, lockdown_service: ServiceProcess, http_server: LocalServer
) -> None:
    exam, link = service_exam(lockdown_service, http_server, "expired-link", "u2")
    payload = tokens.verify(
        launch_token(link),
        lockdown_service.token_key().public_key(),
        types={tokens.TokenType.LAUNCH},
        check_time=False,
    )
    expired = tokens.issue(
        lockdown_service.token_key(),
        tokens.TokenType.LAUNCH,
        {k: payload.claims[k] for k in ("sub", "grp", "name", "exam")},
        lifetime_s=60,
        now=time.time() - 7200,
    )
    values = {k: v for k, v in exam.settings.items() if exam.settings.source(k) == "exam"}
    stale = LoadedExam(
        layer(exam.organisation, {**values, "service.launch_token": expired}),
        exam.keys,
        exam.origin,
        exam.title,
        exam.kind,
        exam.organisation,
    )
    paths = temp_paths(tmp_path / "lockdown")
    shown: list[str] = []
    assert run_session(stale, paths, single_instance=False, show_message=shown.append) == 1
    assert shown == [text("service.expired_link")]
    assert "proctoring.started" not in types_of(paths)


def test_every_segment_is_sent_while_locked_and_earlier_spools_drain_at_the_next_start(
    qapp: Any, tmp_path: Path, lockdown_service: ServiceProcess, http_server: LocalServer
) -> None:
    service = lockdown_service
    paths = temp_paths(tmp_path / "lockdown")
    paths.ensure()
    # an earlier session that died before sending anything: its spool and service.json
    _exam_before, link_before = service_exam(service, http_server, "earlier-run", "u3")
    earlier = paths.spool / "session-20260101T000000Z-1"
    spool = Spool.open(earlier, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    for seq in range(3):
        spool.add(segment(Stream.SCREEN, seq, size=20_000))
    spool.close()
    before = ServiceSession(ServiceClient(service.url), Events())
    assert before.exchange(launch_token(link_before)).state is Connection.CONNECTED
    request = {"client_version": "t", "build": "development", "build_identity": "t"}
    assert before.create(earlier, {**request, "settings_hash": "h", "isolation_mode": "shared"})
    before.client.close()
    time.sleep(0.1)

    exam, _ = service_exam(service, http_server, "sent-while-locked", "u4")
    code = run_session(
        exam, paths, single_instance=False, journey=end_after(4.0), show_message=pytest.fail
    )
    assert code == 0
    (journal,) = paths.journals.glob("*.jsonl")
    records = read_records(journal)
    types = [r["type"] for r in records]
    # the session existed before anything recorded; the drain ran before the kiosk closed
    assert types.index("session.service_connected") < types.index("proctoring.started")
    drained = [r for r in records if r["type"] == "upload.drained"]
    assert drained[-1]["payload"]["segments_left"] == 0 and drained[-1]["payload"]["closed"]
    assert types.index("upload.drained") < types.index("kiosk.closed")
    # the service holds every segment of the spool, digest for digest
    (current,) = [p for p in paths.spool.iterdir() if p.name != earlier.name]
    for folder in (current, earlier):
        record = SessionRecord.load(folder)
        assert record is not None
        client = ServiceClient(service.url)
        manifest = client.manifest(record.upload_token, record.session_id)
        client.close()
        held = {
            (stream, int(seq)): digest
            for stream, info in manifest.body["streams"].items()
            for seq, digest in info["seqs"].items()
        }
        records_, _ = listing(folder)
        spooled = {
            (r.stream.value, r.seq): content_digest((folder / "segments" / r.file).read_bytes())
            for r in records_
        }
        assert held == spooled and len(held) >= 2, folder.name
    # the earlier spool was sent for good: the next start no longer looks at it
    assert SessionRecord.load(earlier).finished_utc  # type: ignore[union-attr]
    assert "upload.earlier" in types


def test_a_restarted_client_resumes_its_session_and_another_client_is_still_refused(
    qapp: Any, tmp_path: Path, lockdown_service: ServiceProcess, http_server: LocalServer
) -> None:
    service = lockdown_service
    exam, link = service_exam(service, http_server, "resumed-run", "u5")
    paths = temp_paths(tmp_path / "lockdown")
    paths.ensure()
    # the run before ended without a close (killed): its session is still "alive" (seen
    # just now) and its spool, with service.json, is left beside this run's
    earlier = paths.spool / "session-20260101T000000Z-2"
    spool = Spool.open(earlier, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    for seq in range(2):
        spool.add(segment(Stream.SCREEN, seq, size=20_000))
    spool.close()
    before = ServiceSession(ServiceClient(service.url), Events())
    assert before.exchange(launch_token(link)).state is Connection.CONNECTED
    request = {"client_version": "t", "build": "development", "build_identity": "t"}
    assert before.create(earlier, {**request, "settings_hash": "h", "isolation_mode": "shared"})
    before.client.close()
    earlier_id = SessionRecord.load(earlier).session_id  # type: ignore[union-attr]

    # positive control: another computer with the same link but not the earlier upload
    # token is a second concurrent session, refused before anything records
    other = temp_paths(tmp_path / "other")
    shown: list[str] = []
    assert run_session(exam, other, single_instance=False, show_message=shown.append) == 1
    assert shown == [text("service.second_session")]
    assert "proctoring.started" not in types_of(other)

    # the restarted client holds the earlier spool's upload token: accepted and linked
    code = run_session(
        exam, paths, single_instance=False, journey=end_after(1.0), show_message=pytest.fail
    )
    assert code == 0
    (journal,) = paths.journals.glob("*.jsonl")
    records = read_records(journal)
    (connected,) = [r for r in records if r["type"] == "session.service_connected"]
    assert connected["payload"]["resumed_from"] == earlier_id
    assert connected["payload"]["created"] and connected["payload"]["flags"] == [
        "development_build"
    ]  # and no integrity flag
    assert "session.service_refused" not in [r["type"] for r in records]
    # the earlier session's spool still drained, under its own token, and was closed
    record = SessionRecord.load(earlier)
    assert record is not None and record.finished_utc
    client = ServiceClient(service.url)
    manifest = client.manifest(record.upload_token, earlier_id)
    client.close()
    assert sorted(manifest.body["streams"]["screen"]["seqs"]) == ["0", "1"]
    assert manifest.body["closed"]
