"""Process-watcher benchmark: detection latency over many launches, CPU while idle.

For each backend (the netlink process connector and the /proc polling fallback) it
launches ``--launches`` copies of /bin/sleep renamed ``obs``, detached from this process
(double fork, as a candidate would start an app), and measures the time from just before
``exec`` to the ``guards.prohibited_app`` event (p50/p95/max). Then it leaves the watcher
idle for ``--idle-seconds`` and reports the CPU this process used (user+system) as a
percentage of one core. Run: ``.venv/bin/python bench/bench_guards.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lockdown.events import Event
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import EVENT_DETECTED, ProcessWatcherGuard, choose_exec_source
from tests.support.processes import launch_detached, renamed_copy


class Times:
    def __init__(self) -> None:
        self.seen: dict[int, float] = {}
        self.cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        if event.type == EVENT_DETECTED:
            with self.cond:
                self.seen[int(event.payload["pid"])] = time.monotonic()
                self.cond.notify_all()

    def wait(self, pid: int, timeout: float = 5.0) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: pid in self.seen, timeout)
            return self.seen.get(pid)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def bench(netlink: bool, launches: int, idle: float, program: Path) -> None:
    apps = AppList.load(os_name="linux").restricted_to(["obs"])
    times = Times()
    guard = ProcessWatcherGuard(
        apps,
        terminate=True,
        grace=1.0,
        rate_interval=0.0,
        source_factory=lambda: choose_exec_source(allow_netlink=netlink),
    )
    guard.start(times)
    latencies: list[float] = []
    missed = 0
    try:
        for _ in range(launches):
            pid, t_exec = launch_detached(program, "30")
            seen = times.wait(pid)
            if seen is None:
                missed += 1
            else:
                latencies.append((seen - t_exec) * 1000)
        time.sleep(1.5)  # let the last terminations finish before measuring idle CPU
        me = psutil.Process()
        before, t0 = me.cpu_times(), time.monotonic()
        time.sleep(idle)
        after, t1 = me.cpu_times(), time.monotonic()
        cpu = (after.user - before.user + after.system - before.system) / (t1 - t0) * 100
    finally:
        guard.stop()
    print(f"backend {guard.backend or ('netlink' if netlink else 'poll')}:")
    if latencies:
        print(
            f"  detection latency over {len(latencies)} launches: "
            f"p50 {statistics.median(latencies):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms, "
            f"max {max(latencies):.1f} ms; missed {missed}"
        )
    print(f"  idle CPU over {idle:.0f} s: {cpu:.3f} % of one core")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--backend", choices=["netlink", "poll", "both"], default="both")
    args = parser.parse_args()
    logging.getLogger("lockdown").setLevel(logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="bench-guards-"))
    program = renamed_copy(folder, "obs")
    print(f"{os.cpu_count()} cores; launches of a renamed /bin/sleep ('obs'), detached")
    try:
        if args.backend in ("netlink", "both"):
            bench(True, args.launches, args.idle_seconds, program)
        if args.backend in ("poll", "both"):
            bench(False, args.launches, args.idle_seconds, program)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
