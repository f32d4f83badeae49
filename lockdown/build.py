"""Which build of Lockdown this is: installed (a frozen bundle) or development, and its identity.

An **installed build** is a frozen bundle (PyInstaller sets ``sys.frozen``) whose folder
holds the build-info file written by the packaging step (:data:`BUILD_INFO_FILE`, JSON:
``version``, ``identity``, ``built``). It honours no override a candidate could use:
settings come only from the signed exam configuration and the system organisation file.

A **development build** is a source checkout or a wheel install. It honours the test
overrides (``--organisation``, ``--temp-basedir``, ``LOCKDOWN_ORGANISATION_FILE``,
``LOCKDOWN_RESOURCES`` and the development switches of :func:`dev_switch`) and says
``build: development`` in the journal and in the Browser Exam Key derivation, so an exam
server can tell it apart.

The test switch ``LOCKDOWN_AS_INSTALLED=1`` only *tightens*: it makes a development build
behave as installed (the trust-boundary tests use it). Nothing turns an installed build
into a development one.

The **build identity** is a SHA-256 over the shipped code and resources (path and content
hash of each file of the package folder, which holds the data files too): in a development
build computed from the files on disk, in an installed build read from the build-info file
(computed from the same files when the bundle was made).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from lockdown import __version__

BUILD_INFO_FILE: Final = "build-info.json"
AS_INSTALLED_VARIABLE: Final = "LOCKDOWN_AS_INSTALLED"
PACKAGE_ROOT: Final = Path(__file__).resolve().parent
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
#: Files of the shipped tree that count towards the identity.
_SHIPPED_SUFFIXES: Final = frozenset({".py", ".js", ".html", ".css", ".toml", ".json", ".txt"})

Kind = Literal["installed", "development"]


@dataclass(frozen=True)
class Build:
    """What this build is, how that was recognised, and its identity."""

    kind: Kind
    version: str
    identity: str
    #: how the kind was recognised (shown in ``--version`` and journalled)
    reason: str

    @property
    def installed(self) -> bool:
        return self.kind == "installed"

    def describe(self) -> str:
        return f"lockdown {self.version} ({self.kind} build {self.identity[:16]}; {self.reason})"

    def as_record(self) -> dict[str, str]:
        return {"build": self.kind, "version": self.version, "identity": self.identity}


def bundle_folder() -> Path | None:
    """The frozen bundle's folder (where the executable and the build-info file are)."""
    if not getattr(sys, "frozen", False):
        return None
    return Path(sys.executable).resolve().parent


def _tree_digest(root: Path, files: Iterable[Path]) -> str | None:
    listed = sorted(files, key=lambda p: p.relative_to(root).as_posix())
    if not listed:
        return None
    digest = hashlib.sha256()
    for path in listed:
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()


def tree_identity(root: Path, *, suffixes: frozenset[str] = _SHIPPED_SUFFIXES) -> str | None:
    """SHA-256 hex over the shipped files below ``root`` (path and content hash of each)."""
    files = (
        p
        for p in root.rglob("*")
        if p.suffix in suffixes and p.is_file() and "__pycache__" not in p.parts
    )
    return _tree_digest(root, files)


def compute_identity() -> str:
    """The identity of the code and resources on disk (the packaging step writes it).

    The data files live inside the package (:mod:`lockdown.resources`), so hashing the
    package folder covers code and resources, each file exactly once.
    """
    part = tree_identity(PACKAGE_ROOT) if PACKAGE_ROOT.is_dir() else None
    return hashlib.sha256(f"package:{part or 'none'}\n".encode("ascii")).hexdigest()


def read_build_info(folder: Path) -> Mapping[str, str] | None:
    """The build-info file in ``folder``, or None when it is missing or malformed."""
    try:
        raw = json.loads((folder / BUILD_INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict):
        return None
    identity = raw.get("identity")
    version = raw.get("version")
    if not (isinstance(identity, str) and _HEX64.fullmatch(identity) and isinstance(version, str)):
        return None
    return {"identity": identity, "version": version, "built": str(raw.get("built", ""))}


def write_build_info(folder: Path, *, built: str) -> Path:
    """Write the build-info file of a bundle being made (the packaging step calls this)."""
    path = folder / BUILD_INFO_FILE
    data = {"version": __version__, "identity": compute_identity(), "built": built}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def detect(environ: Mapping[str, str] | None = None) -> Build:
    """Recognise this build (see the module docstring); never raises."""
    env = os.environ if environ is None else environ
    folder = bundle_folder()
    if folder is not None:
        info = read_build_info(folder)
        if info is None:
            # A frozen bundle is installed whatever happened to its build-info file: its
            # identity is then unknown, which changes the Browser Exam Key (refused).
            unknown = hashlib.sha256(b"lockdown: build-info missing").hexdigest()
            return Build("installed", __version__, unknown, f"frozen, no {BUILD_INFO_FILE}")
        return Build("installed", info["version"], info["identity"], "frozen bundle")
    identity = compute_identity()
    if env.get(AS_INSTALLED_VARIABLE) == "1":
        return Build("installed", __version__, identity, f"{AS_INSTALLED_VARIABLE}=1 (tests)")
    return Build("development", __version__, identity, "source checkout or wheel")


@functools.cache
def current() -> Build:
    """This process's build (decided once: the environment is read at the first call)."""
    return detect()


def dev_switch(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The value of the development-only variable ``LOCKDOWN_DEV_<NAME>``, else None.

    Development switches loosen something for tests (accept XTEST input, keep WebRTC…);
    an installed build never reads them. The caller journals a switch that took effect.
    """
    env = os.environ if environ is None else environ
    if current().installed:
        return None
    return env.get(f"LOCKDOWN_DEV_{name.upper()}")
