"""The spool stores segments encrypted and durable, detects corruption and repairs crash leftovers."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from lockdown.upload import crypto
from lockdown.upload.base import SegmentStore, SpoolError, Stream
from lockdown.upload.format import (
    DROP_ORDER,
    MANIFEST_FILE,
    SEGMENTS_DIR,
    encode_segment,
    open_key,
)
from lockdown.upload.spool import Spool
from lockdown.upload.verify import verify_folder
from tests.unit.upload.factory import TEST_KEY, Events, media, segment

MB = 1024 * 1024


def open_spool(folder: Path, events: Events, max_bytes: int = 100 * MB, **kw: object) -> Spool:
    if "recipient" not in kw:
        kw.setdefault("key", TEST_KEY)
    return Spool.open(folder, report=events, max_bytes=max_bytes, **kw)  # type: ignore[arg-type]


def without_closing_line(data: bytes) -> bytes:
    """A manifest as a crash leaves it: no closing line."""
    assert b'"kind":"closed"' in data.splitlines()[-1]
    return data[: data.rstrip(b"\n").rfind(b"\n") + 1]


def manifest_lines(folder: Path) -> list[dict[str, object]]:
    """The manifest's segment and drop lines (not the chain's closing lines)."""
    lines = [json.loads(line) for line in (folder / MANIFEST_FILE).read_bytes().splitlines()]
    return [line for line in lines if line["kind"] in ("segment", "dropped")]


def test_every_segment_round_trips_and_matches_its_manifest_sha256(tmp_path: Path) -> None:
    events = Events()
    with open_spool(tmp_path / "s", events) as spool:
        store: SegmentStore = spool
        for seq in range(3):
            for stream in Stream:
                store.add(segment(stream, seq, size=5000 + seq))
        for stream in Stream:
            for seq in range(3):
                assert spool.read(stream, seq) == media(stream, seq, 5000 + seq)
    lines = manifest_lines(tmp_path / "s")
    assert len(lines) == 9
    for line in lines:
        data = media(Stream(line["stream"]), int(line["seq"]), int(line["bytes"]))  # type: ignore[call-overload]
        assert line["sha256"] == hashlib.sha256(data).hexdigest()
        stored = (tmp_path / "s" / SEGMENTS_DIR / str(line["file"])).read_bytes()
        assert line["ciphertext_bytes"] == len(stored)
        assert data[:64] not in stored  # encrypted at rest
        assert set(line) >= {"start_utc", "end_utc", "duration", "units", "mime"}
    report = verify_folder(tmp_path / "s", TEST_KEY)
    assert report.ok, report.problems
    assert report.streams["camera"].segments == 3
    assert report.streams["camera"].duration == pytest.approx(6.0)
    assert report.streams["microphone"].bytes == 5000 + 5001 + 5002


def test_reopen_keeps_records_session_and_key(tmp_path: Path) -> None:
    events = Events()
    with open_spool(tmp_path, events) as spool:
        spool.add(segment(Stream.CAMERA, 0))
        session = spool.session_id
    with open_spool(tmp_path, events) as again:
        assert again.session_id == session
        assert [r.seq for r in again.records()] == [0]
        assert again.read(Stream.CAMERA, 0) == media(Stream.CAMERA, 0, 1000)
        assert again.next_seq(Stream.CAMERA) == 1
        assert again.next_seq(Stream.SCREEN) == 0
    assert [e["created"] for e in events.of("spool.opened")] == [True, False]


def test_a_new_spools_key_is_stored_only_wrapped_for_the_recipient(tmp_path: Path) -> None:
    private, _, public = crypto.generate_recipient(tmp_path / "it")
    recipient = crypto.parse_recipient(public)
    with open_spool(tmp_path / "spool", Events(), recipient=recipient) as spool:
        spool.add(segment(Stream.SCREEN, 0))
    header = json.loads((tmp_path / "spool" / "spool.json").read_text())
    assert header["key"]["location"] == "wrapped"
    assert header["key_wrapping"]["scheme"] == crypto.WRAP_SCHEME
    assert header["key_wrapping"]["recipient"] == crypto.recipient_id(recipient)
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == [
        "acknowledged.jsonl",
        "lock",
        "manifest.jsonl",
        "segments",
        "spool.json",
    ]
    # only the recipient's private key opens it
    key = open_key(tmp_path / "spool", crypto.load_recipient_private(private))
    assert key.hex() not in (tmp_path / "spool" / "spool.json").read_text()
    with open_spool(tmp_path / "spool", Events(), key=key) as again:
        assert again.read(Stream.SCREEN, 0) == media(Stream.SCREEN, 0, 1000)
    assert verify_folder(tmp_path / "spool", key).contents_checked
    other, _, _ = crypto.generate_recipient(tmp_path / "other")
    with pytest.raises(crypto.SpoolKeyError, match="not the recording's recipient"):
        open_key(tmp_path / "spool", crypto.load_recipient_private(other))
    report = verify_folder(tmp_path / "spool")  # without the key: the structure only
    assert report.ok and not report.contents_checked


def test_no_recipient_no_recording(tmp_path: Path) -> None:
    events = Events()
    with pytest.raises(SpoolError, match="no recipient key"):
        Spool.open(tmp_path / "spool", report=events, max_bytes=MB)
    assert events.of("spool.error")
    assert not (tmp_path / "spool" / "spool.json").exists()


def test_caller_key_is_required_and_checked_on_reopen(tmp_path: Path) -> None:
    key = crypto.new_key()
    with open_spool(tmp_path, Events(), key=key) as spool:
        spool.add(segment(Stream.MICROPHONE, 0))
    events = Events()
    with pytest.raises(SpoolError, match="opens only with its session key"):
        Spool.open(tmp_path, report=events, max_bytes=MB)
    assert events.of("spool.error")
    with pytest.raises(SpoolError, match="does not fit"):
        open_spool(tmp_path, Events(), key=crypto.new_key())
    with open_spool(tmp_path, Events(), key=key) as again:
        assert again.read(Stream.MICROPHONE, 0) == media(Stream.MICROPHONE, 0, 1000)
    assert verify_folder(tmp_path, key).ok


@pytest.mark.parametrize("where", ["magic", "header", "nonce", "ciphertext", "tag"])
def test_a_flipped_byte_is_detected_by_read_and_verify(tmp_path: Path, where: str) -> None:
    with open_spool(tmp_path, Events()) as spool:
        spool.add(segment(Stream.CAMERA, 0))
        spool.add(segment(Stream.CAMERA, 1))
        rec = spool.records()[1]
        path = tmp_path / SEGMENTS_DIR / rec.file
        blob = bytearray(path.read_bytes())
        header_end = blob.index(b"}") + 1
        offset = {
            "magic": 2,
            "header": header_end - 10,
            "nonce": header_end + 3,
            "ciphertext": header_end + 12 + 100,
            "tag": len(blob) - 2,
        }[where]
        blob[offset] ^= 0x01
        path.write_bytes(bytes(blob))
        with pytest.raises(SpoolError, match="camera segment 1"):
            spool.read(Stream.CAMERA, 1)
        assert spool.read(Stream.CAMERA, 0) == media(Stream.CAMERA, 0, 1000)
    report = verify_folder(tmp_path, TEST_KEY)
    assert len(report.problems) == 1
    assert "camera segment 1 (camera-000001.seg): corrupted" in report.problems[0]


def test_segments_cannot_be_swapped_between_numbers_or_spools(tmp_path: Path) -> None:
    key = crypto.new_key()
    with open_spool(tmp_path / "a", Events(), key=key) as spool:
        spool.add(segment(Stream.CAMERA, 0))
        spool.add(segment(Stream.CAMERA, 1, size=1000))
        seg_dir = tmp_path / "a" / SEGMENTS_DIR
        first = (seg_dir / "camera-000000.seg").read_bytes()
        (seg_dir / "camera-000001.seg").write_bytes(first)
        with pytest.raises(SpoolError, match="does not match its manifest"):
            spool.read(Stream.CAMERA, 1)
        # same key, same header, but sealed for another session: the tag fails
        other = spool.records()[0]
        foreign = encode_segment(key, "0" * 32, other, media(Stream.CAMERA, 0, 1000))
        (seg_dir / "camera-000000.seg").write_bytes(foreign)
        with pytest.raises(SpoolError, match="authentication tag"):
            spool.read(Stream.CAMERA, 0)


def test_a_torn_manifest_line_is_repaired_and_its_segment_recovered(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        for seq in range(3):
            spool.add(segment(Stream.SCREEN, seq))
    manifest = tmp_path / MANIFEST_FILE
    data = without_closing_line(manifest.read_bytes())
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    manifest.write_bytes(data[: last_start + 40])  # a crash cut the last record short
    report = verify_folder(tmp_path, TEST_KEY)
    assert any("line 3 is torn" in p for p in report.problems)
    assert any("screen-000002.seg: not in the manifest" in p for p in report.problems)
    events = Events()
    with open_spool(tmp_path, events) as again:
        assert [r.seq for r in again.records()] == [0, 1, 2]
        assert again.read(Stream.SCREEN, 2) == media(Stream.SCREEN, 2, 1000)
    assert events.of("spool.repaired") == [{"file": MANIFEST_FILE, "line": 3, "cut_bytes": 40}]
    assert events.of("spool.relisted") == [
        {"stream": "screen", "seq": 2, "file": "screen-000002.seg"}
    ]
    assert verify_folder(tmp_path, TEST_KEY).ok
    assert manifest.read_bytes().endswith(b"\n")


def test_a_damaged_middle_line_is_reported_and_nothing_after_it_is_cut(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        spool.add(segment(Stream.MICROPHONE, 0))
        spool.add(segment(Stream.MICROPHONE, 1))
        spool.add(segment(Stream.CAMERA, 0, size=5000))
        spool.add(segment(Stream.MICROPHONE, 2))
    manifest = tmp_path / MANIFEST_FILE
    lines = manifest.read_bytes().splitlines(keepends=True)
    lines[1] = b"{bit rot" + lines[1][8:]  # microphone 1's line, same length
    manifest.write_bytes(b"".join(lines))
    assert any("line 2 is damaged" in p for p in verify_folder(tmp_path, TEST_KEY).problems)
    events = Events()
    with open_spool(tmp_path, events, max_bytes=12_000) as again:
        # the lines after the damage count (the camera segment too): nothing was cut
        assert sorted((r.stream.value, r.seq) for r in again.records()) == [
            ("camera", 0),
            ("microphone", 0),
            ("microphone", 1),
            ("microphone", 2),
        ]
        assert again.next_seq(Stream.MICROPHONE) == 3
        # the cap: the new segment pushes out the oldest camera segment, as always
        again.add(segment(Stream.CAMERA, 1, size=5000))
        assert [(r.stream.value, r.seq) for r in again.dropped()] == [("camera", 0)]
    [corrupt] = events.of("spool.corrupt")
    assert (corrupt["file"], corrupt["line"]) == (MANIFEST_FILE, 2)
    assert not events.of("spool.repaired")  # no cut
    # its segment is listed again from the file itself
    assert events.of("spool.relisted") == [
        {"stream": "microphone", "seq": 1, "file": "microphone-000001.seg"}
    ]
    assert manifest.read_bytes().startswith(b"".join(lines))  # the damaged line is kept
    problems = verify_folder(tmp_path, TEST_KEY).problems
    assert any("line 2 is damaged" in p for p in problems)  # and still reported


def test_unfinished_tmp_files_are_discarded_and_journalled(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        spool.add(segment(Stream.CAMERA, 0))
    (tmp_path / SEGMENTS_DIR / "camera-000001.seg.tmp").write_bytes(b"half a segment")
    assert any("unfinished segment" in p for p in verify_folder(tmp_path, TEST_KEY).problems)
    events = Events()
    with open_spool(tmp_path, events) as again:
        assert [r.seq for r in again.records()] == [0]
    assert events.of("spool.discarded") == [
        {"file": "camera-000001.seg.tmp", "bytes": 14, "reason": "unfinished write (crash)"}
    ]
    assert not list((tmp_path / SEGMENTS_DIR).glob("*.tmp"))


def test_a_corrupt_orphan_is_set_aside_not_recovered(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        spool.add(segment(Stream.CAMERA, 0))
    (tmp_path / SEGMENTS_DIR / "camera-000001.seg").write_bytes(os.urandom(300))
    events = Events()
    with open_spool(tmp_path, events) as again:
        assert [r.seq for r in again.records()] == [0]
    [discarded] = events.of("spool.discarded")
    assert discarded["file"] == "camera-000001.seg"
    assert (tmp_path / SEGMENTS_DIR / "camera-000001.seg.corrupt").exists()
    assert any("set aside as corrupt" in p for p in verify_folder(tmp_path, TEST_KEY).problems)


def test_a_missing_segment_file_is_reported(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool:
        spool.add(segment(Stream.CAMERA, 0))
        spool.add(segment(Stream.CAMERA, 1))
    (tmp_path / SEGMENTS_DIR / "camera-000000.seg").unlink()
    assert verify_folder(tmp_path, TEST_KEY).problems == [
        "camera segment 0 (camera-000000.seg): file missing"
    ]
    events = Events()
    with open_spool(tmp_path, events) as again:
        assert [r.seq for r in again.records()] == [1]
        with pytest.raises(SpoolError, match="not in the spool"):
            again.read(Stream.CAMERA, 0)
    assert events.of("spool.missing") == [
        {"stream": "camera", "seq": 0, "file": "camera-000000.seg"}
    ]


def test_size_cap_drops_screen_then_camera_then_microphone_and_journals(tmp_path: Path) -> None:
    assert DROP_ORDER == (Stream.SCREEN, Stream.CAMERA, Stream.MICROPHONE)
    events = Events()
    probe = open_spool(tmp_path / "probe", Events(), max_bytes=MB)
    probe.add(segment(Stream.CAMERA, 0))
    each = probe.records()[0].ciphertext_bytes
    probe.close()
    # room for 6 segments of (about) the same size
    with open_spool(tmp_path / "s", events, max_bytes=6 * each + 50) as spool:
        for seq in range(2):
            for stream in (Stream.SCREEN, Stream.CAMERA, Stream.MICROPHONE):
                spool.add(segment(stream, seq))
        assert events.of("spool.near_full")
        assert not events.of("spool.dropped")
        spool.add(segment(Stream.MICROPHONE, 2))  # pushes out the oldest screen
        spool.add(segment(Stream.CAMERA, 2))  # pushes out the next screen
        spool.add(segment(Stream.MICROPHONE, 3))  # no screen left: the oldest camera
        spool.add(segment(Stream.SCREEN, 2))  # may not displace camera/microphone: dropped
        drops = [(e["stream"], e["seq"]) for e in events.of("spool.dropped")]
        assert drops == [("screen", 0), ("screen", 1), ("camera", 0), ("screen", 2)]
        assert all(e["reason"] for e in events.of("spool.dropped"))
        assert spool.used_bytes <= spool.max_bytes
        kept = sorted((r.stream.value, r.seq) for r in spool.records())
        assert kept == [
            ("camera", 1),
            ("camera", 2),
            ("microphone", 0),
            ("microphone", 1),
            ("microphone", 2),
            ("microphone", 3),
        ]
        with pytest.raises(SpoolError, match="stored before"):
            spool.add(segment(Stream.SCREEN, 0))
        assert spool.next_seq(Stream.SCREEN) == 3
    assert len(events.of("spool.near_full")) == 1
    report = verify_folder(tmp_path / "s", TEST_KEY)
    assert report.ok, report.problems
    assert report.streams["screen"].dropped == 3
    assert report.streams["camera"].dropped == 1
    # the drops survive a reopen: nothing reappears, nothing is reported missing
    events2 = Events()
    with open_spool(tmp_path / "s", events2, max_bytes=6 * each + 50) as again:
        assert len(again.records()) == 6
    assert not events2.of("spool.missing")


def test_a_segment_larger_than_the_cap_is_dropped_and_journalled(tmp_path: Path) -> None:
    events = Events()
    with open_spool(tmp_path, events, max_bytes=2000) as spool:
        spool.add(segment(Stream.CAMERA, 0, size=5000))
        assert spool.records() == []
    assert events.of("spool.dropped")[0]["reason"] == "larger than the spool cap"


def test_three_recorder_threads_can_add_at_once(tmp_path: Path) -> None:
    events = Events()
    spool = open_spool(tmp_path, events)
    errors: list[BaseException] = []

    def record(stream: Stream) -> None:
        try:
            for seq in range(25):
                spool.add(segment(stream, seq, size=2000 + seq))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(s,)) for s in Stream]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    spool.close()
    assert errors == []
    assert len(manifest_lines(tmp_path)) == 75
    report = verify_folder(tmp_path, TEST_KEY)
    assert report.ok, report.problems
    assert {name: s.segments for name, s in report.streams.items()} == {
        "screen": 25,
        "camera": 25,
        "microphone": 25,
    }


def test_a_folder_under_a_file_raises_one_line_and_journals(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    events = Events()
    with pytest.raises(SpoolError) as info:
        open_spool(blocker / "spool", events)
    assert "\n" not in str(info.value)
    assert "not writable" in str(info.value)
    assert events.of("spool.error")[0]["folder"] == str(blocker / "spool")


def test_adding_to_a_closed_spool_raises(tmp_path: Path) -> None:
    spool = open_spool(tmp_path, Events())
    spool.close()
    with pytest.raises(SpoolError, match="closed"):
        spool.add(segment(Stream.CAMERA, 0))


def test_a_folder_that_is_not_a_spool_is_refused(tmp_path: Path) -> None:
    (tmp_path / MANIFEST_FILE).write_text("{}\n")
    with pytest.raises(SpoolError, match=r"not a Lockdown spool \(spool.json is missing\)"):
        open_spool(tmp_path, Events())
    with pytest.raises(SpoolError, match="not a Lockdown spool"):
        verify_folder(tmp_path, TEST_KEY)


def test_the_key_reaches_neither_logs_nor_journal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = Events()
    caplog.set_level(logging.DEBUG, logger="lockdown")
    logging.getLogger("lockdown").propagate = True
    try:
        with open_spool(tmp_path, events, max_bytes=3000) as spool:
            for seq in range(4):
                spool.add(segment(Stream.CAMERA, seq))
        (tmp_path / MANIFEST_FILE).write_bytes((tmp_path / MANIFEST_FILE).read_bytes()[:-5])
        with open_spool(tmp_path, events, max_bytes=3000):
            pass
    finally:
        logging.getLogger("lockdown").propagate = False
    key = TEST_KEY.hex()
    assert caplog.records  # the drops and the repair were logged
    assert key not in caplog.text
    assert key not in json.dumps([dict(e.payload) for e in events.events])
    assert key not in (tmp_path / MANIFEST_FILE).read_text()


def test_a_negative_sequence_number_is_refused(tmp_path: Path) -> None:
    with open_spool(tmp_path, Events()) as spool, pytest.raises(SpoolError, match="not a valid"):
        spool.add(segment(Stream.CAMERA, -1))
