"""Generate the settings reference (``docs/settings.md``) from the schema."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from lockdown.config.schema import OPTIONS
from lockdown.config.types import Choice, List, Record

HEADER = """\
# Lockdown settings reference

Generated from `lockdown/config/schema.py` by `make docs`; do not edit by hand.

Settings come in layers: the defaults below < the organisation file
(`/etc/lockdown/organisation.toml` on Linux, `%ProgramData%\\Lockdown\\organisation.toml`
on Windows, `/Library/Application Support/Lockdown/organisation.toml` on macOS) < the exam
configuration. An option marked *organisation only* cannot be set by an exam
configuration; the organisation file can lock any option with `locked = ["key", …]`.
Settings are frozen once the exam starts.
"""


def _default(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and not value:
        return "[]"
    if isinstance(value, str):
        return f'"{value}"'
    return f"{value!r}"


def _choices(values: Mapping[str, str]) -> list[str]:
    return [f'  - `"{name}"`: {doc}' for name, doc in values.items()]


def render() -> str:
    lines = [HEADER]
    section = None
    for option in OPTIONS:
        head = option.key.split(".")[0]
        if head != section:
            section = head
            lines.append(f"\n## {section}\n")
        who = "exam configuration or organisation" if option.exam else "organisation only"
        lines.append(f"### `{option.key}`\n")
        lines.append(option.doc + "\n")
        lines.append(f"- Type: {option.type.describe()}")
        if isinstance(option.type, Choice):
            lines.extend(_choices(option.type.values))
        if isinstance(option.type, List) and isinstance(option.type.item, Record):
            for name, kind in option.type.item.fields.items():
                lines.append(f"  - `{name}`: {kind.describe()}")
                if isinstance(kind, Choice):
                    lines.extend("  " + c for c in _choices(kind.values))
        lines.append(f"- Default: `{_default(option.default)}`")
        lines.append(f"- Set by: {who}\n")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
