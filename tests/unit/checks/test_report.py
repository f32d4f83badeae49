"""The report: the JSON document meets its published schema; every text id the checks name exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from lockdown.checks import report
from lockdown.checks.base import CheckContext, CheckResult, Service, Status
from lockdown.checks.runner import StepOutcome
from lockdown.config.settings import Settings
from lockdown.texts import TEXTS, text

ROOT = Path(__file__).resolve().parents[3]
SCHEMA_FILE = ROOT / "docs" / "check-report.schema.json"
CHECKS = ROOT / "lockdown" / "checks"


def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def validate(doc: object) -> None:
    jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(doc)


def _outcomes() -> list[StepOutcome]:
    return [
        StepOutcome(
            "clock",
            "check.clock.title",
            True,
            CheckResult(
                Status.WARN,
                "check.clock.off",
                {"seconds": "5", "how": "behind"},
                "check.clock.remedy",
                {"offset_s": 5.2},
                {"service_date": "2026-12-01T10:00:00+00:00"},
            ),
            0.01,
        ),
        StepOutcome(
            "free_disk",
            "check.disk.title",
            True,
            CheckResult(
                Status.FAIL,
                "check.disk.low",
                {"free": "3", "needed": "1,024", "folder": "/tmp"},
                "check.disk.remedy",
                {"free_mb": 3.0, "needed_mb": 1024.0},
                {"folder": Path("/tmp")},  # not JSON: becomes text
            ),
            0.002,
        ),
        StepOutcome(
            "bandwidth",
            "check.bandwidth.title",
            False,
            CheckResult(Status.SKIP, "check.bandwidth.no_upload"),
            0.0,
        ),
    ]


def test_the_json_report_meets_its_schema_and_says_what_blocks(tmp_path: Path) -> None:
    ctx = CheckContext(
        Settings.defaults(), ("camera", "screen"), tmp_path, Service("https://p.example.org")
    )
    doc = report.document(_outcomes(), ctx, exam_title="Physics")
    validate(json.loads(json.dumps(doc)))
    assert (doc["schema"], doc["schema_version"]) == ("lockdown-check-report", 1)
    assert (doc["ok"], doc["exit_code"]) == (False, 1)
    assert doc["summary"]["blocking_failed"] == ["free_disk"]
    assert doc["summary"]["next_id"] == "check.next.fix"
    disk = doc["checks"][1]
    assert disk["remedy"] == text("check.disk.remedy")
    assert disk["message"].startswith("Only 3 MiB free")
    assert disk["details"]["folder"] == "/tmp"
    assert doc["exam"]["recording_kbps"] == 96 + 64
    assert doc["service"] == {"url": "https://p.example.org"}


def test_the_schema_refuses_a_document_that_breaks_it(tmp_path: Path) -> None:
    ctx = CheckContext(Settings.defaults(), (), tmp_path)
    doc = report.document(_outcomes(), ctx)
    validate(doc)
    for breakage in (
        lambda d: d.update(schema_version=2),
        lambda d: d["checks"][0].update(status="maybe"),
        lambda d: d["checks"][0]["measured"].update(offset_s="5 s"),
        lambda d: d.pop("summary"),
    ):
        broken = json.loads(json.dumps(doc))
        breakage(broken)
        with pytest.raises(jsonschema.ValidationError):
            validate(broken)


def test_the_text_report_gives_each_step_its_result_value_and_remedy(tmp_path: Path) -> None:
    outcome = _outcomes()[1]
    lines = report.step_lines(9, outcome)
    assert lines[0].startswith(" 9. Free disk space")
    assert "FAIL" in lines[0] and "[free_mb 3.0, needed_mb 1024.0]" in lines[0]
    assert lines[1] == f"    What to do: {text('check.disk.remedy')}"
    summary = report.summary_lines(_outcomes())
    assert summary[-2:] == ["Failed: Free disk space.", text("check.next.fix")]


#: ``"check.…"`` literals and the ids the policy checks build from their kind
_LITERAL = re.compile(r"""["']((?:check|guards)\.[a-z_]+(?:\.[a-z_]+)+)["']""")
_BUILT = re.compile(r"""f["']check\.\{kind\}\.([a-z_]+)["']""")


def test_every_message_and_remedy_id_of_the_checks_exists() -> None:
    named: set[str] = set()
    for path in CHECKS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        named.update(_LITERAL.findall(source))
        for suffix in _BUILT.findall(source):
            named.update(f"check.{kind}.{suffix}" for kind in ("vm", "remote"))
    assert len(named) > 60
    assert sorted(n for n in named if n not in TEXTS) == []
    remedies = {n for n in named if "remedy" in n}
    assert len(remedies) >= 15
    # the troubleshooting guide's words for a failed upload
    assert "poor internet connection" in text("check.upload.remedy", host="h")
    assert "ethernet" in text("check.upload.remedy", host="h")
    assert "firewall" in text("check.upload.remedy", host="h")
    assert text("check.upload.failed", reason="r").startswith("Cannot upload files")


def test_the_microphone_sentence_goes_to_a_person_not_into_a_scripts_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io
    import os
    import sys

    from lockdown.checks.cli import prompt_stream

    assert prompt_stream(as_json=False) is sys.stdout
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert prompt_stream(as_json=True) is None
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as terminal:
        monkeypatch.setattr(sys, "stderr", terminal)
        assert prompt_stream(as_json=True) is terminal
    os.close(leader)
