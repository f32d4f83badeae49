"""Fuzzing: the manifest parser never raises, and corrupt segments only ever raise SpoolError."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdown.upload import crypto
from lockdown.upload.base import SpoolError, Stream
from lockdown.upload.format import (
    SEGMENT_MAGIC,
    SEGMENTS_DIR,
    ManifestRecord,
    decode_segment,
    parse_acknowledged,
    parse_manifest,
)
from lockdown.upload.spool import Spool
from tests.unit.upload.factory import TEST_KEY, Events, segment

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
GOOD = {
    "kind": "segment",
    "stream": "camera",
    "seq": 1,
    "start_utc": "2026-11-22T09:00:00+00:00",
    "end_utc": "2026-11-22T09:00:30+00:00",
    "duration": 30.0,
    "units": 450,
    "mime": "video/webm",
    "bytes": 10,
    "sha256": "a" * 64,
    "ciphertext_bytes": 100,
    "file": "camera-000001.seg",
    "body_sha256": "b" * 64,
}


@given(st.binary(max_size=2000))
def test_parse_manifest_never_raises_on_bytes(data: bytes) -> None:
    parsed = parse_manifest(data)
    assert (parsed.first_bad is None) == (not parsed.problems)


@given(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=12), st.booleans())
def test_parse_manifest_never_raises_on_mutated_records(
    changes: dict[str, object], torn: bool
) -> None:
    line = json.dumps({**GOOD, **changes}, allow_nan=True).encode()
    data = json.dumps(GOOD).encode() + b"\n" + line + (b"" if torn else b"\n")
    parsed = parse_manifest(data)
    assert isinstance(parsed.entries[0][1], ManifestRecord)
    assert len(parsed.entries) + len(parsed.problems) == 2
    for _, entry in parsed.entries:
        assert entry.seq >= 0
    # only an unterminated last line is torn (cut); any other bad line is damage (kept)
    assert parsed.torn is None or torn
    assert all(number == 2 for number, _, _ in parsed.damaged)


@given(
    st.lists(st.dictionaries(st.sampled_from(sorted(GOOD)), json_values, max_size=4), max_size=4)
)
@settings(max_examples=60)
def test_a_damaged_middle_line_never_hides_the_lines_after_it(
    middles: list[dict[str, object]],
) -> None:
    lines = [
        json.dumps({**GOOD, **m, "seq": 1000 + i}, allow_nan=True) for i, m in enumerate(middles)
    ]
    last = json.dumps({**GOOD, "seq": 7})
    parsed = parse_manifest("\n".join([json.dumps(GOOD), *lines, last, ""]).encode())
    assert parsed.torn is None
    seqs = [entry.seq for _, entry in parsed.entries]
    assert (seqs[0], seqs[-1]) == (1, 7)
    assert len(parsed.entries) + len(parsed.damaged) == len(middles) + 2


@given(st.binary(max_size=1000))
def test_the_acknowledgement_parser_never_raises(data: bytes) -> None:
    parsed = parse_acknowledged(data)
    assert parsed.torn is None or not data.endswith(b"\n")


def test_parse_manifest_survives_deep_nesting() -> None:
    parsed = parse_manifest(b"[" * 100_000 + b"\n" + json.dumps(GOOD).encode() + b"\n")
    assert parsed.problems[0][0] == 1
    assert len(parsed.entries) == 1


@given(st.binary(max_size=600), st.booleans())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=150)
def test_read_of_random_ciphertext_raises_only_spool_error(
    tmp_path: Path, junk: bytes, with_magic: bool
) -> None:
    folder = tmp_path / "spool"
    spool = Spool.open(folder, report=Events(), max_bytes=10**8, key=TEST_KEY)
    try:
        if not spool.records():
            spool.add(segment(Stream.SCREEN, 0))
        path = folder / SEGMENTS_DIR / spool.records()[0].file
        path.write_bytes((SEGMENT_MAGIC if with_magic else b"") + junk)
        try:
            spool.read(Stream.SCREEN, 0)
        except SpoolError:
            pass
        else:
            raise AssertionError("random bytes decrypted")
    finally:
        spool.close()


@given(st.binary(max_size=400))
def test_decode_segment_of_random_bytes_raises_only_spool_error(junk: bytes) -> None:
    key = crypto.new_key()
    for blob in (junk, SEGMENT_MAGIC + junk, SEGMENT_MAGIC + len(junk).to_bytes(4, "big") + junk):
        try:
            decode_segment(key, "s", blob)
        except SpoolError:
            continue
        raise AssertionError("random bytes decoded")
