"""Benchmark: N simulated candidates against the service on PostgreSQL.

Starts a real PostgreSQL 15 (``initdb`` as ``nobody``, as the tests do), ``--processes``
``lockdown-server serve`` processes on it (default 2, one per core here; objects in a
shared local folder, or in ``moto`` S3 with ``--s3``), an exam and N candidates (default
300). Each simulated candidate exchanges its launch token, creates its session, then for
``--seconds`` (default 300) uploads three streams of realistic sizes every
``--segment-s`` seconds (default 30: camera ~250 kB, screen ~150 kB, microphone ~60 kB
per segment, ≈ 55 MB/h, what our recorders make) and posts an events batch every 5 s,
starting at random offsets, each candidate on one process (as a load balancer would
spread them). It prints the acknowledgement latency p50/p99 of segments and events,
requests/s, the service processes' CPU, the load average, and lost/duplicated: segments
acknowledged but not stored, and stored objects or rows beyond one per segment — both
must be 0.

Run: ``.venv/bin/python bench/bench_service.py [--candidates 300] [--seconds 300]``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from lockdown_server import exams  # noqa: E402
from lockdown_server.service import Service  # noqa: E402
from lockdown_server.store import models  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.service import ServiceProcess, Storage, launch_token  # noqa: E402

#: bytes per 30 s segment (scaled to --segment-s): VP9 camera 640x480 at 15 fps, VP9
#: screen (mostly still), Opus voice
SIZES = {"camera": 250_000, "screen": 150_000, "microphone": 60_000}
EVENTS_EVERY_S = 5.0


def digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


@dataclass
class Tally:
    segment_ms: list[float] = field(default_factory=list)
    event_ms: list[float] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    acknowledged: set[tuple[str, str, int]] = field(default_factory=set)


@dataclass
class Bodies:
    """A few random bodies per stream (the service stores them as they are)."""

    pool: dict[str, list[tuple[bytes, str]]]

    @classmethod
    def make(cls, scale: float, rng: random.Random) -> Bodies:
        pool = {}
        for stream, size in SIZES.items():
            n = max(1000, int(size * scale))
            pool[stream] = []
            for _ in range(8):
                body = rng.randbytes(int(n * rng.uniform(0.8, 1.2)))
                pool[stream].append((body, digest(body)))
        return cls(pool)


async def candidate(
    base: str,
    link: str,
    bodies: Bodies,
    tally: Tally,
    *,
    until: float,
    segment_s: float,
    rng: random.Random,
) -> None:
    # one client (and connection pool) per candidate, as in real life; one shared pool
    # of hundreds of connections costs httpcore more CPU than the requests themselves
    async with httpx.AsyncClient(timeout=120) as http:
        await _candidate(http, base, link, bodies, tally, until=until, segment_s=segment_s, rng=rng)


async def _candidate(
    http: httpx.AsyncClient,
    base: str,
    link: str,
    bodies: Bodies,
    tally: Tally,
    *,
    until: float,
    segment_s: float,
    rng: random.Random,
) -> None:
    async def start(url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        for _attempt in range(20):  # connection refused or reset in the start-up rush
            tally.requests += 1
            try:
                reply = await http.post(url, json=body, headers=headers)
                if reply.status_code in (200, 201):
                    return reply.json()
                tally.kinds[f"start {reply.status_code}"] += 1
            except httpx.HTTPError as exc:
                tally.kinds[f"start {type(exc).__name__}"] += 1
            tally.failures += 1
            await asyncio.sleep(rng.uniform(0.5, 3))
        raise SystemExit(f"a candidate could not start: {dict(tally.kinds)}")

    await asyncio.sleep(rng.uniform(0, segment_s))  # candidates arrive over a segment length
    token = (await start(f"{base}/api/v1/token", {"launch_token": launch_token(link)}, {}))[
        "session_token"
    ]
    sid = str(uuid.uuid4())
    auth = {"Authorization": f"Bearer {token}"}
    body = {
        "session_id": sid,
        "client_version": "bench",
        "build": "installed",
        "build_identity": "bench",
        "settings_hash": "0" * 64,
        "isolation_mode": "shared",
        "spool_header": {},
    }
    created = await start(f"{base}/api/v1/sessions", body, auth)
    upload = {"Authorization": f"Bearer {created['upload_token']}"}
    await asyncio.sleep(rng.uniform(0, segment_s))
    seq = 0
    event_id = 0
    next_segment = time.monotonic()
    previous: dict[str, str] = {}
    while time.monotonic() < until:
        if time.monotonic() >= next_segment:
            for stream in SIZES:
                data, dig = rng.choice(bodies.pool[stream])
                meta = {
                    "start_utc": "2026-12-01T09:00:00+00:00",
                    "duration": segment_s,
                    "plain_sha256": "0" * 64,
                    "previous_digest": previous.get(stream, ""),
                }
                headers = {
                    **upload,
                    "Content-Digest": dig,
                    "Lockdown-Segment": json.dumps(meta),
                    "Content-Type": "application/octet-stream",
                }
                url = f"{base}/api/v1/sessions/{sid}/segments/{stream}/{seq}"
                for _attempt in range(20):
                    began = time.perf_counter()
                    tally.requests += 1
                    try:
                        reply = await http.put(url, content=data, headers=headers)
                    except httpx.HTTPError as exc:
                        tally.failures += 1
                        tally.kinds[type(exc).__name__] += 1
                        await asyncio.sleep(rng.uniform(0.5, 2))
                        continue
                    if reply.status_code in (200, 201) and reply.json().get("digest") == dig:
                        tally.segment_ms.append((time.perf_counter() - began) * 1000)
                        tally.acknowledged.add((sid, stream, seq))
                        previous[stream] = dig
                        break
                    tally.failures += 1
                    tally.kinds[f"segment {reply.status_code}"] += 1
                    await asyncio.sleep(rng.uniform(0.5, 2))
            seq += 1
            next_segment += segment_s
        events = [
            {"id": f"e{event_id + n}", "record": {"type": "bench.tick", "n": event_id + n}}
            for n in range(rng.randint(1, 6))
        ]
        event_id += len(events)
        began = time.perf_counter()
        tally.requests += 1
        try:
            reply = await http.post(
                f"{base}/api/v1/sessions/{sid}/events",
                json={"events": events, "heads": {}},
                headers=upload,
            )
            if reply.status_code == 200:
                tally.event_ms.append((time.perf_counter() - began) * 1000)
            else:
                tally.failures += 1
                tally.kinds[f"events {reply.status_code}"] += 1
        except httpx.HTTPError as exc:
            tally.failures += 1
            tally.kinds[type(exc).__name__] += 1
        await asyncio.sleep(min(EVENTS_EVERY_S, max(0.0, next_segment - time.monotonic())))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def drive(
    bases: list[str], links: list[str], seconds: float, segment_s: float, tally: Tally
) -> None:
    rng = random.Random(20)
    bodies = Bodies.make(segment_s / 30.0, rng)
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            candidate(
                bases[n % len(bases)],
                link,
                bodies,
                tally,
                until=until,
                segment_s=segment_s,
                rng=random.Random(n),
            )
            for n, link in enumerate(links)
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--segment-s", type=float, default=30.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--s3", action="store_true", help="objects in moto S3, not a folder")
    args = parser.parse_args()
    os.environ.setdefault("LOCKDOWN_DEV_PROCESS_SESSION", "bench")
    # a socket per candidate here and in the services (which inherit the limit)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    folder = Path(tempfile.mkdtemp(prefix="bench-service-"))
    pg = PostgresServer().start()
    moto = None
    services: list[ServiceProcess] = []
    try:
        bucket, endpoint = "", ""
        if args.s3:
            from tests.support.s3 import MotoServer

            moto = MotoServer(folder / "moto.log").start()
            bucket, endpoint = moto.new_bucket(), moto.endpoint
        storage = Storage(pg.new_database(), bucket, endpoint)
        data = folder / "data"
        for _ in range(args.processes):
            services.append(ServiceProcess(data, storage=storage).start())
        opened = Service.open(storage.settings(data))
        exam, _ = exams.create(
            opened,
            title="Bench",
            streams=list(SIZES),
            valid_from=time.time() - 60,
            valid_until=time.time() + 86400,
            service_url=services[0].url,
            exam_id="bench",
        )
        people = [exams.Candidate(f"u{n}", "A", f"C{n}") for n in range(args.candidates)]
        links = exams.add_candidates(opened, exam, people, services[0].url)
        procs = [psutil.Process(s.process.pid) for s in services if s.process is not None]
        cpu_before = [sum(p.cpu_times()[:2]) for p in procs]
        own_before = sum(psutil.Process().cpu_times()[:2])
        tally = Tally()
        began = time.monotonic()
        asyncio.run(drive([s.url for s in services], links, args.seconds, args.segment_s, tally))
        wall = time.monotonic() - began
        cpu = sum(sum(p.cpu_times()[:2]) for p in procs) - sum(cpu_before)
        own = sum(psutil.Process().cpu_times()[:2]) - own_before
        load = os.getloadavg()
        with opened.engine.connect() as conn:
            rows = conn.execute(
                select(
                    models.segments.c.session_id,
                    models.segments.c.stream,
                    models.segments.c.seq,
                    models.segments.c.object_key,
                )
            ).all()
            events = conn.scalar(select(func.count()).select_from(models.events))
        stored = {(r.session_id, r.stream, r.seq) for r in rows}
        objects = list(opened.objects.keys("segments"))
        lost = len(tally.acknowledged - stored)
        duplicated = (len(rows) - len(stored)) + (len(objects) - len(rows))
        segs = len(tally.segment_ms)
        print(
            f"candidates {args.candidates}, {args.seconds:.0f} s, segment {args.segment_s:.0f} s, "
            f"{args.processes} service processes on PostgreSQL "
            f"({'moto S3' if args.s3 else 'local folder'})"
        )
        print(
            f"segments acknowledged {segs} ({segs / wall:.1f}/s), events {events}, "
            f"requests {tally.requests} ({tally.requests / wall:.1f}/s), failures "
            f"{tally.failures} {dict(tally.kinds)} (each retried)"
        )
        print(
            f"segment ack latency p50 {percentile(tally.segment_ms, 0.5):.0f} ms, "
            f"p99 {percentile(tally.segment_ms, 0.99):.0f} ms; events p50 "
            f"{percentile(tally.event_ms, 0.5):.0f} ms, p99 "
            f"{percentile(tally.event_ms, 0.99):.0f} ms"
        )
        print(
            f"service CPU {cpu:.1f} s over {wall:.0f} s = {cpu / wall:.2f} cores; "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
            f"({os.cpu_count()} cores); the simulated candidates took {own / wall:.2f} cores"
        )
        print(f"lost {lost}, duplicated {duplicated}")
        if tally.segment_ms:
            print(f"mean segment ack {statistics.fmean(tally.segment_ms):.0f} ms")
        opened.close()
        return 0 if lost == 0 and duplicated == 0 else 1
    finally:
        for service in services:
            service.stop()
        if moto is not None:
            moto.stop()
        pg.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
