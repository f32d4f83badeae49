"""A nearly full disk (a real tmpfs) is seen before the OS says ENOSPC: journalled, room made safely."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from lockdown.upload.base import SpoolError, Stream
from lockdown.upload.spool import DEV_NO_DISK_CHECK, Spool
from lockdown.upload.verify import verify_folder
from tests.support.disk import fill
from tests.unit.upload.factory import TEST_KEY, Events, media, segment

KIB = 1024
RESERVE = 64 * KIB
SIZE = 150 * KIB


def nearly_full(tmpfs: Callable[[str], Path], free: int) -> tuple[Path, Spool, Events]:
    """A spool with three camera segments on a tmpfs left with about ``free`` bytes."""
    mount = tmpfs("4m")
    events = Events()
    spool = Spool.open(
        mount / "spool", report=events, max_bytes=10**9, key=TEST_KEY, reserve_bytes=RESERVE
    )
    for seq in range(3):
        spool.add(segment(Stream.CAMERA, seq, size=SIZE))
    filler = fill(mount)
    os.truncate(filler, max(0, filler.stat().st_size - free))
    return mount, spool, events


@pytest.mark.parametrize("check", [True, False], ids=["checked", "positive-control"])
def test_low_disk_is_journalled_before_enospc_and_room_is_made(
    tmpfs: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, check: bool
) -> None:
    if not check:  # the protection off: the same disk ends in the OS's ENOSPC
        monkeypatch.setenv(f"LOCKDOWN_DEV_{DEV_NO_DISK_CHECK}", "1")
    mount, spool, events = nearly_full(tmpfs, free=100 * KIB)
    with spool:
        if not check:
            with pytest.raises(SpoolError, match="disk is full"):
                spool.add(segment(Stream.CAMERA, 3, size=SIZE))
            assert events.of("spool.error") and not events.of("spool.low_disk")
            assert events.of("spool.dev_switch")
            return
        spool.add(segment(Stream.CAMERA, 3, size=SIZE))
        [low] = events.of("spool.low_disk")
        assert low["reserve_bytes"] == RESERVE and int(str(low["free_bytes"])) < SIZE
        assert not events.of("spool.error")
        # the oldest camera segment made room; the new one is stored, the reserve is kept
        assert [(e["seq"], e["reason"]) for e in events.of("spool.dropped")] == [
            (0, "disk almost full")
        ]
        assert [r.seq for r in spool.records()] == [1, 2, 3]
        assert spool.read(Stream.CAMERA, 3) == media(Stream.CAMERA, 3, SIZE)
        assert shutil.disk_usage(mount).free > RESERVE // 2
    assert verify_folder(mount / "spool", TEST_KEY).ok


def test_nothing_is_evicted_when_the_store_could_not_succeed(
    tmpfs: Callable[[str], Path],
) -> None:
    mount, spool, events = nearly_full(tmpfs, free=100 * KIB)
    with spool:
        # a screen segment may not push out camera segments: it is dropped itself
        spool.add(segment(Stream.SCREEN, 0, size=SIZE))
        # a camera segment larger than everything that could go: dropped, nothing evicted
        spool.add(segment(Stream.CAMERA, 3, size=4 * SIZE))
        assert [(e["stream"], e["seq"], e["reason"]) for e in events.of("spool.dropped")] == [
            ("screen", 0, "the disk is almost full"),
            ("camera", 3, "the disk is almost full"),
        ]
        assert [r.seq for r in spool.records()] == [0, 1, 2]
        assert len(events.of("spool.low_disk")) == 1  # once, not for every segment
        assert not events.of("spool.error")
        assert spool.next_seq(Stream.CAMERA) == 4  # a dropped number is never used again
    assert verify_folder(mount / "spool", TEST_KEY).ok
