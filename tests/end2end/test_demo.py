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

pytestmark = [pytest.mark.webengine, pytest.mark.slow]


def test_the_demo_records_and_its_printed_export_command_gives_playable_files(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
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
    assert argv[:3] == ["lockdown", "spool", "export"]
    # the key that opens it is the demo's own, in its own folder
    assert Path(argv[argv.index("--key") + 1]).parent == folder
    done = subprocess.run(
        [sys.executable, "-m", "lockdown", *argv[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = Path(argv[argv.index("--out") + 1])
    summary = json.loads((out / "recording.json").read_text())
    assert summary["verified"] is True
    assert set(summary["streams"]) == {"camera", "screen"}  # what the demo records
    for entry in summary["streams"].values():
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
        assert int(frames) == sum(s["units"] for s in entry["segments"])
