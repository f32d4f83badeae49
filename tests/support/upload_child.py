"""A recording client in a process of its own, for ``kill -9`` tests of the upload.

``python -m tests.support.upload_child FOLDER --segments N --seed S`` opens (or, after a
kill, reopens) the spool in FOLDER with the test's own key, adds the segments it does not
have yet (a few per second, each stream in turn), uploads with the real
:class:`~lockdown.upload.uploader.Uploader` under the upload token of FOLDER's
``service.json`` (its ``url`` may be a fault proxy) with short back-off settings, then
drains, closes the spool and exits 0. Its journal is FOLDER/../journal.jsonl.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

from lockdown.events import Journal
from lockdown.session.client import ServiceClient
from lockdown.session.state import SessionRecord
from lockdown.upload.base import Stream
from lockdown.upload.source import SpoolSource
from lockdown.upload.spool import Spool
from lockdown.upload.uploader import RetryPolicy, Uploader, UploadSettings
from tests.unit.upload.factory import TEST_KEY, segment

STREAMS = (Stream.CAMERA, Stream.MICROPHONE, Stream.SCREEN)
#: back-off for tests: full jitter between 20 ms and 300 ms
FAST = UploadSettings(retry=RetryPolicy(first_s=0.02, max_s=0.3), idle_s=0.05, events_batch=50)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--segments", type=int, required=True, help="per stream")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=24_000)
    args = parser.parse_args()
    folder = Path(args.folder)
    record = SessionRecord.load(folder)
    assert record is not None and record.upload_token, "no session in service.json"
    journal = Journal.open(folder.parent / "journal.jsonl")
    spool = Spool.open(folder, report=journal.append, max_bytes=1 << 30, key=TEST_KEY)
    uploader = Uploader(
        ServiceClient(record.url, timeout=(2.0, 5.0)),
        record.session_id,
        record.upload_token,
        SpoolSource(spool),
        journal=journal.path,
        report=journal.append,
        settings=FAST,
        rng=random.Random(args.seed),
    ).start()
    rng = random.Random(args.seed)
    for seq in range(args.segments):
        for stream in STREAMS:
            if spool.next_seq(stream) > seq:
                continue  # stored before a kill
            spool.add(segment(stream, seq, size=args.size + rng.randrange(4000)))
            uploader.wake()
            time.sleep(0.02)
    journal.flush()
    result = uploader.drain(60.0, close=True)
    uploader.stop()
    spool.close()
    journal.close()
    print(f"drained: {result}", flush=True)
    return 0 if result.complete and result.closed else 1


if __name__ == "__main__":
    sys.exit(main())
