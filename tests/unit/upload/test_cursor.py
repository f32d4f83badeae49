"""The uploader's cursor (pending, body, acknowledge), sequence numbers and earlier spools."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from lockdown.upload import crypto
from lockdown.upload.base import SpoolError, Stream
from lockdown.upload.format import ACK_FILE, MANIFEST_FILE, SEGMENTS_DIR, content_digest
from lockdown.upload.spool import ACKNOWLEDGED_REASON, Spool, earlier_spools
from lockdown.upload.verify import verify_folder
from tests.unit.upload.factory import TEST_KEY, Events, media, segment


def open_spool(folder: Path, events: Events, max_bytes: int = 10**8) -> Spool:
    return Spool.open(folder, report=events, max_bytes=max_bytes, key=TEST_KEY)


def crashed(folder: Path) -> None:
    """Leave ``folder`` as a crash does: no closing line, a torn line, a ``.tmp``."""
    manifest = folder / MANIFEST_FILE
    data = manifest.read_bytes()
    data = data[: data.rstrip(b"\n").rfind(b"\n") + 1]  # no closing line
    manifest.write_bytes(data + b'{"kind":"segment","stream":"cam')  # torn
    (folder / SEGMENTS_DIR / "camera-000009.seg.tmp").write_bytes(b"half")


def recorded(folder: Path, recipient: bool = True) -> Spool:
    """A spool as a real exam makes it (keys wrapped for a recipient), 2 camera + 1 mic."""
    private = crypto.X25519PrivateKey.generate() if recipient else None
    spool = Spool.open(
        folder,
        report=Events(),
        max_bytes=10**8,
        recipient=private.public_key() if private else None,
        key=None if private else TEST_KEY,
    )
    spool.add(segment(Stream.CAMERA, 0, size=3000))
    spool.add(segment(Stream.MICROPHONE, 0, size=500))
    spool.add(segment(Stream.CAMERA, 1, size=3000))
    return spool


def test_every_record_carries_the_digest_of_the_file_as_uploaded(tmp_path: Path) -> None:
    with recorded(tmp_path) as spool:
        for rec in spool.records():
            blob = (tmp_path / SEGMENTS_DIR / rec.file).read_bytes()
            assert rec.body_sha256 == hashlib.sha256(blob).hexdigest()
            assert spool.body(rec) == blob
    lines = [json.loads(x) for x in (tmp_path / MANIFEST_FILE).read_bytes().splitlines()]
    assert all(len(line["body_sha256"]) == 64 for line in lines if line["kind"] == "segment")
    assert content_digest("00" * 32) == "sha-256=:" + "A" * 43 + "=:"


def test_pending_body_and_acknowledge_are_a_durable_idempotent_cursor(tmp_path: Path) -> None:
    with recorded(tmp_path) as spool:
        pending = spool.pending()
        assert [(r.stream.value, r.seq) for r in pending] == [
            ("camera", 0),
            ("microphone", 0),
            ("camera", 1),
        ]  # oldest first
        first = pending[0]
        spool.acknowledge(first.stream, first.seq, first.body_sha256)
        spool.acknowledge(first.stream, first.seq, first.body_sha256)  # a retry: no-op
        with pytest.raises(SpoolError, match="another digest"):
            spool.acknowledge(first.stream, first.seq, "0" * 64)
        with pytest.raises(SpoolError, match="not the stored file's"):
            spool.acknowledge(Stream.CAMERA, 1, "0" * 64)
        with pytest.raises(SpoolError, match="not in the spool"):
            spool.acknowledge(Stream.SCREEN, 0, "0" * 64)
        assert [r.seq for r in spool.pending()] == [0, 1]
        assert [a.key for a in spool.acknowledged()] == [(Stream.CAMERA, 0)]
        session = spool.session_id
    assert (tmp_path / ACK_FILE).read_bytes().count(b"\n") == 1
    # durable: an earlier session's spool (no keys) still knows it
    with Spool.open_earlier(tmp_path, Events()) as again:
        assert again.session_id == session
        assert [(r.stream.value, r.seq) for r in again.pending()] == [
            ("microphone", 0),
            ("camera", 1),
        ]
    assert verify_folder(tmp_path).ok  # the acknowledgements are outside the MAC chain


def test_body_refuses_a_file_that_is_not_the_one_listed(tmp_path: Path) -> None:
    with recorded(tmp_path, recipient=False) as spool:
        rec = spool.pending()[0]
        path = tmp_path / SEGMENTS_DIR / rec.file
        blob = bytearray(path.read_bytes())
        blob[-5] ^= 1
        path.write_bytes(bytes(blob))
        with pytest.raises(SpoolError, match="corrupted"):
            spool.body(rec)
        path.unlink()
        with pytest.raises(SpoolError, match="cannot read"):
            spool.body(rec)


def test_the_cap_evicts_acknowledged_segments_first_and_says_so(tmp_path: Path) -> None:
    events = Events()
    with open_spool(tmp_path, events, max_bytes=10_000) as spool:
        spool.add(segment(Stream.SCREEN, 0, size=3000))
        spool.add(segment(Stream.CAMERA, 0, size=3000))
        spool.add(segment(Stream.MICROPHONE, 0, size=3000))
        mic = spool.records()[2]
        spool.acknowledge(mic.stream, mic.seq, mic.body_sha256)
        # without the acknowledgement the screen segment would go (DROP_ORDER)
        spool.add(segment(Stream.SCREEN, 1, size=3000))
        assert [(r.stream.value, r.seq) for r in spool.records()] == [
            ("screen", 0),
            ("camera", 0),
            ("screen", 1),
        ]
    [dropped] = events.of("spool.dropped")
    assert dropped["acknowledged"] is True and dropped["reason"] == ACKNOWLEDGED_REASON
    assert (dropped["stream"], dropped["seq"]) == ("microphone", 0)
    assert verify_folder(tmp_path, TEST_KEY).ok


def test_a_sequence_number_is_never_reused_after_its_file_was_deleted(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        for seq in range(3):
            spool.add(segment(Stream.CAMERA, seq))
    (tmp_path / SEGMENTS_DIR / "camera-000002.seg").unlink()
    events = Events()
    with open_spool(tmp_path, events) as again:
        assert again.missing() == [(Stream.CAMERA, 2)]
        assert again.next_seq(Stream.CAMERA) == 3  # not 2: the highest ever seen
        with pytest.raises(SpoolError, match="never used twice"):
            again.add(segment(Stream.CAMERA, 2))
        again.add(segment(Stream.CAMERA, again.next_seq(Stream.CAMERA)))
    with open_spool(tmp_path, Events()) as third:
        assert [r.seq for r in third.records()] == [0, 1, 3]
        assert third.read(Stream.CAMERA, 3) == media(Stream.CAMERA, 3, 1000)  # no mix-up
    assert verify_folder(tmp_path, TEST_KEY).problems == [
        "camera segment 2 (camera-000002.seg): file missing"
    ]


def test_add_refuses_what_its_own_parser_would_reject(tmp_path: Path) -> None:
    bad = segment(Stream.CAMERA, 0)
    with open_spool(tmp_path, Events()) as spool:
        for wrong in (float("nan"), float("inf"), -1.0):
            with pytest.raises(SpoolError, match="not a valid segment"):
                spool.add(bad.__class__(**{**bad.__dict__, "duration": wrong}))
        spool.add(segment(Stream.CAMERA, 1))
    with open_spool(tmp_path, Events()) as again:  # nothing to cut at the next open
        assert [r.seq for r in again.records()] == [1]
    assert verify_folder(tmp_path, TEST_KEY).ok


def test_a_crashed_earlier_spool_reopens_without_its_keys(tmp_path: Path) -> None:
    folder = tmp_path / "session-1"
    spool = recorded(folder)
    corrupt = spool.records()[1]
    spool.close()
    crashed(folder)
    path = folder / SEGMENTS_DIR / corrupt.file
    flipped = bytearray(path.read_bytes())
    flipped[-3] ^= 1
    path.write_bytes(bytes(flipped))
    before = (folder / MANIFEST_FILE).read_bytes()
    events = Events()
    with Spool.open_earlier(folder, events) as earlier:
        assert not earlier.writable
        assert [(r.stream.value, r.seq) for r in earlier.pending()] == [
            ("camera", 0),
            ("camera", 1),
        ]
        assert [r.file for r in earlier.corrupt()] == [corrupt.file]
        blob = earlier.body(earlier.pending()[0])
        earlier.acknowledge(Stream.CAMERA, 0, hashlib.sha256(blob).hexdigest())
        with pytest.raises(SpoolError, match="read-only"):
            earlier.add(segment(Stream.CAMERA, 5))
        with pytest.raises(SpoolError, match="read-only"):
            earlier.read(Stream.CAMERA, 0)
    [recovered] = events.of("spool.recovered")
    assert recovered["folder"] == str(folder)
    assert {k: recovered[k] for k in ("segments", "pending", "discarded", "corrupt")} == {
        "segments": 3,
        "pending": 2,
        "discarded": 1,
        "corrupt": 1,
    }
    assert int(str(recovered["cut_bytes"])) > 0
    [bad] = events.of("spool.corrupt")
    assert bad["file"] == corrupt.file
    # only the torn tail was cut; nothing appended (no MAC key), the corrupt file kept
    after = (folder / MANIFEST_FILE).read_bytes()
    assert before.startswith(after) and after.endswith(b"\n")
    assert bytes(flipped) == path.read_bytes()
    assert not list((folder / SEGMENTS_DIR).glob("*.tmp"))
    with Spool.open_earlier(folder, Events()) as again:
        assert [r.seq for r in again.pending()] == [1]


def test_earlier_spools_lists_every_spool_folder_but_the_current_one(tmp_path: Path) -> None:
    for name in ("session-b", "session-a", "current"):
        open_spool(tmp_path / name, Events()).close()
    (tmp_path / "stray").mkdir()
    assert [p.name for p in earlier_spools(tmp_path, tmp_path / "current")] == [
        "session-a",
        "session-b",
    ]
    assert earlier_spools(tmp_path / "nowhere") == []


def test_a_read_is_safe_against_a_drop_at_the_same_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with open_spool(tmp_path, Events(), max_bytes=5000) as spool:
        spool.add(segment(Stream.SCREEN, 0, size=2000))
        real = Spool._read_whole

        def drop_first(self: Spool, rec: object, fd: int) -> bytes:
            # a recorder thread's add pushes the segment out between open and read
            monkeypatch.setattr(Spool, "_read_whole", real)
            self.add(segment(Stream.SCREEN, 1, size=2000))
            self.add(segment(Stream.SCREEN, 2, size=2000))
            assert not (tmp_path / SEGMENTS_DIR / "screen-000000.seg").exists()
            return real(self, rec, fd)  # type: ignore[arg-type]

        monkeypatch.setattr(Spool, "_read_whole", drop_first)
        assert spool.read(Stream.SCREEN, 0) == media(Stream.SCREEN, 0, 2000)
        with pytest.raises(SpoolError, match="screen segment 0 was dropped"):
            spool.read(Stream.SCREEN, 0)
