"""The data files shipped inside this package (injected JS, the demo exam, app lists).

They live beside this module (``lockdown/resources/js``, ``demo``, ``prohibited_apps.toml``)
and are found through :mod:`importlib.resources`, so a source checkout, an editable
install, a wheel and a frozen PyInstaller bundle all find them the same way.

Qt-free, so guards and the build identity read them without importing the UI. A
development build honours ``LOCKDOWN_RESOURCES`` (tests swap a file); an installed build
never does: the injected JavaScript is part of what the exam enforces.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from lockdown.errors import UserError

OVERRIDE_VARIABLE = "LOCKDOWN_RESOURCES"


class ResourceMissing(UserError):
    """A bundled data file is missing: the installation is incomplete."""


def shipped_dir() -> Path:
    """This package's folder, where the shipped data files are (never an override).

    The files are served and hashed as a folder, so the package must be on the file
    system (a zip import is refused with the usual "reinstall" line).
    """
    root = importlib.resources.files(__name__)
    if not isinstance(root, Path):
        raise ResourceMissing(
            f"{root}: Lockdown's data files are not in a folder; reinstall Lockdown"
        )
    return root


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
