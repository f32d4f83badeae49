"""`lockdown environment` run as a real command: this VM, the Xvfb screen, a running app,
and the verdict of the organisation's policy on this machine (its exit code)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lockdown import __version__
from tests.support.processes import Detached, renamed_copy
from tests.support.xserver import Xvfb


def organisation(tmp_path: Path, vm_policy: str) -> Path:
    path = tmp_path / f"organisation-{vm_policy}.toml"
    path.write_text(f'[settings.guards]\nvirtual_machine = "{vm_policy}"\n', encoding="utf-8")
    return path


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
    allow = organisation(tmp_path, "allow")
    done = run("--json", "--organisation", str(allow), env={**os.environ, **xserver.env})
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert data["version"] == __version__ and data["build"]["version"] == __version__
    assert abs(datetime.fromisoformat(data["time"]) - datetime.now(UTC)) < timedelta(minutes=1)
    assert data["os"] == "linux" and data["os_details"]["system"] == "Linux"
    assert data["organisation"] == str(allow)
    assert data["policy"] == {"exam_can_start": True, "refusals": []}
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


def test_environment_text_without_a_display_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    done = run("--organisation", str(organisation(tmp_path, "allow")), env=env)
    assert done.returncode == 0, done.stderr
    assert "Virtual machine: YES" in done.stdout
    assert "no X display (DISPLAY unset)" in done.stdout
    assert done.stdout.startswith(f"Lockdown {__version__} environment (linux: Linux ")
    assert "Verdict: the organisation's policy lets an exam start here" in done.stdout


@pytest.mark.parametrize("placement", ["after", "before"])
def test_a_policy_that_refuses_this_vm_exits_1_and_says_why(tmp_path: Path, placement: str) -> None:
    # This machine is a virtual machine (PLATFORM.md); the same run under "allow" above
    # exits 0, so the exit code follows the organisation's policy, not the machine alone.
    deny = ["--organisation", str(organisation(tmp_path, "deny"))]
    args = [*deny, "--json"] if placement == "after" else ["--json"]
    command = [sys.executable, "-m", "lockdown.cli"]
    command += ["environment", *args] if placement == "after" else [*deny, "environment", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["virtual_machine"]["virtual_machine"] is True
    assert data["ok"] is False
    assert data["policy"] == {
        "exam_can_start": False,
        "refusals": ["a virtual machine (guards.virtual_machine = deny)"],
    }


def test_a_missing_organisation_file_is_one_line_and_json(tmp_path: Path) -> None:
    done = run("--json", "--organisation", str(tmp_path / "nope.toml"), env=dict(os.environ))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert json.loads(done.stdout) == {
        "ok": False,
        "error": f"{tmp_path / 'nope.toml'}: organisation file not found; check the path",
        "exit_code": 2,
    }
    assert done.stderr.strip().splitlines() == [
        f"lockdown: {tmp_path / 'nope.toml'}: organisation file not found; check the path"
    ]
