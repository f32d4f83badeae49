"""``lockdown-server export``: real recorded WebM segments, uploaded, come back out playable
(ffprobe reads them), with the events and a hash list, verified against the anchored heads;
a changed object or a head the journal does not pass through makes it say so (exit 1)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockdown.capture.base import Segment, Stream
from lockdown.events import Event, Journal
from lockdown.upload import crypto
from lockdown.upload.format import body_sha256, content_digest
from lockdown_server import cli
from lockdown_server.store import models
from tests.support.service import (
    Api,
    ServiceProcess,
    launch_token,
    run_cli,
    spool_segments,
)

START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
SEGMENTS = 3


@pytest.fixture(scope="module")
def webm_segments() -> list[Segment]:
    """Three 1-second segments of camera (VP9) and microphone (Opus) from the client's own
    encoders, as its recorders make them."""
    import numpy as np

    from lockdown.capture.encoder import AudioSegmentEncoder, VP9Encoder

    video = VP9Encoder(160, 120, 10.0)
    made = []
    for seq in range(SEGMENTS):
        start = START + timedelta(seconds=seq)
        clip = video.segment()
        for n in range(10):
            frame = np.full((120, 160, 3), (seq * 80 + n * 8) % 256, dtype=np.uint8)
            clip.add(frame, n / 10)
        audio = AudioSegmentEncoder(16000)
        audio.add(np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000).astype(np.float32) * 0.3)
        for stream, data, units, mime in (
            (Stream.CAMERA, clip.finish(), 10, "video/webm"),
            (Stream.MICROPHONE, audio.finish(), 16000, "audio/webm"),
        ):
            made.append(
                Segment(
                    stream=stream,
                    seq=seq,
                    start_utc=start,
                    end_utc=start + timedelta(seconds=1),
                    duration=1.0,
                    units=units,
                    mime=mime,
                    data=data,
                )
            )
    return made


def _journal(folder: Path, recipient: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    """A real MAC-chained journal whose key is wrapped for the service: records and head."""
    mac_key = crypto.new_key()
    chain = uuid.uuid4().hex
    public = crypto.parse_recipient(recipient)
    keys = {
        "chain": chain,
        "recipient": crypto.recipient_id(public),
        "mac_key": crypto.wrap(mac_key, public, label=f"lockdown-journal/{chain}").to_json(),
        "previous": None,
    }
    journal = Journal.open(folder / "journal.jsonl", mac_key=mac_key, keys=keys)
    for n in range(4):
        journal.append(Event("exam.note", {"n": n}))
    assert journal.flush()
    head = journal.head()
    journal.close()
    lines = (folder / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines], head


def test_export_writes_playable_webm_events_and_hashes_all_verified(
    lockdown_service: ServiceProcess,
    webm_segments: list[Segment],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    service = lockdown_service
    recipient = (service.data / "keys" / "recipient.pub").read_text().strip()
    header, stored = spool_segments(tmp_path / "spool", recipient, webm_segments)
    records, head = _journal(tmp_path, recipient)
    exam_id = f"exam-{uuid.uuid4().hex[:8]}"
    service.create_exam(exam_id)
    api = Api(service.url)
    token = api.session_token(launch_token(service.add_candidate(exam_id, "u-export")))
    sid = str(uuid.uuid4())
    assert api.create_session(token, sid, spool_header=header).status_code == 201
    for seg in stored:
        assert api.put(token, sid, seg).status_code == 201
    events = [{"id": f"{r['seq']}", "record": r} for r in records]
    heads = {"journal": {"hash": head["hash"], "mac": head["mac"], "records": head["records"]}}
    assert api.events(token, sid, events[:2], {}).status_code == 200
    reply = api.events(token, sid, events, heads).json()
    assert reply == {"accepted": len(events) - 2, "duplicates": 2}
    assert (
        api.close_session(token, sid, {"heads": heads, "segments": {"camera": 3}}).status_code
        == 200
    )

    out = tmp_path / "review"
    done = run_cli("export", sid, "--out", str(out), "--data", str(service.data), check=False)
    assert done.returncode == 0, done.stderr
    assert "everything verified" in done.stdout
    summary = json.loads((out / "export.json").read_text())
    assert summary["verified"] and summary["problems"] == [] and summary["events"] == len(events)
    assert [h.get("verified") for h in summary["heads"]] == [True, True]
    for stream, codec in (("camera", "vp9"), ("microphone", "opus")):
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "stream=codec_name:format=duration",
                "-of",
                "json",
                str(out / f"{stream}.webm"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        info = json.loads(probe.stdout)
        assert info["streams"][0]["codec_name"] == codec
        assert float(info["format"]["duration"]) == pytest.approx(3.0, abs=0.3)
        assert len(summary["streams"][stream]["segments"]) == SEGMENTS
    sums = dict(
        reversed(line.split("  ")) for line in (out / "SHA256SUMS").read_text().splitlines()
    )
    assert set(sums) == {"camera.webm", "microphone.webm", "events.jsonl", "export.json"}
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    plain = {(s["seq"], s["sha256"]) for s in summary["streams"]["camera"]["segments"]}
    assert plain == {
        (w.seq, hashlib.sha256(w.data).hexdigest())
        for w in webm_segments
        if w.stream is Stream.CAMERA
    }

    # a rewrite is detected: a head the journal does not pass through, a changed object
    assert (
        api.events(token, sid, [], {"journal": {"hash": "e" * 64, "mac": "f" * 64}}).status_code
        == 200
    )
    opened = service.open()
    with opened.engine.connect() as conn:
        key = conn.scalar(
            models.segments.select()
            .with_only_columns(models.segments.c.object_key)
            .where(
                (models.segments.c.session_id == sid)
                & (models.segments.c.stream == "camera")
                & (models.segments.c.seq == 1)
            )
        )
    path = service.data / "objects" / key
    path.write_bytes(path.read_bytes()[:-1] + b"\0")
    assert content_digest(body_sha256(path.read_bytes())) != stored[0].digest
    capsys.readouterr()
    assert (
        cli.main(["export", sid, "--out", str(tmp_path / "again"), "--data", str(service.data)])
        == 1
    )
    stderr = capsys.readouterr().err
    assert "camera segment 1: the stored object changed" in stderr
    assert "is not in the journal the service holds" in stderr
    api.close()


def test_export_of_an_unknown_session_is_one_line(
    lockdown_service: ServiceProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(lockdown_service.data)
    assert (
        cli.main(["export", "no-such-session", "--out", str(tmp_path / "x"), "--data", data]) == 2
    )
    stderr = capsys.readouterr().err
    assert stderr.strip().count("\n") == 0 and "no session" in stderr
