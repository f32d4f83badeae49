"""Where the data files under ``resources/`` (injected JS, the demo exam, app lists) are.

Qt-free, so guards and the build identity read them without importing the UI. A
development build honours ``LOCKDOWN_RESOURCES`` (tests swap a file); an installed build
never does: the injected JavaScript is part of what the exam enforces.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lockdown.errors import UserError

OVERRIDE_VARIABLE = "LOCKDOWN_RESOURCES"


class ResourceMissing(UserError):
    """A bundled data file is missing: the installation is incomplete."""


def shipped_dir() -> Path:
    """The bundle's or the source tree's ``resources/`` (never an override)."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[1] / "resources"


def resources_dir() -> Path:
    """``$LOCKDOWN_RESOURCES`` in a development build, else :func:`shipped_dir`."""
    from lockdown import build

    override = os.environ.get(OVERRIDE_VARIABLE)
    if override and not build.current().installed:
        return Path(override)
    return shipped_dir()


def resource_path(*parts: str) -> Path:
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise ResourceMissing(f"{path}: bundled file missing; reinstall Lockdown")
    return path


def read_text(*parts: str) -> str:
    return resource_path(*parts).read_text(encoding="utf-8")
