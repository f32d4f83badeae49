"""Kiosk start-up benchmark: `lockdown open` on the demo exam vs a bare QtWebEngine page.

For each of N rounds (same run, alternating), measures the wall time from process start
to the exam page (lockdown: the page loaded *and* shown behind every guard, its
``Start-up phase exam page shown`` log line; bare: ``loadFinished``) and the peak RSS
summed over the process tree (the browser's own process plus Chromium's helpers), with
and without recording (camera test pattern + screen). It prints the phase breakdown of
both (when each phase ended, in ms after the process started: lockdown's from its
``--json-logging`` phase lines, the bare page's from its own marks), the medians and
the ratios against the bare page of the same run, and the load average before and after.
It also reports the CPU time (user + system) of the process tree when the exam page was
reached: on a shared, loaded machine the wall time stretches with the load, the work
done much less.

Every guard stays on. Each process runs in a PID namespace of its own when this runs as
root and ``unshare`` exists (``--no-pid-namespace`` to turn it off): the prohibited-apps
check then sees only the processes of the run, not the ``ffmpeg x11grab`` of another
user of a shared machine, which would stop the start. Needs a display; without one it
starts its own Xvfb.

    .venv/bin/python bench/bench_kiosk.py [--rounds 5] [--recording both|on|off] [--isolation]
        [--timeline]

``--isolation`` adds a run per round on an X server of its own (the display helper
started directly: root and a development build with fake virtual terminals) and prints
its ratio to the shared display.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil

#: The bare page, with its own phase marks (seconds since the epoch) on stdout.
BARE = """\
import sys, time
def mark(name):
    print(f"PHASE {name} {time.time():.6f}", flush=True)
from PySide6.QtCore import QUrl
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QApplication
mark("imports")
app = QApplication(sys.argv[:1])
mark("qt application")
view = QWebEngineView()
mark("engine start")
def loaded(ok):
    mark("page load")
    print("Page loaded", flush=True)
view.loadFinished.connect(loaded)
view.load(QUrl(sys.argv[1]))
view.showFullScreen()
mark("window")
app.exec()
"""

#: What marks the exam page for each kind of run.
NEEDLE = {"bare": "Page loaded", "lockdown": "Start-up phase exam page shown done"}
PHASE_PREFIX = "Start-up phase "


@dataclass
class Run:
    seconds: float
    peak: int
    #: CPU seconds (user + system) of the process tree when the exam page was reached:
    #: the work done, which a loaded machine stretches less than the wall time
    cpu: float = 0.0
    #: phase -> seconds after the process started
    phases: dict[str, float] = field(default_factory=dict)
    #: (seconds after the start, message) of every log record up to the exam page
    timeline: list[tuple[float, str]] = field(default_factory=list)


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    except psutil.Error:
        pass
    return total


def tree_cpu(proc: psutil.Process) -> float:
    total = 0.0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = p.cpu_times()
                total += times.user + times.system
    except psutil.Error:
        pass
    return total


def _phase_of(line: str, start_wall: float) -> tuple[str, float] | None:
    """A phase mark of either kind of run, as (phase, seconds after the start)."""
    if line.startswith("PHASE "):
        _, rest = line.split(" ", 1)
        name, _, stamp = rest.strip().rpartition(" ")
        return name, float(stamp) - start_wall
    if PHASE_PREFIX not in line or not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    message = str(record.get("message", ""))
    if not message.startswith(PHASE_PREFIX):
        return None
    name = message[len(PHASE_PREFIX) :].removesuffix(" done")
    created = datetime.fromisoformat(str(record["created"])).timestamp()
    return name, created - start_wall


def _record_of(line: str, start_wall: float) -> tuple[float, str] | None:
    """A ``--json-logging`` record as (seconds after the start, message)."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
        created = datetime.fromisoformat(str(record["created"])).timestamp()
    except (ValueError, KeyError):
        return None
    return created - start_wall, f"{record.get('name', '')}: {record.get('message', '')}"


def measure(
    argv: Sequence[str], env: dict[str, str], needle: str, settle: float = 1.5, *, graceful: bool
) -> Run:
    """One run up to the exam page (``graceful``: ended by SIGTERM, else killed: the bare
    page has no handler, and the first process of a PID namespace ignores a SIGTERM
    without one)."""
    start_wall = time.time()
    start = time.monotonic()
    proc = subprocess.Popen(
        list(argv), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    cpu = 0.0
    loaded: list[float] = []
    phases: dict[str, float] = {}
    timeline: list[tuple[float, str]] = []
    tail: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            del tail[:-40]
            mark = _phase_of(line, start_wall)
            if mark is not None:
                phases.setdefault(*mark)
            record = _record_of(line, start_wall)
            if record is not None and not loaded:
                timeline.append(record)
            if needle in line and not loaded:
                loaded.append(time.monotonic() - start)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = start + 60
    while time.monotonic() < deadline:
        peak = max(peak, tree_rss(ps))
        if loaded and not cpu:
            cpu = tree_cpu(ps)
        if loaded and time.monotonic() - start > loaded[0] + settle:
            break
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    tree = [ps]
    with contextlib.suppress(psutil.Error):
        tree += ps.children(recursive=True)
    # `unshare --fork` does not pass SIGTERM on: the program under it is told directly
    for child in [ps, *(p for p in tree[1:] if _parent(p) == ps.pid)]:
        with contextlib.suppress(psutil.Error):
            child.terminate() if graceful else child.kill()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    # the next round starts once this one is gone (its keyboard grab, its sockets)
    _, alive = psutil.wait_procs(tree, timeout=20)
    for left in alive:
        with contextlib.suppress(psutil.Error):
            left.kill()
    reader.join(5)
    if not loaded:
        sys.stderr.write("".join(tail))
        raise SystemExit(f"{' '.join(argv[:6])}: never reached the exam page")
    return Run(loaded[0], peak, cpu, phases, timeline)


def _parent(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _namespace_prefix(wanted: bool) -> list[str]:
    unshare = shutil.which("unshare")
    if not wanted or unshare is None or os.geteuid() != 0:
        return []
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        return []
    # SIGTERM reaches the process inside (it reverts and exits; the namespace goes with it)
    return [unshare, "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"]


def _progress(round_: int, name: str, run: Run) -> None:
    print(
        f"  round {round_ + 1} {name}: {run.seconds:.2f} s, {run.peak / 2**20:.0f} MiB, "
        f"CPU {run.cpu:.2f} s "
        f"(load {_loadavg()})",
        file=sys.stderr,
        flush=True,
    )


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="ascii").split()[:3])
    except OSError:
        return "unknown"


def _report(results: dict[str, list[Run]], rounds: int) -> None:
    med = {
        name: (
            statistics.median(r.seconds for r in rows),
            statistics.median(r.peak for r in rows),
            statistics.median(r.cpu for r in rows),
        )
        for name, rows in results.items()
    }
    print(f"rounds: {rounds} (alternating, same run)")
    for name, rows in results.items():
        times = ", ".join(f"{r.seconds:.2f}" for r in rows)
        print(
            f"{name:15s} start->exam page median {med[name][0]:.2f} s [{times}]; "
            f"peak RSS (process tree) median {med[name][1] / 2**20:.0f} MiB; "
            f"CPU to the exam page median {med[name][2]:.2f} s"
        )
    print("phase breakdown (median ms after the process started, when each phase ended):")
    for name, rows in results.items():
        names: list[str] = []
        for row in rows:
            names += [n for n in row.phases if n not in names]
        cells = []
        for phase in sorted(names, key=lambda n: statistics.median(_at(rows, n))):
            cells.append(f"{phase} {statistics.median(_at(rows, phase)) * 1000:.0f}")
        print(f"  {name:15s} " + " | ".join(cells))
    for name in results:
        if name == "bare":
            continue
        print(
            f"ratio {name}/bare: time {med[name][0] / med['bare'][0]:.2f}, "
            f"peak RSS {med[name][1] / med['bare'][1]:.2f}, CPU {med[name][2] / med['bare'][2]:.2f}"
        )
    if "isolated" in med and "lockdown" in med:
        print(
            f"ratio isolated/shared: time {med['isolated'][0] / med['lockdown'][0]:.2f}, "
            f"peak RSS {med['isolated'][1] / med['lockdown'][1]:.2f} "
            "(the isolated run's tree includes the helper and its Xorg)"
        )


def _timeline(results: dict[str, list[Run]]) -> None:
    """Every log record of each kind's last run up to the exam page, with its time."""
    for name, rows in results.items():
        if name == "bare" or not rows:
            continue
        print(f"timeline of the last {name} run (ms after the process started):")
        for at, message in rows[-1].timeline:
            print(f"  {at * 1000:6.0f}  {message[:150]}")


def _at(rows: list[Run], phase: str) -> list[float]:
    return [r.phases[phase] for r in rows if phase in r.phases]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--recording",
        choices=("both", "on", "off"),
        default="both",
        help="measure lockdown with recording (camera pattern + screen), without, or both",
    )
    parser.add_argument(
        "--isolation",
        action="store_true",
        help="also start the exam on an X server of its own (root, development build: the "
        "display helper started directly, fake virtual terminals)",
    )
    parser.add_argument(
        "--no-pid-namespace",
        action="store_true",
        help="run every process in the machine's own PID namespace",
    )
    parser.add_argument(
        "--timeline",
        action="store_true",
        help="print every log record of each kind's last run up to the exam page, timed",
    )
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    # an installed build (a wheel, the bundle) starts from compiled bytecode; a checkout
    # under PYTHONDONTWRITEBYTECODE would compile every module at every start instead
    compileall.compile_dir(root / "lockdown", quiet=1)
    from lockdown.ui.demo import DemoSite
    from lockdown.ui.headless import Xvfb, has_display
    from lockdown.upload import crypto

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    xvfb = None
    if not has_display():
        xvfb = Xvfb().start()
        env.update(xvfb.env)
    env["QT_QPA_PLATFORM"] = "xcb"
    if os.geteuid() == 0:
        env.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    prefix = _namespace_prefix(not args.no_pid_namespace)
    site = DemoSite().start()
    work = Path(tempfile.mkdtemp(prefix="bench-kiosk-"))
    bare = work / "bare.py"
    bare.write_text(BARE, encoding="utf-8")
    _, _, recipient = crypto.generate_recipient(work / "recipient")
    org = work / "org.toml"
    # the bench machine may be a virtual machine: measure the exam, not the refusal
    org.write_text(
        "[settings]\nconfig.allow_unsigned = true\n"
        'guards.virtual_machine = "allow"\nguards.remote_session = "allow"\n'
        f'proctoring.recipient_key = "{recipient}"\n'
        # the check screen before a proctored exam waits for a candidate: measured apart
        "checks.before_exam = false\n",
        encoding="utf-8",
    )
    isolated_org = work / "org-isolated.toml"
    isolated_org.write_text(
        org.read_text(encoding="utf-8") + 'guards.display_isolation = "required"\n',
        encoding="utf-8",
    )
    with org.open("a", encoding="utf-8") as fh:
        fh.write('guards.display_isolation = "off"\n')
    exams: dict[str, Path] = {}
    if args.recording in ("both", "off"):
        exams["lockdown"] = work / "exam.toml"
        exams["lockdown"].write_text(
            f'format = 1\n[browser]\nstart_url = "{site.exam_url}/"\n', encoding="utf-8"
        )
    if args.recording in ("both", "on"):
        exams["lockdown+rec"] = work / "exam-rec.toml"
        exams["lockdown+rec"].write_text(
            f'format = 1\n[browser]\nstart_url = "{site.exam_url}/"\n'
            '[proctoring]\ncamera = true\ncamera_source = "pattern"\nscreen = true\n'
            'segment_length = "10s"\n',
            encoding="utf-8",
        )
    if args.isolation:
        exams["isolated"] = work / "exam-isolated.toml"
        exams["isolated"].write_text(
            f'format = 1\n[browser]\nstart_url = "{site.exam_url}/"\n', encoding="utf-8"
        )
    results: dict[str, list[Run]] = {name: [] for name in exams} | {"bare": []}
    print(
        f"pid namespace: {'yes' if prefix else 'no'}; display {env.get('DISPLAY')}; "
        f"load average before: {_loadavg()}"
    )
    try:
        for round_ in range(args.rounds):
            for name, exam in exams.items():
                env_l = {
                    **env,
                    "LOCKDOWN_INSTANCE_NAME": f"bench-{os.getpid()}-{round_}-{name}",
                    "TMPDIR": str(work),  # the --temp-basedir folders go with the run
                }
                if name == "isolated":
                    env_l |= {"LOCKDOWN_DEV_DISPLAY_HELPER": "1", "LOCKDOWN_DEV_FAKE_VT": "1"}
                argv = [
                    *prefix,
                    sys.executable,
                    "-m",
                    "lockdown.cli",
                    "--json-logging",
                    "--temp-basedir",
                    "--organisation",
                    str(isolated_org if name == "isolated" else org),
                    "open",
                    str(exam),
                ]
                results[name].append(measure(argv, env_l, NEEDLE["lockdown"], graceful=True))
                _progress(round_, name, results[name][-1])
            results["bare"].append(
                measure(
                    [*prefix, sys.executable, str(bare), site.exam_url + "/"],
                    env,
                    NEEDLE["bare"],
                    graceful=False,
                )
            )
            _progress(round_, "bare", results["bare"][-1])
    finally:
        site.stop()
        if xvfb is not None:
            xvfb.stop()
        shutil.rmtree(work, ignore_errors=True)
    _report(results, args.rounds)
    if args.timeline:
        _timeline(results)
    print(f"load average after: {_loadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
