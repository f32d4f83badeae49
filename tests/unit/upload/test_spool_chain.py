"""The spool manifest's chains: hash-linked lines, MACs under the session's key, a closing
line; what a forged or cut manifest looks like with and without the recipient's key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lockdown.capture.base import Stream
from lockdown.events import record_hash
from lockdown.upload import crypto
from lockdown.upload.spool import MANIFEST_FILE, Spool, open_keys, verify_folder
from tests.unit.upload.factory import Events, segment


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, bytes, bytes]:
    """A spool sealed for a recipient, closed; (folder, data key, MAC key)."""
    private, _, public = crypto.generate_recipient(tmp_path / "it")
    folder = tmp_path / "rec"
    with Spool.open(
        folder, report=Events(), max_bytes=10**9, recipient=crypto.parse_recipient(public)
    ) as spool:
        for seq in range(3):
            spool.add(segment(Stream.CAMERA, seq))
        head = spool.head()
    key, mac_key = open_keys(folder, crypto.load_recipient_private(private))
    assert mac_key is not None and head["mac"] != "0" * 64
    return folder, key, mac_key


def lines(folder: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in (folder / MANIFEST_FILE).read_bytes().splitlines()]


def write_rechained(folder: Path, objs: list[dict[str, object]]) -> None:
    """What someone without the MAC key can do: fix up every hash link."""
    prev = "0" * 64
    out = []
    for obj in objs:
        obj["prev"] = prev
        obj["hash"] = record_hash(obj)
        prev = str(obj["hash"])
        out.append(json.dumps(obj, sort_keys=True, separators=(",", ":")))
    (folder / MANIFEST_FILE).write_text("\n".join(out) + "\n")


def test_a_sealed_spool_is_intact_and_closed_with_its_macs_checked(
    sealed: tuple[Path, bytes, bytes],
) -> None:
    folder, key, mac_key = sealed
    objs = lines(folder)
    assert objs[-1]["kind"] == "closed" and objs[-1]["lines"] == 3
    assert all("mac" in o and "prev_mac" in o for o in objs)
    report = verify_folder(folder, key, mac_key)
    assert report.ok and report.closed and report.keyed and report.macs_checked
    structure = verify_folder(folder)  # no key: the structure only
    assert structure.ok and structure.closed and not structure.macs_checked


def test_tail_removal_is_not_closed_even_without_the_key(
    sealed: tuple[Path, bytes, bytes],
) -> None:
    folder, _, _ = sealed
    data = (folder / MANIFEST_FILE).read_bytes().splitlines(keepends=True)
    (folder / MANIFEST_FILE).write_bytes(b"".join(data[:-2]))  # the last segment and the end
    report = verify_folder(folder)
    assert not report.closed
    assert [p.split(" (")[0] for p in report.problems] == ["camera-000002.seg: not in the manifest"]


def test_a_forged_dropped_line_is_found_with_the_key(sealed: tuple[Path, bytes, bytes]) -> None:
    folder, key, mac_key = sealed
    objs = lines(folder)
    forged = {k: v for k, v in objs[1].items() if k in ("stream", "seq", "file")} | {
        "kind": "dropped",
        "reason": "size cap",
        "utc": "2026-11-22T09:00:05+00:00",
    }
    forged["prev_mac"], forged["mac"] = objs[1]["mac"], "f" * 64
    objs.insert(2, forged)
    objs[-1]["lines"] = len(objs) - 1
    write_rechained(folder, objs)
    assert verify_folder(folder).ok  # the plain chain was fixed up: structure alone is fooled
    report = verify_folder(folder, key, mac_key)
    assert any(
        "manifest.jsonl line 3 was edited or the manifest re-chained" in p for p in report.problems
    ), report.problems
