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
from lockdown.upload.base import SpoolError
from lockdown.upload.source import SpoolSource
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


def test_the_source_lists_unsent_segments_oldest_first_and_acknowledges_echoed_digests(
    tmp_path: Path,
) -> None:
    spool = _spool(tmp_path / "s", 3)
    source = SpoolSource(spool)
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
    assert body == (spool.folder / "segments" / "camera-000000.seg").read_bytes()  # as stored
    digest = content_digest(body)
    assert first.digest == digest  # the manifest's body_sha256, as a Content-Digest
    source.acknowledge(first, digest)
    source.acknowledge(first, digest)  # twice is once
    assert source.previous_digest(pending[2]) == digest  # camera 1 follows camera 0
    assert source.previous_digest(first) == ""
    assert next((p.stream, p.seq) for p in source.pending()) == ("microphone", 0)
    assert source.counts() == {"camera": 3, "microphone": 3}
    assert source.head() == spool.head()
    with pytest.raises(SpoolError):  # a digest that is not the stored file's
        source.acknowledge(pending[1], content_digest(b"another body"))
    spool.close()
    earlier = Spool.open_earlier(tmp_path / "s", Events())
    assert [(p.stream, p.seq) for p in SpoolSource(earlier).pending()][:1] == [("microphone", 0)]
    earlier.close()
