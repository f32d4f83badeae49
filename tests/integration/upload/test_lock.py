"""One process per spool folder: a second real process is refused with one clear line."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lockdown.upload.base import SpoolError, Stream
from lockdown.upload.spool import Spool
from lockdown.upload.verify import verify_folder
from tests.unit.upload.factory import TEST_KEY, Events, segment

REPO = Path(__file__).resolve().parents[3]

#: The first process: opens the spool (new, or an earlier one), stores a segment, holds on.
HOLDER = r"""
import sys
from pathlib import Path
from lockdown.upload.spool import Spool
from tests.unit.upload.factory import TEST_KEY, segment
from lockdown.upload.base import Stream

folder, how = Path(sys.argv[1]), sys.argv[2]
if how == "earlier":
    spool = Spool.open_earlier(folder, lambda event: None)
else:
    spool = Spool.open(folder, report=lambda event: None, max_bytes=10**8, key=TEST_KEY)
    spool.add(segment(Stream.CAMERA, spool.next_seq(Stream.CAMERA)))
print("ready", flush=True)
sys.stdin.readline()
spool.close()
"""


@contextmanager
def holder(folder: Path, how: str = "open") -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), how],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "ready", proc.stderr.read() if proc.stderr else ""
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def open_spool(folder: Path, events: Events) -> Spool:
    return Spool.open(folder, report=events, max_bytes=10**8, key=TEST_KEY)


def test_a_second_process_on_one_spool_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    events = Events()
    with holder(folder) as first:
        for attempt in (
            lambda: open_spool(folder, events),
            lambda: Spool.open_earlier(folder, events),
        ):
            with pytest.raises(SpoolError) as info:
                attempt()
            message = str(info.value)
            assert f"in use by another Lockdown process (pid {first.pid})" in message
            assert "\n" not in message
        assert len(events.of("spool.error")) == 2
        assert first.stdin is not None
        first.stdin.write("\n")
        first.stdin.flush()
        first.wait(timeout=30)
        assert first.returncode == 0
    # the positive control: the same open, once the first process let go, works
    with open_spool(folder, Events()) as second:
        second.add(segment(Stream.CAMERA, second.next_seq(Stream.CAMERA)))
        assert [r.seq for r in second.records()] == [0, 1]
    assert verify_folder(folder, TEST_KEY).ok


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    with holder(folder) as first:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    with open_spool(folder, Events()) as again:  # the kernel dropped the flock
        assert [r.seq for r in again.records()] == [0]
    # an earlier spool held by another start is refused too, then free again
    with holder(folder, "earlier"), pytest.raises(SpoolError, match="in use"):
        open_spool(folder, Events())
    with Spool.open_earlier(folder, Events()) as earlier:
        assert [r.seq for r in earlier.pending()] == [0]
