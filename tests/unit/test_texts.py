"""Every candidate-facing text comes from lockdown/texts.py by id, and every id the code names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lockdown.texts import TEXTS, text

PACKAGE = Path(__file__).resolve().parents[2] / "lockdown"
LITERAL_ID = re.compile(
    r"""(?:\btext\(|TEXTS\[|message_id\s*=\s*|message\s*=\s*\()\s*["']([a-z_]+(?:\.[a-z_]+)+)["']"""
)


def ids_named_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in PACKAGE.rglob("*.py"):
        for text_id in LITERAL_ID.findall(path.read_text(encoding="utf-8")):
            found[text_id] = path.relative_to(PACKAGE).as_posix()
    return found


def test_every_text_id_named_in_code_exists() -> None:
    named = ids_named_in_code()
    assert len(named) > 20
    assert {k: v for k, v in named.items() if k not in TEXTS} == {}


def test_the_machine_policy_ids_built_at_run_time_exist() -> None:
    for kind in ("vm", "remote"):
        for verdict in ("denied", "warned"):
            assert f"guards.{kind}.{verdict}" in TEXTS


def test_placeholders_are_filled() -> None:
    assert text("guards.displays.too_many", count=2, allowed=1).startswith("2 screens")
    with pytest.raises(KeyError):
        text("guards.displays.too_many", count=2)
    with pytest.raises(KeyError):
        text("no.such.text")
