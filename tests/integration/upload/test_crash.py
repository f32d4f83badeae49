"""A real process adding segments is killed with SIGKILL; the spool reopens intact and journals repairs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lockdown.upload.base import Stream
from lockdown.upload.format import SEGMENTS_DIR
from lockdown.upload.spool import Spool
from lockdown.upload.verify import verify_folder
from tests.unit.upload.factory import TEST_KEY, Events

REPO = Path(__file__).resolve().parents[3]

#: The child: opens the spool and adds segments of random size in a loop, printing each
#: finalized one. ``mode`` optionally kills the process at one exact point of ``add``.
CHILD = r"""
import os, random, signal, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from lockdown.capture.base import Segment, Stream
from lockdown.upload import spool as spool_mod

folder, mode = Path(sys.argv[1]), sys.argv[2]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

def data(stream, seq, big):
    rng = random.Random(f"{stream.value}/{seq}")
    return rng.randbytes(rng.randrange(200_000, 3_000_000) if big else 5_000)

if mode == "before-rename":
    real_replace = os.replace
    def replace(src, dst):
        if str(dst).endswith("camera-000003.seg"):
            die()
        real_replace(src, dst)
    os.replace = replace
elif mode == "before-manifest":
    real_append = spool_mod.Spool._append
    def append(self, entry):
        if entry.seq == 3:
            die()
        real_append(self, entry)
    spool_mod.Spool._append = append
elif mode == "torn-manifest":
    real_pwrite = os.pwrite
    def pwrite(fd, data, offset):
        if bytes(data[:2]) == b'{"' and b'"seq":3,' in bytes(data):
            real_pwrite(fd, bytes(data[: len(data) // 2]), offset)
            die()
        return real_pwrite(fd, data, offset)
    os.pwrite = pwrite

spool = spool_mod.Spool.open(
    folder, report=lambda event: None, max_bytes=10**10, key=bytes(range(32))
)
streams = [Stream.CAMERA] if mode != "loop" else list(Stream)
seqs = {s: spool.next_seq(s) for s in streams}
pick = random.Random(int(sys.argv[3]))
print("ready", flush=True)
while True:
    stream = pick.choice(streams)
    seq = seqs[stream]
    start = datetime(2026, 11, 22, tzinfo=UTC) + timedelta(seconds=2 * seq)
    spool.add(Segment(stream, seq, start, start + timedelta(seconds=2), 2.0, 30, "video/webm",
                      data(stream, seq, mode == "loop")))
    print(f"done {stream.value} {seq}", flush=True)
    seqs[stream] = seq + 1
    if mode != "loop" and seq >= 6:
        break
"""


def expected(stream: Stream, seq: int, big: bool) -> bytes:
    rng = random.Random(f"{stream.value}/{seq}")
    return rng.randbytes(rng.randrange(200_000, 3_000_000) if big else 5_000)


def start_child(folder: Path, mode: str, seed: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(folder), mode, str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def finished(
    proc: subprocess.Popen[str], timeout: float = 30
) -> tuple[list[tuple[Stream, int]], int]:
    out, _ = proc.communicate(timeout=timeout)
    return parse_done(out), proc.returncode


def parse_done(out: str) -> list[tuple[Stream, int]]:
    return [
        (Stream(parts[1]), int(parts[2]))
        for parts in (line.split() for line in out.splitlines())
        if parts[:1] == ["done"]
    ]


def test_sigkill_at_random_moments_leaves_every_finalized_segment_intact(tmp_path: Path) -> None:
    outcomes: list[str] = []
    all_done: set[tuple[Stream, int]] = set()
    folder = tmp_path / "spool"
    for run in range(5):
        proc = start_child(folder, "loop", seed=run)
        assert proc.stdout is not None
        target = random.randrange(1, 4)
        deadline = time.monotonic() + 30
        early: list[str] = []
        while len(early) < target and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "the child died on its own"
            early.append(line)
        time.sleep(random.uniform(0, 0.12))
        os.kill(proc.pid, signal.SIGKILL)
        done, code = finished(proc)
        assert code == -signal.SIGKILL
        all_done.update(parse_done("".join(early)))
        all_done.update(done)
        leftovers = sorted(p.name for p in (folder / SEGMENTS_DIR).iterdir() if p.suffix == ".tmp")
        events = Events()
        with Spool.open(folder, report=events, max_bytes=10**10, key=TEST_KEY) as spool:
            stored = {r.key for r in spool.records()}
            assert all_done <= stored, "a finalized segment was lost"
            for stream, seq in stored:
                assert spool.read(stream, seq) == expected(stream, seq, big=True)
            # anything beyond what the child reported is the one it was finalizing
            assert len(stored - all_done) <= 1
        assert [e["file"] for e in events.of("spool.discarded")] == leftovers
        recovered = {
            (Stream(str(e["stream"])), int(str(e["seq"]))) for e in events.of("spool.relisted")
        }
        assert recovered <= stored - all_done
        all_done |= stored
        report = verify_folder(folder, TEST_KEY)
        assert report.ok, report.problems
        outcomes.append(
            f"run {run}: {len(stored)} stored, discarded {leftovers}, recovered {sorted(recovered)}"
        )
    print("\n".join(outcomes))


@pytest.mark.parametrize(
    ("mode", "kept", "repaired"),
    [
        ("before-rename", [0, 1, 2], ["spool.discarded"]),
        ("before-manifest", [0, 1, 2, 3], ["spool.relisted"]),
        ("torn-manifest", [0, 1, 2, 3], ["spool.repaired", "spool.relisted"]),
    ],
)
def test_sigkill_at_each_step_of_add_is_repaired_and_journalled(
    tmp_path: Path, mode: str, kept: list[int], repaired: list[str]
) -> None:
    proc = start_child(tmp_path, mode, seed=0)
    done, code = finished(proc)
    assert code == -signal.SIGKILL
    assert [seq for _, seq in done] == [0, 1, 2]
    events = Events()
    with Spool.open(tmp_path, report=events, max_bytes=10**10, key=TEST_KEY) as spool:
        assert [r.seq for r in spool.records()] == kept
        for seq in kept:
            assert spool.read(Stream.CAMERA, seq) == expected(Stream.CAMERA, seq, big=False)
        assert spool.next_seq(Stream.CAMERA) == len(kept)
    assert [t for t in events.types() if t != "spool.opened"] == repaired
    assert verify_folder(tmp_path, TEST_KEY).ok
