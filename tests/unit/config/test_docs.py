"""docs/settings.md is generated from the schema and kept current; code reads only declared options."""

from __future__ import annotations

import re
from pathlib import Path

from lockdown.config.docgen import render
from lockdown.config.settings import SCHEMA

ROOT = Path(__file__).resolve().parents[3]


def test_settings_reference_matches_schema() -> None:
    current = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert current == render(), "docs/settings.md is stale: run `make docs`"


def test_every_option_key_read_in_code_is_declared() -> None:
    pattern = re.compile(r"""settings\[\s*["']([a-z_.]+)["']\s*\]""")
    used: dict[str, str] = {}
    for path in (ROOT / "lockdown").rglob("*.py"):
        for key in pattern.findall(path.read_text(encoding="utf-8")):
            used[key] = path.name
    undeclared = {k: v for k, v in used.items() if k not in SCHEMA}
    assert undeclared == {}


def test_every_option_has_doc_and_a_valid_default() -> None:
    for key, option in SCHEMA.items():
        assert option.doc.strip(), key
        option.type.convert(
            list(option.default) if isinstance(option.default, tuple) else option.default
        )
