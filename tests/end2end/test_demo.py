"""What `make demo` promises: the demo exam runs headless, records, and prints the one
command that turns its recording into files a reviewer can watch — run here as printed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import REPO

pytestmark = [pytest.mark.webengine, pytest.mark.slow]


def test_the_demo_is_proctored_through_its_service_and_the_printed_export_plays(
    tmp_path: Path,
) -> None:
    """What `env -u DISPLAY make demo` runs: the embedded service, the demo exam made at it
    and opened from a candidate's link, every segment sent before the kiosk unlocks; then
    the printed `lockdown-server export` gives WebM files ffprobe reads."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(REPO)
    folder = tmp_path / "demo"
    demo = subprocess.run(
        [sys.executable, "-m", "lockdown", "--temp-basedir", "demo", "--screenshots", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert demo.returncode == 0, demo.stderr[-2000:]
    commands = [line for line in demo.stdout.splitlines() if line.startswith("Watch it: ")]
    assert len(commands) == 1, demo.stdout  # its own recording, not every one on the machine
    argv = shlex.split(commands[0].removeprefix("Watch it: "))
    assert argv[:2] == ["lockdown-server", "export"]
    data = Path(argv[argv.index("--data") + 1])
    assert data.parent == folder  # the service's data is the demo's own
    # the recording went while the exam was still locked: drained, closed, nothing left
    assert "Drain: 0 segment(s), 0 record(s) left" in demo.stderr
    done = subprocess.run(
        [sys.executable, "-m", "lockdown_server", *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = Path(argv[argv.index("--out") + 1])
    summary = json.loads((out / "export.json").read_text())
    assert summary["verified"] is True and summary["closed"] is True, summary["problems"]
    assert (summary["exam"], summary["candidate"]) == ("demo", "demo-candidate")
    assert set(summary["streams"]) == {"camera", "screen"}  # what the demo records
    for entry in summary["streams"].values():
        assert entry["segments"]
        frames = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-count_frames",
                "-select_streams",
                "v:0",
                "-show_entries",
                "stream=nb_read_frames",
                "-of",
                "csv=p=0",
                str(out / entry["file"]),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
        assert int(frames) == entry["packets"] > 0
