"""``lockdown upload``: what earlier sessions left goes to the service with their own
upload tokens; what cannot go stays, said in one line and exit code 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lockdown.session.client import ServiceClient, content_digest
from lockdown.session.state import Connection, ServiceSession, SessionRecord
from lockdown.upload.base import Stream
from lockdown.upload.spool import Spool, listing
from tests.support.service import REPO, ServiceProcess, free_port, launch_token
from tests.unit.upload.factory import TEST_KEY, Events, segment


def recorded(service: ServiceProcess, folder: Path, exam: str, count: int) -> SessionRecord:
    """A spool of ``count`` camera segments whose session exists, nothing sent yet."""
    service.create_exam(exam)
    link = service.add_candidate(exam, f"{exam}-u")
    spool = Spool.open(folder, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    for seq in range(count):
        spool.add(segment(Stream.CAMERA, seq, size=10_000))
    spool.close()
    session = ServiceSession(ServiceClient(service.url), Events(), pause=lambda _s: None)
    assert session.exchange(launch_token(link)).state is Connection.CONNECTED
    request = {"client_version": "t", "build": "development", "build_identity": "t"}
    created = session.create(folder, {**request, "settings_hash": "h", "isolation_mode": "shared"})
    session.client.close()
    assert created.state is Connection.CONNECTED
    record = SessionRecord.load(folder)
    assert record is not None
    return record


def upload(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockdown", "upload", *args],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_lockdown_upload_sends_an_earlier_spool_and_marks_it_sent(
    tmp_path: Path, lockdown_service: ServiceProcess
) -> None:
    folder = tmp_path / "spools" / "session-1"
    record = recorded(lockdown_service, folder, "upload-cmd", 4)
    done = upload("--spool", str(tmp_path / "spools"), "--json", "--deadline", "30")
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["spools"]
    assert (result["sent"], result["segments_left"], result["closed"]) == (4, 0, True)
    client = ServiceClient(lockdown_service.url)
    manifest = client.manifest(record.upload_token, record.session_id)
    client.close()
    records, _ = listing(folder)
    assert manifest.body["streams"]["camera"]["seqs"] == {
        str(r.seq): content_digest((folder / "segments" / r.file).read_bytes()) for r in records
    }
    again = SessionRecord.load(folder)
    assert again is not None and again.finished_utc
    # sent for good: the folder of spools has nothing left to send
    nothing = upload("--spool", str(tmp_path / "spools"))
    assert nothing.returncode == 2
    assert nothing.stderr.count("\n") == 1 and "no recording waits to be sent" in nothing.stderr


def test_with_the_service_unreachable_the_segments_stay_for_later(
    tmp_path: Path, lockdown_service: ServiceProcess
) -> None:
    folder = tmp_path / "session-2"
    record = recorded(lockdown_service, folder, "upload-dead", 2)
    dead = SessionRecord(**{**record.__dict__, "url": f"http://127.0.0.1:{free_port()}"})
    dead.save(folder)
    began = time.monotonic()
    done = upload("--spool", str(folder), "--deadline", "2")
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - began < 30
    assert "0 segment(s) sent, 2 segment(s)" in done.stdout and "left for later" in done.stdout
    assert "Traceback" not in done.stderr
    assert not SessionRecord.load(folder).finished_utc  # type: ignore[union-attr]
