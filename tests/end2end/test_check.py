"""The real ``lockdown check`` process: without a display and with one, text and JSON,
for an exam whose service takes the upload and keeps the report (``--send``), a refused
upload, a full disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lockdown.texts import text
from tests.support import disk, probeservice
from tests.support.httpserver import LocalServer
from tests.support.xserver import Xvfb

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "docs" / "check-report.schema.json").read_text(encoding="utf-8"))
TITLES = [
    "App and system",
    "Proctoring service",
    "Clock",
    "Screens",
    "Virtual machine",
    "Remote access",
    "Lockdown of the desktop",
    "Prohibited applications",
    "Free disk space",
    "Screen capture",
    "Upload test",
    "Bandwidth",
]


def validate(doc: object) -> None:
    jsonschema.Draft202012Validator(
        SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(doc)


def check(
    tmp_path: Path, *argv: str, x: Xvfb | None = None, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    dropped = ("DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "QT_QPA_PLATFORM")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(PYTHONPATH=str(ROOT), LOCKDOWN_ORGANISATION_FILE=str(tmp_path / "organisation.toml"))
    if x is not None:
        env.update(x.env)
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "lockdown.cli", "check", *argv],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in doc["checks"]}


def test_without_a_display_the_text_report_names_every_step_and_skips_the_service(
    tmp_path: Path,
) -> None:
    done = check(tmp_path, "--temp-basedir")
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr and done.stderr.strip() == "", done.stderr
    lines = done.stdout.splitlines()
    for number, title in enumerate(TITLES, start=1):
        assert any(line.startswith(f"{number:>2}. {title}") for line in lines), title
    skipped = [line for line in lines if text("check.service.none") in line]
    assert len(skipped) == 4 and all(" SKIP " in line for line in skipped)
    assert text("check.report.no_service") in lines
    assert lines[-1] in {
        text(t) for t in ("check.next.ready", "check.next.warnings", "check.next.fix")
    }


def test_without_a_display_the_json_report_meets_its_schema(tmp_path: Path) -> None:
    done = check(tmp_path, "--json", "--temp-basedir")
    doc = json.loads(done.stdout)
    validate(doc)
    assert done.returncode == doc["exit_code"]
    steps = by_id(doc)
    assert list(steps) == [
        "app", "service", "clock", "displays", "virtual_machine", "remote_session",
        "isolation", "prohibited_apps", "free_disk", "screen_capture", "upload", "bandwidth",
    ]  # fmt: skip
    for step in ("service", "clock", "upload", "bandwidth"):
        assert (steps[step]["status"], steps[step]["message_id"]) == ("skip", "check.service.none")
    assert steps["displays"]["status"] == "fail"  # no screen: the exam could not run here
    assert doc["exam"] == {
        "config": None,
        "title": None,
        "streams": ["camera", "microphone", "screen"],
        "recording_kbps": 177.0,
    }


@pytest.mark.x11
def test_with_a_display_the_screen_steps_pass(tmp_path: Path, xserver: Xvfb) -> None:
    done = check(tmp_path, "--json", "--temp-basedir", x=xserver)
    doc = json.loads(done.stdout)
    validate(doc)
    steps = by_id(doc)
    assert steps["displays"]["status"] == "pass", steps["displays"]
    assert steps["screen_capture"]["status"] == "pass", steps["screen_capture"]
    assert steps["isolation"]["status"] in ("pass", "warn")


@pytest.fixture
def exam(tmp_path: Path, http_server: LocalServer) -> Iterator[tuple[Path, Any]]:
    """An exam configuration naming the stand-in service, and the service."""
    service = probeservice.mount(http_server)
    (tmp_path / "organisation.toml").write_text(
        "[settings]\nconfig.allow_unsigned = true\n", encoding="utf-8"
    )
    config = tmp_path / "exam.toml"
    config.write_text(
        'format = 1\n[exam]\nid = "check-e2e"\ntitle = "Check e2e"\n'
        '[browser]\nstart_url = "https://exam.example.org/"\n'
        "[proctoring]\ncamera = true\nmicrophone = true\n"
        f'[service]\nurl = "{service.url}"\nprobe_token = "{probeservice.PROBE_TOKEN}"\n'
        "[checks]\nupload_test_kb = 64\n",
        encoding="utf-8",
    )
    yield config, service


def test_for_an_exam_the_upload_passes_and_send_leaves_the_report_with_the_service(
    tmp_path: Path, exam: tuple[Path, Any]
) -> None:
    config, service = exam
    done = check(tmp_path, "--config", str(config), "--json", "--send", "--temp-basedir")
    out = json.loads(done.stdout)
    validate(out)
    steps = by_id(out)
    for step in ("service", "clock", "upload", "bandwidth"):
        assert steps[step]["status"] == "pass", steps[step]
    assert out["exam"]["streams"] == ["camera", "microphone"]
    assert out["exam"]["title"] == "Check e2e"
    assert out["sent"]["ok"] is True
    (kept,) = service.reports
    assert kept["check_id"] == out["sent"]["check_id"]
    validate(kept["report"])
    assert "sent" not in kept["report"]
    assert kept["report"]["checks"] == out["checks"]
    assert done.returncode == out["exit_code"]


def test_a_refused_upload_fails_with_the_guides_words_and_exit_1(
    tmp_path: Path, exam: tuple[Path, Any]
) -> None:
    config, service = exam
    service.refuse_probe = True
    done = check(tmp_path, "--config", str(config), "--temp-basedir")
    assert done.returncode == 1, done.stdout
    upload = next(line for line in done.stdout.splitlines() if line.startswith("11. Upload test"))
    assert " FAIL " in upload and "Cannot upload files" in upload
    assert f"What to do: {text('check.upload.remedy', host=service.url[7:])}" in done.stdout


def test_a_full_disk_fails_the_free_disk_step(tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    small = tmpfs("2m")
    disk.fill(small)
    done = check(tmp_path, "--json", env_extra={"XDG_DATA_HOME": str(small / "share")})
    doc = json.loads(done.stdout)
    free = by_id(doc)["free_disk"]
    assert (free["status"], free["remedy_id"]) == ("fail", "check.disk.remedy")
    assert free["measured"]["free_mb"] == 0
    assert done.returncode == 1
