"""The uploader's parts that need no service: the back-off, the spool folder as a source,
the session record kept beside the spool."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest

from lockdown.capture.base import Stream
from lockdown.session.client import content_digest
from lockdown.session.state import SessionRecord
from lockdown.upload.source import ACK_FILE, SpoolFolderSource, read_acks
from lockdown.upload.spool import Spool
from lockdown.upload.uploader import RetryPolicy
from tests.unit.upload.factory import TEST_KEY, Events, segment


def test_backoff_is_full_jitter_between_one_second_and_the_cap() -> None:
    policy = RetryPolicy()
    rng = random.Random(19)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (7, 60.0), (40, 60.0)):
        delays = [policy.delay(failures, rng) for _ in range(200)]
        assert all(1.0 <= d <= ceiling for d in delays), failures
        if ceiling > 2:
            # full jitter: spread over the whole range, not bunched at the ceiling
            assert min(delays) < 1.0 + 0.2 * ceiling and max(delays) > 0.8 * ceiling


def test_backoff_waits_at_least_what_retry_after_asks() -> None:
    policy = RetryPolicy(first_s=0.01, max_s=0.1)
    rng = random.Random(1)
    assert policy.delay(1, rng, retry_after=5.0) == 5.0
    assert policy.delay(1, rng, retry_after=10_000.0) == 600.0  # an absurd ask is cut
    assert policy.delay(1, rng, retry_after=0.0) <= 0.1


def test_the_session_record_is_the_candidates_alone_and_survives_a_reload(tmp_path: Path) -> None:
    record = SessionRecord(
        url="http://127.0.0.1:1", session_id="sid", upload_token="a.b", flags=("development_build",)
    )
    record.save(tmp_path)
    assert stat.S_IMODE(os.stat(tmp_path / "service.json").st_mode) == 0o600
    assert SessionRecord.load(tmp_path) == record
    (tmp_path / "service.json").write_text("{not json")
    assert SessionRecord.load(tmp_path) is None


def _spool(folder: Path, count: int) -> Spool:
    spool = Spool.open(folder, report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    for seq in range(count):
        spool.add(segment(Stream.CAMERA, seq))
        spool.add(segment(Stream.MICROPHONE, seq))
    return spool


def test_the_source_lists_unsent_segments_oldest_first_and_keeps_acks_across_reopen(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path / "s", 3)
    source = SpoolFolderSource(spool.folder)
    pending = source.pending()
    assert [(p.stream, p.seq) for p in pending] == [
        ("camera", 0),
        ("microphone", 0),
        ("camera", 1),
        ("microphone", 1),
        ("camera", 2),
        ("microphone", 2),
    ]
    first = pending[0]
    body = source.body(first)
    assert body == first.file.read_bytes()  # as stored: encrypted
    digest = content_digest(body)
    source.acknowledge(first, digest)
    source.acknowledge(first, digest)  # twice is once
    assert source.previous_digest(pending[2]) == digest  # camera 1 follows camera 0
    assert source.previous_digest(first) == ""
    source.close()
    assert read_acks(spool.folder) == {("camera", 0): digest}
    assert (spool.folder / ACK_FILE).read_text().count("\n") == 1
    again = SpoolFolderSource(spool.folder)
    assert next((p.stream, p.seq) for p in again.pending()) == ("microphone", 0)
    assert again.counts() == {"camera": 3, "microphone": 3}
    assert again.head() == spool.head()
    spool.close()
    assert again.head() == spool.head()  # the closing line is the head now


def test_a_torn_ack_line_is_ignored(tmp_path: Path) -> None:
    (tmp_path / ACK_FILE).write_bytes(b'{"stream":"camera","seq":0,"digest":"d"}\n{"stream":"cam')
    assert read_acks(tmp_path) == {("camera", 0): "d"}


@pytest.mark.parametrize("missing", ["spool", "manifest"])
def test_a_source_without_a_spool_has_nothing_pending(tmp_path: Path, missing: str) -> None:
    folder = tmp_path / "s"
    if missing == "manifest":
        folder.mkdir()
    source = SpoolFolderSource(folder)
    assert source.pending() == [] and source.counts() == {} and source.head() == {}
