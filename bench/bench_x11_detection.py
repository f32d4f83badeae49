"""Benchmark: what the X11 screen-capture watch costs and how fast it names a capture tool.

Starts its own Xvfb, runs the X RECORD watch (``lockdown.guards.capture_watch``) in this
process, and prints

* the watch's CPU while the display is idle (``--idle`` seconds, default 20), from this
  process's rusage, as a percentage of one core;
* its CPU while ``ffmpeg -f x11grab`` reads the screen 30 times a second (every request
  passes through the watch), per second and per request;
* for ``xwd -root``, ``ffmpeg -f x11grab`` and a Python ``mss`` script (each started
  outside our process tree, under a name no list knows): the time from just before
  ``exec`` to the journal record, and from reading the request to the record (``ms``).

Run: ``.venv/bin/python bench/bench_x11_detection.py [--idle 20] [--runs 5]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MSS_SCRIPT = "import mss\nwith mss.MSS() as s:\n    s.grab(s.monitors[0])\n"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from lockdown.config.settings import Settings
    from lockdown.guards.capture_watch import ScreenCaptureWatchGuard
    from lockdown.platform.linux import X11Platform
    from tests.support.processes import launch_detached, renamed_copy
    from tests.support.xserver import Xvfb

    x = Xvfb().start()
    os.environ.update(x.env)
    folder = Path(tempfile.mkdtemp(prefix="bench-x11-"))
    platform = X11Platform()
    records: list[dict[str, object]] = []
    guard = ScreenCaptureWatchGuard(Settings.defaults(), platform)
    try:
        guard.start(lambda event: records.append(dict(event.payload)))
        time.sleep(1.0)
        cpu, wall = _cpu(), time.monotonic()
        time.sleep(args.idle)
        idle = (_cpu() - cpu) / (time.monotonic() - wall) * 100
        print(f"idle: {idle:.3f} % of one core over {args.idle:.0f} s")

        ffmpeg = shutil.which("ffmpeg") or "ffmpeg"
        cpu, wall = _cpu(), time.monotonic()
        subprocess.run(
            [
                ffmpeg,
                "-loglevel",
                "error",
                "-f",
                "x11grab",
                "-framerate",
                "30",
                "-i",
                x.display,
                "-t",
                "10",
                "-f",
                "null",
                "-",
            ],
            env={**os.environ, **x.env},
            check=True,
            timeout=60,
        )
        spent, took = _cpu() - cpu, time.monotonic() - wall
        print(
            f"ffmpeg x11grab 30 fps for 10 s: {spent / took * 100:.2f} % of one core "
            f"({spent / (30 * took) * 1e6:.0f} us per request)"
        )

        tools = {
            "xwd -root": (
                renamed_copy(folder, "tool-a", shutil.which("xwd") or "xwd"),
                ("-root", "-silent", "-out", str(folder / "shot.xwd")),
            ),
            "ffmpeg -f x11grab": (
                renamed_copy(folder, "tool-b", ffmpeg),
                (
                    "-loglevel",
                    "error",
                    "-y",
                    "-f",
                    "x11grab",
                    "-i",
                    x.display,
                    "-frames:v",
                    "1",
                    "-update",
                    "1",
                    str(folder / "f.png"),
                ),
            ),
            "mss script": (Path(sys.executable), ("-c", MSS_SCRIPT)),
        }
        for name, (program, argv) in tools.items():
            from_exec: list[float] = []
            handled: list[float] = []
            for _ in range(args.runs):
                pid, before = launch_detached(program, *argv)
                deadline = time.monotonic() + 10
                found = None
                while found is None and time.monotonic() < deadline:
                    found = next(
                        ((at, p) for at, p in list(guard.detected) if p.get("pid") == pid), None
                    )
                    time.sleep(0.002)
                if found is None:
                    print(f"{name}: pid {pid} not seen within 10 s; seen: {guard.detected[-3:]}")
                    continue
                from_exec.append((found[0] - before) * 1000)
                handled.append(float(str(found[1]["ms"])))
                time.sleep(0.3)
            if from_exec:
                print(
                    f"{name}: from exec {statistics.median(from_exec):.0f} ms median "
                    f"(min {min(from_exec):.0f}, max {max(from_exec):.0f}); request to record "
                    f"{statistics.median(handled):.1f} ms median, n={len(from_exec)}"
                )
    finally:
        guard.stop()
        platform.close()
        x.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
