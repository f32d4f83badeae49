"""The real ``lockdown check`` process: without a display and with one, text and JSON,
for an exam whose service takes the upload and keeps the report (``--send``), a refused
upload, a full disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import sqlalchemy

from lockdown.texts import text
from lockdown_server.store import models
from tests.support import disk
from tests.support.service import ServiceProcess
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
    "Cameras",
    "Camera",
    "Microphone",
    "Test recording",
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
    assert "aloud" not in done.stderr  # no one at a terminal: the sentence is not asked for
    assert done.returncode == doc["exit_code"]
    steps = by_id(doc)
    assert list(steps) == [
        "app", "service", "clock", "displays", "virtual_machine", "remote_session",
        "isolation", "prohibited_apps", "free_disk", "cameras", "camera", "microphone",
        "test_recording", "screen_capture", "upload", "bandwidth",
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
def exam(tmp_path: Path, lockdown_service: ServiceProcess) -> tuple[Path, ServiceProcess]:
    """A new exam of the real test service: its signed configuration, trusted here."""
    exam_id = f"check-{uuid.uuid4().hex[:8]}"
    config = tmp_path / "exam.toml"
    config.write_bytes(lockdown_service.create_exam(exam_id, streams="camera,microphone"))
    public = (lockdown_service.data / "keys" / "token.pub").read_text().strip()
    (tmp_path / "organisation.toml").write_text(
        f'[settings]\nconfig.trusted_keys = ["{public}"]\nchecks.upload_test_kb = 64\n',
        encoding="utf-8",
    )
    return config, lockdown_service


def test_for_an_exam_the_upload_passes_and_send_leaves_the_report_with_the_service(
    tmp_path: Path, exam: tuple[Path, ServiceProcess]
) -> None:
    config, service = exam
    done = check(tmp_path, "--config", str(config), "--json", "--send", "--temp-basedir")
    out = json.loads(done.stdout)
    validate(out)
    steps = by_id(out)
    for step in ("service", "clock", "upload", "bandwidth"):
        assert steps[step]["status"] == "pass", steps[step]
    assert out["exam"]["streams"] == ["camera", "microphone"]
    assert out["exam"]["title"].startswith("Exam check-")
    assert out["sent"]["ok"] is True
    with service.open().engine.connect() as conn:
        (row,) = conn.execute(
            sqlalchemy.select(models.checks).where(models.checks.c.id == out["sent"]["check_id"])
        ).all()
    kept = json.loads(row.report)
    validate(kept)
    assert "sent" not in kept
    assert kept["checks"] == out["checks"]
    assert done.returncode == out["exit_code"]


def test_a_refused_upload_fails_with_the_guides_words_and_exit_1(
    tmp_path: Path, exam: tuple[Path, ServiceProcess]
) -> None:
    config, service = exam
    # the exam's probe token swapped for a forged one: the service refuses the upload
    text_ = config.read_text(encoding="utf-8")
    start = text_.index('probe_token = "') + len('probe_token = "')
    forged = config.with_name("forged.toml")
    forged.write_text(text_[:start] + "AAAA" + text_[start + 4 :], encoding="utf-8")
    organisation = tmp_path / "organisation.toml"
    organisation.write_text(
        organisation.read_text(encoding="utf-8") + "config.allow_unsigned = true\n",
        encoding="utf-8",
    )
    unsigned = forged.with_name("unsigned.toml")
    unsigned.write_text(
        "".join(
            line
            for line in forged.read_text(encoding="utf-8").splitlines(keepends=True)
            if not line.startswith("# lockdown-signature")
        ),
        encoding="utf-8",
    )
    done = check(tmp_path, "--config", str(unsigned), "--temp-basedir")
    assert done.returncode == 1, done.stdout + done.stderr
    upload = next(line for line in done.stdout.splitlines() if line.startswith("15. Upload test"))
    assert " FAIL " in upload and "Cannot upload files" in upload and "401" in upload
    host = service.url.removeprefix("http://")
    assert f"What to do: {text('check.upload.remedy', host=host)}" in done.stdout


def test_a_full_disk_fails_the_free_disk_step(tmp_path: Path, tmpfs: Callable[[str], Path]) -> None:
    small = tmpfs("2m")
    disk.fill(small)
    done = check(tmp_path, "--json", env_extra={"XDG_DATA_HOME": str(small / "share")})
    doc = json.loads(done.stdout)
    free = by_id(doc)["free_disk"]
    assert (free["status"], free["remedy_id"]) == ("fail", "check.disk.remedy")
    assert free["measured"]["free_mb"] == 0
    assert done.returncode == 1
