"""`lockdown environment` run as a real command: this VM, the Xvfb screen, a running app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import Detached, renamed_copy
from tests.support.xserver import Xvfb


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockdown.cli", "environment", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.x11
def test_environment_json_reports_this_vm_the_screen_and_a_running_app(
    xserver: Xvfb, tmp_path: Path, detached: Detached
) -> None:
    pid = detached.start(renamed_copy(tmp_path, "obs"), "30")
    done = run("--json", env={**os.environ, **xserver.env})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    machine = data["virtual_machine"]
    assert machine["virtual_machine"] is True
    assert "cpu_hypervisor_flag" in {r["signal"] for r in machine["reasons"]}
    assert any("no DMI tables" in n for n in machine["notes"])
    assert data["screens"]["available"] is True and data["screens"]["count"] == 1
    assert isinstance(data["remote_session"]["remote_session"], bool)
    running = [a for a in data["prohibited_apps_running"] if a["pid"] == pid]
    assert [a["app"] for a in running] == ["obs"]
    watcher = next(g for g in data["guards"] if g["name"] == "prohibited_apps")
    assert watcher["backend"] == "netlink-proc-connector" and watcher["availability"] == "full"


def test_environment_text_without_a_display_says_so() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = run(env=env)
    assert done.returncode == 0, done.stderr
    assert "Virtual machine: YES" in done.stdout
    assert "no X display (DISPLAY unset)" in done.stdout
