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

Part ``shared``: the shared-display guard on a private Xvfb + openbox, in a child
process with a full-screen kiosk window: each attack (``wmctrl -s 1``, ``wmctrl -t 1``,
``xdotool windowunmap``, minimise, full screen removed (alone, and with a resize and a
move), an
override-redirect window mapped over the exam) ``--repeats`` times; the time from the
attack to the kiosk being back (``guards.kiosk_restored``; for the override-redirect
window from its map to ``guards.window_above``) as p50/p95/max against the 200 ms aim.

Run: ``.venv/bin/python bench/bench_guards.py`` (watcher and idle; ``--part`` picks one).
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


# -- shared display: attack to undone ---------------------------------------------------

SHARED_ATTACKS = (
    "desktop_switch",
    "send_to_desktop",
    "unmap",
    "minimise",
    "fullscreen_off",
    "fullscreen_off_resize_move",
)

_COVER = r"""
import time
from Xlib import X, display
d = display.Display()
s = d.screen()
w = s.root.create_window(0, 0, 400, 300, 0, s.root_depth, X.InputOutput, X.CopyFromParent,
    background_pixel=s.black_pixel, override_redirect=True)
w.map()
d.sync()
print("mapped", time.monotonic(), flush=True)
time.sleep(3)
"""


def shared_child(repeats: int) -> int:
    """The child: a full-screen kiosk window and the shared-display guard; each attack
    ``repeats`` times; prints one JSON line per measurement."""
    from PySide6.QtWidgets import QApplication

    from lockdown.config.settings import Settings
    from lockdown.guards.shared_display import SharedDisplayGuard
    from lockdown.platform.linux import X11Platform
    from lockdown.ui.kiosk import KioskWindow

    app = QApplication(sys.argv[:1])
    app.setQuitOnLastWindowClosed(False)
    events: list[Event] = []
    window = KioskWindow(events.append)
    window.setGeometry(window.screen().geometry())
    window.showFullScreen()

    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    every = QEventLoop.ProcessEventsFlag.AllEvents

    def spin(seconds: float, until: Any = None) -> bool:
        # QEventLoop.processEvents(flags) returns a bool: in PySide6 6.12 each call of a
        # void Qt method (app.processEvents()) takes a reference from None
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            loop.processEvents(every)
            if until is not None and until():
                return True
            time.sleep(0.002)
        return False

    spin(2.0)  # mapped, full screen, Qt's own requests settled
    wid = str(int(window.winId()))
    platform = X11Platform()
    guard = SharedDisplayGuard(Settings.defaults(), window, platform)
    guard.start(events.append)
    spin(0.5)
    commands = {
        "desktop_switch": ["wmctrl", "-s", "1"],
        "send_to_desktop": ["wmctrl", "-i", "-r", wid, "-t", "1"],
        "unmap": ["xdotool", "windowunmap", wid],
        "minimise": ["xdotool", "windowminimize", wid],
        "fullscreen_off": ["wmctrl", "-i", "-r", wid, "-b", "remove,fullscreen"],
        "fullscreen_off_resize_move": [
            "sh",
            "-c",
            f"wmctrl -i -r {wid} -b remove,fullscreen; "
            f"xdotool windowsize {wid} 300 200 windowmove {wid} 50 50",
        ],
    }
    try:
        for attack in (*SHARED_ATTACKS, "override_redirect"):
            for _ in range(repeats):
                events.clear()
                if attack == "override_redirect":
                    cover = subprocess.Popen(
                        [sys.executable, "-c", _COVER], stdout=subprocess.PIPE, text=True
                    )
                    assert cover.stdout is not None
                    line = cover.stdout.readline()
                    while line and not line.startswith("mapped"):
                        line = cover.stdout.readline()
                    mapped = float(line.split()[1])
                    seen = spin(3.0, lambda: any(e.type == "guards.window_above" for e in events))
                    at = time.monotonic()
                    cover.kill()
                    cover.communicate()
                    if seen:
                        print(
                            json.dumps({"attack": attack, "ms": (at - mapped) * 1000}), flush=True
                        )
                    spin(0.3)
                    continue
                started = time.monotonic()
                proc = subprocess.Popen(
                    commands[attack], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                seen = spin(3.0, lambda: any(e.type == "guards.kiosk_restored" for e in events))
                at = time.monotonic()
                proc.wait(5)
                restored = next((e for e in events if e.type == "guards.kiosk_restored"), None)
                if seen and restored is not None:
                    print(
                        json.dumps(
                            {
                                "attack": attack,
                                "ms": (at - started) * 1000,
                                "guard_ms": restored.payload["ms"],
                            }
                        ),
                        flush=True,
                    )
                else:
                    print(json.dumps({"attack": attack, "missed": True}), flush=True)
                spin(0.4)  # let the window manager finish before the next attack
    finally:
        guard.stop()
        platform.close()
        window.allow_close()
        window.close()
    return 0


def bench_shared(repeats: int) -> None:
    from lockdown.ui.headless import Xvfb

    if not (shutil.which("openbox") and shutil.which("wmctrl") and shutil.which("xdotool")):
        print("shared display: needs openbox, wmctrl and xdotool (scripts/bootstrap.sh)")
        return
    xvfb = Xvfb().start()
    env = {**os.environ, **xvfb.env, "QT_QPA_PLATFORM": "xcb"}
    wm = subprocess.Popen(
        ["openbox", "--sm-disable", "--config-file", "/dev/null"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        done = subprocess.run(
            [sys.executable, __file__, "--shared-child", "--repeats", str(repeats)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        out = done.stdout
        if done.returncode != 0:
            tail = [
                ln
                for ln in done.stderr.splitlines()
                if "xauth" not in ln and "site-packages" not in ln
            ][-40:]
            print(f"the shared-display child ended with {done.returncode}:", *tail, sep="\n  ")
    finally:
        wm.terminate()
        wm.wait(10)
        xvfb.stop()
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    print(f"shared display on Xvfb + openbox, {repeats} attacks each; load average {load}")
    every: list[float] = []
    for attack in (*SHARED_ATTACKS, "override_redirect"):
        times = [r["ms"] for r in rows if r["attack"] == attack and "ms" in r]
        guard = [r["guard_ms"] for r in rows if r["attack"] == attack and "guard_ms" in r]
        missed = sum(1 for r in rows if r["attack"] == attack and r.get("missed"))
        if not times:
            print(f"  {attack:<27} no measurement (missed {missed})")
            continue
        every += times
        extra = f"; from the X event p95 {percentile(guard, 0.95):.0f} ms" if guard else ""
        print(
            f"  {attack:<27} p50 {statistics.median(times):.0f} ms, "
            f"p95 {percentile(times, 0.95):.0f} ms, max {max(times):.0f} ms{extra}; missed {missed}"
        )
    if every:
        within = sum(1 for t in every if t <= 200) / len(every) * 100
        print(
            f"  all {len(every)}: p50 {statistics.median(every):.0f} ms, "
            f"p95 {percentile(every, 0.95):.0f} ms, max {max(every):.0f} ms; "
            f"{within:.0f} % within the 200 ms aim"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["watcher", "idle", "shared", "both"], default="both")
    parser.add_argument("--repeats", type=int, default=20, help="attacks of each kind (shared)")
    parser.add_argument("--shared-child", action="store_true", help=argparse.SUPPRESS)
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
    if args.shared_child:
        return shared_child(args.repeats)
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
    if args.part == "shared":
        bench_shared(args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
