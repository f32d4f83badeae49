"""The shared Safe Exam Browser vectors (../shared/reference/seb-vectors), read in place.

Their licences (MPL-2.0 / GPL-3.0) keep them out of this repository, so these tests read
them from the shared folder and skip, saying why, when it is absent. Our own vectors in
tests/data/seb/ cover the same rules without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lockdown import cli
from lockdown.config import examkeys, seb

SHARED = Path(__file__).resolve().parents[4] / "shared" / "reference" / "seb-vectors"
CONFIG_KEYS = {
    "TestDictionary1.plist.xml": "6063c3351ed1ac878c05072598d5079e30ca763c957d8e04bd45131c08f88d1a",
    "TestDictionary2.plist.xml": "4fc002d2ae4faf994a14bede54d95ac58a1a2cb9b59bc5b4277ff29559b46e3d",
    "TestDictionary3.plist.xml": "ab426e25b795c917f1fb40f7ef8e5757ef97d7c7ad6792e655c4421d47329d7a",
}


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "README.md").is_file():
        pytest.skip(
            f"shared SEB vectors not present at {SHARED} (they may not be copied into the "
            "repository); tests/data/seb covers the same rules"
        )
    return SHARED


def _cases() -> list[dict[str, Any]]:
    path = SHARED / "property_list_json_cases.json"
    if not path.is_file():
        return []
    cases: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return cases


def _no_password(attempt: int) -> str | None:
    raise AssertionError("the shared vectors are not encrypted")


@pytest.mark.parametrize("name", sorted(CONFIG_KEYS))
def test_test_dictionary_config_key(shared: Path, name: str) -> None:
    cfg = seb.load_seb((shared / name).read_bytes(), origin=name, password=_no_password)
    expected_json = (shared / name.replace(".plist.xml", ".sebjson.txt")).read_text(
        encoding="utf-8"
    )
    assert examkeys.seb_json(cfg.plist) == expected_json
    assert cfg.config_key == CONFIG_KEYS[name]
    assert cfg.values["browser.start_url"].startswith("https://")
    assert "originatorVersion" in cfg.ignored


@pytest.mark.parametrize("name", sorted(CONFIG_KEYS))
def test_cli_prints_the_listed_config_key(
    shared: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "keys", str(shared / name)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"Config Key: {CONFIG_KEYS[name]}"
    assert lines[1].startswith("Browser Exam Key (shared display, development build ")
    # one Browser Exam Key per display mode the exam may run in (preferred: both)
    assert lines[2].startswith("Browser Exam Key (isolated display, development build ")
    assert len(lines) == 3


def test_there_are_sixteen_property_list_cases(shared: Path) -> None:
    assert len(_cases()) == 16


@pytest.mark.parametrize("index", range(16))
def test_property_list_json_case(shared: Path, index: int) -> None:
    case = _cases()[index]
    plist = seb.parse_plist(case["plist_xml"].encode("utf-8"), origin=case["name"])
    assert examkeys.seb_json(plist) == case["expected_seb_json"], case["name"]
    assert examkeys.config_key(plist) == case["expected_config_key_sha256"]


def test_request_hash_example(shared: Path) -> None:
    readme = (shared / "README.md").read_text(encoding="utf-8")
    url = "https://example.com/moodle/mod/quiz/attempt.php?attemptid=123&page=4"
    bek = "787c3f3d7211ff09ad5ba6a62f67b6a2092eb3080b5b5d29d578f3a3d901cbae"
    expected = "96fc9b4226354376f5199e1f095e6a694ef10935c06bd24eebff61200a602ce4"
    assert url in readme and bek in readme and expected in readme
    assert examkeys.ExamKeys(config_key="", browser_exam_key=bek).hashes_for(url)[1] == expected
