"""Guards benchmark: process-watcher detection latency, and the CPU of all guards idle.

Part ``watcher``: for each backend (the netlink process connector and the /proc polling fallback) it
launches ``--launches`` copies of /bin/sleep renamed ``obs``, detached from this process
(double fork, as a candidate would start an app), and measures the time from just before
``exec`` to the ``guards.prohibited_app`` event (p50/p95/max; under the close policy that
event follows the SIGSTOP, so it bounds the time a capture tool runs before it is
frozen). The watcher is scoped to the bench's own launches (the test support's fake
login session), so it never touches another program's process. Then it leaves the watcher
idle for ``--idle-seconds`` and reports the CPU this process used (user+system) as a
percentage of one core.

Part ``idle``: the guards as the session starts them, in a child process of their own on
a full-screen window of a private Xvfb (with openbox when installed): the desktop guards
(:func:`lockdown.guards.desktop.build_desktop_guards` + ``DesktopGuardsOperation``) and
the system guards (``SystemGuardsOperation`` with the VM and remote-session policies set
to allow, ``prohibited_apps`` set to ask so the bench never kills another program's
process, and a prompt that accepts). Each guard set — none (the baseline: the Qt
application and its window alone), desktop, system, all — runs in a fresh child, left
idle for ``--idle-seconds``; the child's CPU (user+system of its threads, read from
outside with psutil, i.e. /proc/PID/stat) is reported as % of one core, and the guards'
own cost is the difference from the baseline.

Run: ``.venv/bin/python bench/bench_guards.py`` (both parts; ``--part`` picks one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lockdown.events import Event
from lockdown.guards.appslist import AppList
from lockdown.guards.processes import EVENT_DETECTED, ProcessWatcherGuard, choose_exec_source
from tests.support.processes import TEST_SCOPE, launch_detached, renamed_copy


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
        scope=TEST_SCOPE,  # only the bench's own launches, never another program's
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


# -- all guards idle ----------------------------------------------------------------------

GUARD_SETS = ("none", "desktop", "system", "all")


def guards_child(which: str, restore_dir: Path) -> int:
    """The child: a full-screen window, the guard set ``which`` started, then idle.

    Prints ``ready <json>`` once the guards run, waits for a line on stdin (read through
    a QSocketNotifier: no polling of its own), reverts the guards and prints
    ``done <json>`` with the journal's event counts.
    """
    from PySide6.QtCore import QSocketNotifier, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    from lockdown.config.settings import Organisation, flatten, layer
    from lockdown.guards.desktop import DesktopGuardsOperation, build_desktop_guards
    from lockdown.guards.policy import (
        PrecheckFindings,
        ProhibitedAppsPrecheck,
        SystemGuardsOperation,
    )
    from lockdown.guards.restore import RestoreLog
    from lockdown.lifecycle.base import Outcome
    from lockdown.platform.factory import desktop_platform

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    settings = layer(
        Organisation(),
        flatten(
            {
                "guards": {
                    "virtual_machine": "allow",
                    "remote_session": "allow",
                    # journal only: the bench must not kill other programs' processes
                    # (closing costs nothing while idle; the watcher part measures it)
                    "prohibited_apps": "ask",
                }
            },
            origin="bench",
        ),
    )
    journal: Counter[str] = Counter()

    def sink(event: Event) -> None:
        journal[event.type] += 1

    def accept(check: ProhibitedAppsPrecheck, findings: PrecheckFindings) -> bool:
        return True

    window = QWidget()
    window.setWindowTitle("Lockdown bench")
    window.showFullScreen()
    deadline = time.monotonic() + 10
    handle = window.windowHandle()
    while time.monotonic() < deadline and not (handle is not None and handle.isExposed()):
        app.processEvents()
        time.sleep(0.01)
        handle = window.windowHandle()
    window.activateWindow()
    window.raise_()
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    restore = RestoreLog(restore_dir)
    operations: list[Any] = []
    if which in ("system", "all"):
        operations.append(SystemGuardsOperation(settings, sink, prompt=accept, restore=restore))
    if which in ("desktop", "all"):
        platform = desktop_platform()
        guards = build_desktop_guards(settings, window, platform, restore)
        operations.append(DesktopGuardsOperation(settings, guards, sink))
    for op in operations:
        outcome = op.perform()
        if outcome is not Outcome.SUCCESS:
            print(f"failed {op.name}: {outcome.value} {getattr(op, 'message', '')}", flush=True)
            return 1
    print("ready " + json.dumps(dict(journal)), flush=True)

    def finish() -> None:
        notifier.setEnabled(False)
        for op in reversed(operations):
            op.revert()
        print("done " + json.dumps(dict(journal)), flush=True)
        app.quit()

    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Type.Read)
    notifier.activated.connect(lambda *_: QTimer.singleShot(0, finish))
    app.exec()
    window.close()
    return 0


def _cpu_seconds(proc: psutil.Process) -> float:
    times = proc.cpu_times()  # its own threads only, not its children
    return float(times.user + times.system)


def idle_run(which: str, idle: float, env: dict[str, str], settle: float) -> dict[str, Any]:
    """One child with the guard set ``which``: its CPU over ``idle`` seconds."""
    restore_dir = Path(tempfile.mkdtemp(prefix="bench-guards-restore-"))
    child = subprocess.Popen(
        [sys.executable, __file__, "--child", which, "--restore", str(restore_dir)],
        env={**os.environ, **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        line = child.stdout.readline()
        while line and not line.startswith(("ready ", "failed ")):  # python-xlib may chat
            line = child.stdout.readline()
        if not line.startswith("ready "):
            raise RuntimeError(f"the {which} child did not start: {line.strip()!r}")
        started = json.loads(line.split(" ", 1)[1])
        time.sleep(settle)  # let start-up work (threads, first scans) finish
        proc = psutil.Process(child.pid)
        before, t0 = _cpu_seconds(proc), time.monotonic()
        load0 = os.getloadavg()
        time.sleep(idle)
        after, t1 = _cpu_seconds(proc), time.monotonic()
        threads = proc.num_threads()
        child.stdin.write("quit\n")
        child.stdin.flush()
        done_line = child.stdout.readline()
        while done_line and not done_line.startswith("done "):
            done_line = child.stdout.readline()
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        shutil.rmtree(restore_dir, ignore_errors=True)
    done = json.loads(done_line.split(" ", 1)[1]) if done_line.startswith("done ") else {}
    return {
        "set": which,
        "cpu": (after - before) / (t1 - t0) * 100,
        "seconds": t1 - t0,
        "threads": threads,
        "load": load0,
        "started": started,
        "journal": done,
    }


def bench_idle(idle: float, sets: list[str], settle: float) -> None:
    from lockdown.ui.headless import Xvfb

    xvfb = Xvfb().start()
    wm: subprocess.Popen[bytes] | None = None
    try:
        if shutil.which("openbox"):
            wm = subprocess.Popen(
                ["openbox"],
                env={**os.environ, **xvfb.env},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1.0)  # openbox takes the WM selection; nothing to wait on cheaply
        print(
            f"all guards idle: one child per guard set on Xvfb {xvfb.display}"
            f"{' with openbox' if wm else ' (no window manager)'}, {idle:.0f} s each",
            flush=True,
        )
        results = [idle_run(which, idle, xvfb.env, settle) for which in sets]
    finally:
        if wm is not None:
            wm.terminate()
            wm.wait(10)
        xvfb.stop()
    base = next((r["cpu"] for r in results if r["set"] == "none"), None)
    for r in results:
        extra = "" if base is None or r["set"] == "none" else f" (guards: {r['cpu'] - base:+.3f})"
        load = " ".join(f"{x:.2f}" for x in r["load"])
        print(
            f"  {r['set']:<8} {r['cpu']:.3f} % of one core over {r['seconds']:.0f} s{extra}; "
            f"{r['threads']} threads; load average at the start {load}"
        )
        started = sorted(k for k in r["started"] if k.startswith("guards."))
        if started:
            counts = ", ".join(f"{k} x{r['started'][k]}" for k in started)
            print(f"           journal at start: {counts}")
        during = {k: v - r["started"].get(k, 0) for k, v in r["journal"].items()}
        during = {k: v for k, v in during.items() if v and k != "guards.stopped"}
        if during:
            print(f"           journalled while idle / at the end: {during}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["watcher", "idle", "both"], default="both")
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--settle-seconds", type=float, default=5.0)
    parser.add_argument("--backend", choices=["netlink", "poll", "both"], default="both")
    parser.add_argument("--sets", default=",".join(GUARD_SETS), help="guard sets, comma-separated")
    parser.add_argument("--child", choices=GUARD_SETS, help=argparse.SUPPRESS)
    parser.add_argument("--restore", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("lockdown").setLevel(logging.ERROR)
    if args.child:
        return guards_child(args.child, args.restore)
    print(f"{os.cpu_count()} cores; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.part in ("watcher", "both"):
        folder = Path(tempfile.mkdtemp(prefix="bench-guards-"))
        program = renamed_copy(folder, "obs")
        print("process watcher: launches of a renamed /bin/sleep ('obs'), detached")
        try:
            if args.backend in ("netlink", "both"):
                bench(True, args.launches, args.idle_seconds, program)
            if args.backend in ("poll", "both"):
                bench(False, args.launches, args.idle_seconds, program)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.part in ("idle", "both"):
        sets = [s for s in args.sets.split(",") if s]
        unknown = set(sets) - set(GUARD_SETS)
        if unknown:
            parser.error(f"unknown guard sets {sorted(unknown)}; choose from {GUARD_SETS}")
        bench_idle(args.idle_seconds, sets, args.settle_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
