"""The prohibited-apps list (lockdown/resources/prohibited_apps.toml) and the matcher of processes.

The list is data; this module only reads it, applies the exam's extensions
(``guards.prohibited_apps_extra``) and relaxations (``guards.permitted_apps``) and matches
processes against it with the case rules of each OS:

- Linux: names are case-sensitive; the kernel truncates the process name (``comm``) to 15
  characters, so the executable's base name and ``cmdline[0]`` are matched first, and a
  script run by an interpreter (``python3 /usr/bin/kazam``) by its script name.
- Windows: case-insensitive, ``.exe`` optional; the PE ``OriginalFilename`` catches a
  renamed copy.
- macOS: case-insensitive; bundle identifiers match too.
"""

from __future__ import annotations

import ntpath
import posixpath
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from lockdown.errors import UserError

OsName = Literal["linux", "windows", "macos"]
OS_NAMES: Final[tuple[OsName, ...]] = ("linux", "windows", "macos")
#: Linux truncates ``/proc/<pid>/comm`` to this many characters.
COMM_LENGTH: Final = 15
EXTRA_CATEGORY: Final = "extra"
_INTERPRETER = re.compile(
    r"^(python[0-9.]*|pypy[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|gjs|sh|bash|dash|zsh|env)$"
)


class AppListError(UserError):
    """The prohibited-apps data file is missing or malformed."""


def current_os() -> OsName:
    if sys.platform == "win32":
        return "windows"
    if sys.platform == "darwin":
        return "macos"
    return "linux"


def default_list_path() -> Path:
    """``lockdown/resources/prohibited_apps.toml`` (source tree and bundle)."""
    from lockdown import resources

    return resources.resources_dir() / "prohibited_apps.toml"


@dataclass(frozen=True)
class ProhibitedApp:
    """One application of the list, with its names for one OS."""

    id: str
    name: str
    category: str
    names: tuple[str, ...] = ()
    original_names: tuple[str, ...] = ()
    bundle_ids: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.names or self.original_names or self.bundle_ids)


@dataclass(frozen=True)
class ProcessFacts:
    """What is known about one process (fields unavailable here stay empty)."""

    pid: int
    name: str = ""
    exe: str = ""
    cmdline: tuple[str, ...] = ()
    ppid: int = 0
    create_time: float = 0.0
    #: Windows: the PE version resource's OriginalFilename
    original_filename: str = ""
    #: macOS: CFBundleIdentifier of the enclosing .app bundle
    bundle_id: str = ""

    def as_payload(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "exe": self.exe,
            "cmdline0": self.cmdline[0] if self.cmdline else "",
        }


@dataclass(frozen=True)
class Match:
    """A process recognised as a prohibited app, and on what."""

    app: ProhibitedApp
    process: ProcessFacts
    #: exe | cmdline | script | name | original_filename | bundle_id
    matched_on: str
    matched_name: str

    def as_payload(self) -> dict[str, Any]:
        return {
            "app": self.app.id,
            "app_name": self.app.name,
            "category": self.app.category,
            "matched_on": self.matched_on,
            "matched_name": self.matched_name,
            **self.process.as_payload(),
        }


def _strings(value: object, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AppListError(f"{where}: expected a list of non-empty names")
    return tuple(value)


def _per_os(table: object, os_name: OsName, where: str) -> tuple[str, ...]:
    if table is None:
        return ()
    if not isinstance(table, Mapping):
        raise AppListError(f"{where}: expected a table with linux, windows, macos lists")
    return _strings(table.get(os_name), f"{where}.{os_name}")


@dataclass(frozen=True)
class AppList:
    """The prohibited apps for one OS, plus the never-touched and remote-server names."""

    os: OsName
    apps: tuple[ProhibitedApp, ...]
    categories: Mapping[str, str] = field(default_factory=dict)
    essential: tuple[str, ...] = ()
    remote_servers: tuple[str, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None, os_name: OsName | None = None) -> AppList:
        """Read the data file (default: the bundled one) for ``os_name`` (default: this OS)."""
        path = path or default_list_path()
        os_name = os_name or current_os()
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise AppListError(
                f"{path}: prohibited-apps list not found; reinstall Lockdown"
            ) from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise AppListError(f"{path}: cannot read the prohibited-apps list ({exc})") from None
        return cls.parse(doc, os_name, origin=str(path))

    @classmethod
    def parse(cls, doc: Mapping[str, Any], os_name: OsName, *, origin: str) -> AppList:
        categories = doc.get("categories", {})
        if not isinstance(categories, Mapping) or not all(
            isinstance(v, str) for v in categories.values()
        ):
            raise AppListError(f"{origin}: [categories] must map ids to labels")
        raw_apps = doc.get("app", [])
        if not isinstance(raw_apps, list):
            raise AppListError(f"{origin}: [[app]] entries expected")
        apps: list[ProhibitedApp] = []
        seen: set[str] = set()
        for number, raw in enumerate(raw_apps, start=1):
            where = f"{origin}: app #{number}"
            if not isinstance(raw, Mapping):
                raise AppListError(f"{where}: expected a table")
            app_id, name, category = raw.get("id"), raw.get("name"), raw.get("category")
            if not isinstance(app_id, str) or not app_id or app_id in seen:
                raise AppListError(f"{where}: missing or duplicate id")
            if not isinstance(name, str) or not isinstance(category, str):
                raise AppListError(f"{where} ({app_id}): name and category are required")
            if category not in categories:
                raise AppListError(f"{where} ({app_id}): unknown category {category!r}")
            seen.add(app_id)
            apps.append(
                ProhibitedApp(
                    id=app_id,
                    name=name,
                    category=category,
                    names=_strings(raw.get(os_name), f"{where}.{os_name}"),
                    original_names=_strings(raw.get("windows_original"), where)
                    if os_name == "windows"
                    else (),
                    bundle_ids=_strings(raw.get("macos_bundle"), where)
                    if os_name == "macos"
                    else (),
                )
            )
        return cls(
            os=os_name,
            apps=tuple(a for a in apps if not a.empty),
            categories=dict(categories),
            essential=_per_os(doc.get("essential"), os_name, f"{origin}: [essential]"),
            remote_servers=_per_os(
                doc.get("remote_servers"), os_name, f"{origin}: [remote_servers]"
            ),
        )

    # -- exam adjustments ------------------------------------------------------------------

    def extended(self, names: Iterable[str]) -> AppList:
        """Add executable names (``guards.prohibited_apps_extra``), one app each."""
        extra = [
            ProhibitedApp(
                id=f"extra:{name}",
                name=name,
                category=EXTRA_CATEGORY,
                names=(name,),
                original_names=(name,) if self.os == "windows" else (),
                bundle_ids=(name,) if self.os == "macos" and "." in name else (),
            )
            for name in names
            if name.strip()
        ]
        categories = {**self.categories, EXTRA_CATEGORY: "Added by the exam"}
        return replace(self, apps=(*self.apps, *extra), categories=categories)

    def relaxed(self, permitted: Iterable[str]) -> AppList:
        """Take apps (by id) or executable names off the list (``guards.permitted_apps``)."""
        wanted = list(permitted)
        ids = set(wanted)
        keys = {_normalise(self.os, n) for n in wanted}
        kept = []
        for app in self.apps:
            if app.id in ids:
                continue
            slim = replace(
                app,
                names=tuple(n for n in app.names if _normalise(self.os, n) not in keys),
                original_names=tuple(
                    n for n in app.original_names if _normalise(self.os, n) not in keys
                ),
                bundle_ids=tuple(b for b in app.bundle_ids if b.casefold() not in keys),
            )
            if not slim.empty:
                kept.append(slim)
        return replace(self, apps=tuple(kept))

    def restricted_to(self, ids: Iterable[str]) -> AppList:
        """Only the apps with these ids (for tests and benchmarks on a shared machine)."""
        wanted = set(ids)
        unknown = wanted - {a.id for a in self.apps}
        if unknown:
            raise AppListError(f"unknown prohibited-app ids: {', '.join(sorted(unknown))}")
        return replace(self, apps=tuple(a for a in self.apps if a.id in wanted))

    def for_settings(self, settings: Mapping[str, Any]) -> AppList:
        """The list as the exam's settings adjust it."""
        return self.extended(settings["guards.prohibited_apps_extra"]).relaxed(
            settings["guards.permitted_apps"]
        )

    def matcher(self) -> Matcher:
        return Matcher(self)

    def app(self, app_id: str) -> ProhibitedApp:
        for app in self.apps:
            if app.id == app_id:
                return app
        raise KeyError(app_id)


def _normalise(os_name: OsName, name: str) -> str:
    if os_name == "linux":
        return name
    folded = name.casefold()
    if os_name == "windows" and folded.endswith(".exe"):
        folded = folded[:-4]
    return folded


def basename(os_name: OsName, path: str) -> str:
    """The last path component with the separators of ``os_name``."""
    trimmed = path.rstrip("/\\")
    return ntpath.basename(trimmed) if os_name == "windows" else posixpath.basename(trimmed)


def _script_name(os_name: OsName, facts: ProcessFacts) -> str:
    """``kazam`` for ``python3 -O /usr/bin/kazam``; empty when not an interpreter."""
    if len(facts.cmdline) < 2:
        return ""
    runner = _normalise(os_name, basename(os_name, facts.exe or facts.cmdline[0])).casefold()
    if not _INTERPRETER.match(runner):
        return ""
    for arg in facts.cmdline[1:]:
        if arg.startswith("-"):
            continue
        return basename(os_name, arg)
    return ""


class Matcher:
    """Matches :class:`ProcessFacts` against an :class:`AppList` (pure, no I/O)."""

    def __init__(self, apps: AppList) -> None:
        self.list = apps
        self.os = apps.os
        self._by_name: dict[str, ProhibitedApp] = {}
        self._by_original: dict[str, ProhibitedApp] = {}
        self._by_bundle: dict[str, ProhibitedApp] = {}
        for app in apps.apps:
            for name in app.names:
                self._by_name.setdefault(_normalise(self.os, name), app)
            for name in app.original_names:
                self._by_original.setdefault(_normalise(self.os, name), app)
            for bundle in app.bundle_ids:
                self._by_bundle.setdefault(bundle.casefold(), app)
        self._essential = {_normalise(self.os, n) for n in apps.essential}
        self._remote = {_normalise(self.os, n) for n in apps.remote_servers}

    def _candidates(self, facts: ProcessFacts) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if facts.exe:
            out.append(("exe", basename(self.os, facts.exe)))
        if facts.cmdline and facts.cmdline[0]:
            first = facts.cmdline[0]
            if self.os == "linux" and len(facts.cmdline) == 1:
                first = first.split(" ")[0]  # a process that rewrote its argv into one string
            out.append(("cmdline", basename(self.os, first)))
        if script := _script_name(self.os, facts):
            out.append(("script", script))
        if facts.name:
            out.append(("name", facts.name))
        return out

    def match(self, facts: ProcessFacts) -> Match | None:
        """The prohibited app this process is, or None."""
        for how, name in self._candidates(facts):
            app = self._by_name.get(_normalise(self.os, name))
            if app is not None:
                return Match(app, facts, how, name)
        if facts.original_filename:
            key = _normalise(self.os, facts.original_filename)
            app = self._by_original.get(key) or self._by_name.get(key)
            if app is not None:
                return Match(app, facts, "original_filename", facts.original_filename)
        if facts.bundle_id and (app := self._by_bundle.get(facts.bundle_id.casefold())):
            return Match(app, facts, "bundle_id", facts.bundle_id)
        # Linux truncates comm; with neither exe nor cmdline readable, a 15-character name
        # that starts a listed name is the best evidence there is.
        truncated = len(facts.name) == COMM_LENGTH
        if self.os == "linux" and truncated and not facts.exe and not facts.cmdline:
            for key, app in self._by_name.items():
                if key.startswith(facts.name):
                    return Match(app, facts, "name", facts.name)
        return None

    def is_essential(self, facts: ProcessFacts) -> bool:
        """System processes never touched: pid 0/1, kernel threads, the essential names."""
        if facts.pid in (0, 1):
            return True
        if self.os == "linux" and (facts.pid == 2 or facts.ppid == 2):
            return True  # kthreadd and the kernel threads it spawns
        if self.os == "linux" and not facts.exe and not facts.cmdline and facts.pid > 0:
            # kernel threads have no cmdline; a user process always has one
            return facts.ppid in (0, 2)
        names = {_normalise(self.os, n) for _, n in self._candidates(facts)}
        return bool(names & self._essential)

    def remote_server(self, facts: ProcessFacts) -> str | None:
        """The remote-desktop server name this process is, or None."""
        for _, name in self._candidates(facts):
            if _normalise(self.os, name) in self._remote:
                return name
        return None


def names_of(matches: Sequence[Match]) -> list[str]:
    """Distinct app names, in order, for messages."""
    out: list[str] = []
    for m in matches:
        if m.app.name not in out:
            out.append(m.app.name)
    return out
