"""Where the data files under ``resources/`` (injected JS, the demo exam) are at run time."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lockdown.errors import UserError


class ResourceMissing(UserError):
    """A bundled data file is missing: the installation is incomplete."""


def resources_dir() -> Path:
    """``$LOCKDOWN_RESOURCES``, else the bundle's or the source tree's ``resources/``."""
    override = os.environ.get("LOCKDOWN_RESOURCES")
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise ResourceMissing(f"{path}: bundled file missing; reinstall Lockdown")
    return path


def read_text(*parts: str) -> str:
    return resource_path(*parts).read_text(encoding="utf-8")
