"""Benchmark: how late a reviewer sees a recording, and how fast a backlog drains.

1. **Capture → stored and readable**. A real spool and the real
   :class:`~lockdown.upload.uploader.Uploader` (default settings: it looks at the spool
   every second, two uploads at a time) send three streams of realistic sizes to a real
   ``lockdown-server`` on PostgreSQL. Every ``--segment-s`` seconds (default 30, the
   client's default ``proctoring.segment_length``) a segment of each stream is finalized
   into the spool, as the recorders do; a watcher asks the service (``HEAD``) until it has
   the segment and reads it back through the service's object store. A frame captured at
   time *t* of a segment ending at *e* is readable after ``(e - t) + (ready - e)``; the
   p50/p95 are over frames spread evenly through every segment (so p95 ≈ 0.95 × segment
   length + the upload's own delay). Recorder finalization (flushing the encoder) comes
   before *e* and is bench_capture.py's figure.
2. **Backlog drain after an outage**. The fault proxy between client and service drops
   every connection for ``--down-s`` seconds (default 600, the issue's 10-minute outage;
   shorter runs allowed) while ``--outage-s`` seconds of recording (default the same)
   pile up in the spool; then the proxy passes at a fixed ``--rate-kbps`` (default 2,000
   kbit/s). Printed: the backlog, the wait until the first upload gets through (the
   client's back-off), the drain time and rate, and the rate as a share of the proxy's.

Run: ``.venv/bin/python bench/bench_delay.py [--segments 10] [--down-s 600]``
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lockdown.capture.base import Stream  # noqa: E402
from lockdown.events import Journal  # noqa: E402
from lockdown.session.client import ServiceClient  # noqa: E402
from lockdown.session.state import Connection, ServiceSession, SessionRecord  # noqa: E402
from lockdown.upload.source import SpoolSource  # noqa: E402
from lockdown.upload.spool import Spool  # noqa: E402
from lockdown.upload.uploader import Uploader  # noqa: E402
from lockdown_server.service import Service  # noqa: E402
from tests.support.faultproxy import FaultProxy, Faults  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.service import ServiceProcess, Storage, launch_token  # noqa: E402
from tests.unit.upload.factory import TEST_KEY, Events, segment  # noqa: E402

#: bytes per 30 s segment, as in bench_service.py (≈ 55 MB/h for the three)
SIZES = {Stream.CAMERA: 250_000, Stream.SCREEN: 150_000, Stream.MICROPHONE: 60_000}
FRAMES = 100  # sample points per segment


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def open_session(service: ServiceProcess, folder: Path, url: str, exam: str) -> SessionRecord:
    service.create_exam(exam)
    link = service.add_candidate(exam, f"{exam}-u")
    Spool.open(folder, report=Events(), max_bytes=1 << 31, key=TEST_KEY).close()
    client = ServiceClient(url)
    session = ServiceSession(client, Events(), pause=lambda _s: time.sleep(0.2))
    assert session.exchange(launch_token(link)).state is Connection.CONNECTED
    request = {"client_version": "bench", "build": "installed", "build_identity": "bench"}
    created = session.create(folder, {**request, "settings_hash": "h", "isolation_mode": "x"})
    client.close()
    assert created.state is Connection.CONNECTED, created
    record = SessionRecord.load(folder)
    assert record is not None
    return record


def start_uploader(folder: Path, record: SessionRecord, url: str) -> tuple[Uploader, Spool]:
    journal = Journal.open(folder.parent / "journal.jsonl")
    spool = Spool.open(folder, report=journal.append, max_bytes=1 << 31, key=TEST_KEY)
    uploader = Uploader(
        ServiceClient(url),
        record.session_id,
        record.upload_token,
        SpoolSource(spool),
        journal=journal.path,
        report=journal.append,
    ).start()
    return uploader, spool


def delay_run(
    service: ServiceProcess, opened: Service, root: Path, args: argparse.Namespace
) -> None:
    folder = root / "delay" / "spool"
    record = open_session(service, folder, service.url, "delay")
    uploader, spool = start_uploader(folder, record, service.url)
    probe = ServiceClient(service.url)
    delays: list[float] = []
    upload_only: list[float] = []
    watchers: list[threading.Thread] = []

    def watch(stream: Stream, seq: int, ended: float) -> None:
        while True:
            reply = probe.head_segment(record.upload_token, record.session_id, stream.value, seq)
            if reply.status == 200:
                break
            time.sleep(0.05)
        with opened.engine.connect() as conn:
            from sqlalchemy import select

            from lockdown_server.store import models

            key = conn.scalar(
                select(models.segments.c.object_key).where(
                    (models.segments.c.session_id == record.session_id)
                    & (models.segments.c.stream == stream.value)
                    & (models.segments.c.seq == seq)
                )
            )
        assert key is not None and opened.objects.read(key)
        ready = time.monotonic()
        upload_only.append(ready - ended)
        length = args.segment_s
        delays.extend(ready - (ended - length + length * i / FRAMES) for i in range(FRAMES))

    began = time.monotonic()
    scale = args.segment_s / 30.0
    for seq in range(args.segments):
        time.sleep(max(0.0, began + (seq + 1) * args.segment_s - time.monotonic()))
        for stream, size in SIZES.items():
            spool.add(segment(stream, seq, size=int(size * scale), length=args.segment_s))
            ended = time.monotonic()
            thread = threading.Thread(target=watch, args=(stream, seq, ended), daemon=True)
            thread.start()
            watchers.append(thread)
    for thread in watchers:
        thread.join(120)
    uploader.stop()
    spool.close()
    probe.close()
    print(
        f"capture -> stored and readable, segment {args.segment_s:.0f} s, "
        f"{args.segments} segments x 3 streams: p50 {percentile(delays, 0.5):.1f} s, "
        f"p95 {percentile(delays, 0.95):.1f} s (upload after the segment ends: p50 "
        f"{percentile(upload_only, 0.5):.2f} s, p95 {percentile(upload_only, 0.95):.2f} s)"
    )
    per_hour = sum(SIZES.values()) * scale * 3600 / args.segment_s / 1e6
    print(f"storage at these sizes: {per_hour:.0f} MB/h per candidate")


def drain_run(service: ServiceProcess, root: Path, args: argparse.Namespace) -> None:
    proxy = FaultProxy(("127.0.0.1", service.port), seed=20).start()
    folder = root / "drain" / "spool"
    record = open_session(service, folder, proxy.url, "drain")
    uploader, spool = start_uploader(folder, record, proxy.url)
    proxy.set_faults(Faults(drop=1.0))
    proxy.sever()
    count = max(1, round(args.outage_s / 30.0))
    rng = random.Random(20)
    for seq in range(count):
        for stream, size in SIZES.items():
            spool.add(segment(stream, seq, size=int(size * rng.uniform(0.9, 1.1)), length=30.0))
    backlog = sum(r.ciphertext_bytes for r in spool.records())
    print(f"outage: {args.down_s:.0f} s down, backlog {count} x 3 segments, {backlog} bytes")
    time.sleep(args.down_s)
    rate = int(args.rate_kbps * 1000 / 8)
    sent_before = proxy.stats["bytes_up"]
    proxy.set_faults(Faults(link_bps=rate))
    restored = time.monotonic()
    first: float | None = None
    total = 3 * count
    while uploader.acknowledged < total:
        if first is None and proxy.stats["bytes_up"] > sent_before:
            first = time.monotonic()
        time.sleep(0.02)
        if time.monotonic() - restored > 3600:
            raise SystemExit("the backlog did not drain within an hour")
    done = time.monotonic()
    first = first or done
    sent = proxy.stats["bytes_up"] - sent_before
    drained = backlog / (done - first)
    print(
        f"backlog drained {done - restored:.1f} s after the service came back; the first "
        f"byte went after {first - restored:.1f} s of back-off. Once sending: "
        f"{drained * 8 / 1000:.0f} kbit/s of segments = {drained / rate:.0%} of the "
        f"{args.rate_kbps:.0f} kbit/s link ({sent * 8 / 1000 / (done - first):.0f} kbit/s "
        f"on the wire with headers and events); counting the back-off "
        f"{backlog / (done - restored) / rate:.0%}"
    )
    uploader.stop()
    spool.close()
    proxy.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--segment-s", type=float, default=30.0)
    parser.add_argument("--segments", type=int, default=10, help="per stream, delay run")
    parser.add_argument("--down-s", type=float, default=600.0, help="outage, real seconds")
    parser.add_argument("--outage-s", type=float, help="recording piled up (default --down-s)")
    parser.add_argument("--rate-kbps", type=float, default=2000.0)
    parser.add_argument("--skip-delay", action="store_true")
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    args.outage_s = args.outage_s or args.down_s
    os.environ.setdefault("LOCKDOWN_DEV_PROCESS_SESSION", "bench")
    root = Path(tempfile.mkdtemp(prefix="bench-delay-"))
    pg = PostgresServer().start()
    service = ServiceProcess(root / "data", storage=Storage(pg.new_database()))
    try:
        service.start()
        opened = service.open()
        if not args.skip_delay:
            delay_run(service, opened, root, args)
        if not args.skip_drain:
            drain_run(service, root, args)
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        service.stop()
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
