"""Kiosk start-up benchmark: `lockdown open` on the demo exam vs a bare QtWebEngine page.

For each of N rounds (same run, alternating), measures the wall time from process start
to the exam page's loadFinished and the peak RSS summed over the process tree (the
browser's own process plus Chromium's helpers), then prints medians and the ratios
lockdown / bare. Needs a display; without one it starts its own Xvfb.

``--isolation`` adds a third run per round: `lockdown open` on an X server of its own
(the display helper started directly, which needs root and a development build: the
fake virtual terminals of ``LOCKDOWN_DEV_FAKE_VT``) and prints its ratio to the shared
display; the peak RSS then includes the helper and the Xorg server.

    .venv/bin/python bench/bench_kiosk.py [--rounds 5] [--isolation]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

BARE = """\
import sys
from PySide6.QtCore import QUrl
from PySide6.QtWebEngineWidgets import QWebEngineView
from PySide6.QtWidgets import QApplication
app = QApplication(sys.argv[:1])
view = QWebEngineView()
view.loadFinished.connect(lambda ok: print("Page loaded", flush=True))
view.load(QUrl(sys.argv[1]))
view.showFullScreen()
app.exec()
"""


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
    except psutil.Error:
        pass
    return total


def measure(
    argv: list[str], env: dict[str, str], needle: str, settle: float = 1.5
) -> tuple[float, int]:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    loaded: list[float] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if needle in line and not loaded:
                loaded.append(time.monotonic() - start)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = start + 60
    while time.monotonic() < deadline:
        peak = max(peak, tree_rss(ps))
        if loaded and time.monotonic() - start > loaded[0] + settle:
            break
        time.sleep(0.05)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    reader.join(5)
    if not loaded:
        raise SystemExit(f"{argv[:4]}: never reached loadFinished")
    return loaded[0], peak


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--isolation",
        action="store_true",
        help="also start the exam on an X server of its own (root, development build)",
    )
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from lockdown.ui.demo import DemoSite
    from lockdown.ui.headless import Xvfb, has_display

    env = dict(os.environ)
    xvfb = None
    if not has_display():
        xvfb = Xvfb().start()
        env.update(xvfb.env)
    env["QT_QPA_PLATFORM"] = "xcb"
    if os.geteuid() == 0:
        env.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    site = DemoSite().start()
    work = Path(tempfile.mkdtemp(prefix="bench-kiosk-"))
    bare = work / "bare.py"
    bare.write_text(BARE, encoding="utf-8")
    org = work / "org.toml"
    # the bench machine may be a virtual machine: measure the exam, not the refusal
    org.write_text(
        "[settings]\nconfig.allow_unsigned = true\n"
        'guards.virtual_machine = "allow"\nguards.remote_session = "allow"\n',
        encoding="utf-8",
    )
    isolated_org = work / "org-isolated.toml"
    isolated_org.write_text(
        org.read_text(encoding="utf-8") + 'guards.display_isolation = "required"\n',
        encoding="utf-8",
    )
    with org.open("a", encoding="utf-8") as fh:
        fh.write('guards.display_isolation = "off"\n')
    exam = work / "exam.toml"
    exam.write_text(f'format = 1\n[browser]\nstart_url = "{site.exam_url}/"\n', encoding="utf-8")
    results: dict[str, list[tuple[float, int]]] = {"lockdown": [], "bare": []}
    if args.isolation:
        results["isolated"] = []

    def open_argv(organisation: Path) -> list[str]:
        return [
            sys.executable,
            "-m",
            "lockdown.cli",
            "--temp-basedir",
            "--organisation",
            str(organisation),
            "open",
            str(exam),
        ]

    try:
        for round_ in range(args.rounds):
            env_l = {**env, "LOCKDOWN_INSTANCE_NAME": f"bench-{os.getpid()}-{round_}"}
            results["lockdown"].append(measure(open_argv(org), env_l, "Page loaded"))
            if args.isolation:
                env_i = {
                    **env_l,
                    "LOCKDOWN_DEV_DISPLAY_HELPER": "1",
                    "LOCKDOWN_DEV_FAKE_VT": "1",
                }
                results["isolated"].append(measure(open_argv(isolated_org), env_i, "Page loaded"))
            results["bare"].append(
                measure([sys.executable, str(bare), site.exam_url + "/"], env, "Page loaded")
            )
    finally:
        site.stop()
        if xvfb is not None:
            xvfb.stop()
    med = {
        name: (statistics.median(t for t, _ in rows), statistics.median(r for _, r in rows))
        for name, rows in results.items()
    }
    print(f"rounds: {args.rounds} (alternating, same run)")
    for name, rows in results.items():
        times = ", ".join(f"{t:.2f}" for t, _ in rows)
        print(
            f"{name:9s} start->loadFinished median {med[name][0]:.2f} s [{times}]; "
            f"peak RSS (process tree) median {med[name][1] / 2**20:.0f} MiB"
        )
    print(f"ratio time lockdown/bare: {med['lockdown'][0] / med['bare'][0]:.2f}")
    print(f"ratio peak RSS lockdown/bare: {med['lockdown'][1] / med['bare'][1]:.2f}")
    if "isolated" in med:
        print(
            "ratio time isolated/shared: "
            f"{med['isolated'][0] / med['lockdown'][0]:.2f} "
            f"(+{med['isolated'][0] - med['lockdown'][0]:.2f} s)"
        )
        print(f"ratio peak RSS isolated/shared: {med['isolated'][1] / med['lockdown'][1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
