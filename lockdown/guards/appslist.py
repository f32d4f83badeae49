"""The prohibited-apps list (lockdown/resources/prohibited_apps.toml) and the matcher of processes.

The list is data; this module only reads it, applies the exam's extensions
(``guards.prohibited_apps_extra``) and relaxations (``guards.permitted_apps``) and matches
processes against it:

- Names match case-insensitively on every OS and tolerate the suffixes a copy picks up
  (``OBS``, ``obs (1)``, ``obs.bin``, ``obs copy``, ``obs-2``, ``obs.AppImage``). The
  executable's own name (``/proc/PID/exe``) is matched first; ``cmdline[0]`` and the
  kernel's ``comm`` only add detections (a candidate chooses them, so they never exempt).
- A script run by an interpreter is matched by its script name, read past the
  interpreter's options (``python3 -W ignore -X dev obs``, ``python3 -m obs``,
  ``env VAR=1 perl obs``); inline code (``-c``/``-e``) has no script.
- Argument patterns (``linux_args`` …) catch general tools used as capture tools:
  ``ffmpeg -f x11grab``, ``gst-launch-1.0 ximagesrc``, ``magick import``.
- Windows: ``.exe`` optional; the PE ``OriginalFilename`` catches a renamed copy.
  macOS: bundle identifiers match too. Linux truncates ``comm`` to 15 characters.
- Essential processes (never touched) are recognised by their real executable only:
  its name, in a system folder (``[essential_dirs]``), owned by root and writable by no
  one else (Linux, macOS) — never by ``argv[0]`` or ``comm``, which anyone can set.
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
    r"^(?:(?P<python>python[0-9.]*|pypy[0-9.]*)|(?P<perl>perl[0-9.]*)|(?P<ruby>ruby[0-9.]*)"
    r"|(?P<node>node|nodejs|bun|deno)|(?P<shell>sh|bash|dash|zsh|ksh|mksh|fish)|(?P<env>env)"
    r"|(?P<other>gjs|lua[0-9.]*|php[0-9.]*|tclsh[0-9.]*|wish[0-9.]*|osascript))$"
)
#: Per interpreter family: single-letter options that take a value (attached or next),
#: long options that take the next argument, options whose value is inline code (no
#: script follows) and options whose value names a module to run (python -m).
_INTERPRETER_OPTIONS: Final[dict[str, tuple[str, frozenset[str], str, str]]] = {
    "python": ("WXQ", frozenset({"--check-hash-based-pycs"}), "c", "m"),
    "perl": ("I", frozenset(), "eE", ""),
    "ruby": ("IrCE", frozenset({"--encoding", "--external-encoding"}), "e", ""),
    "node": (
        "rC",
        frozenset({"--require", "--import", "--loader", "--experimental-loader", "--title"}),
        "ep",
        "",
    ),
    "shell": ("oO", frozenset({"--rcfile", "--init-file"}), "c", ""),
    "env": ("uCS", frozenset({"--unset", "--chdir", "--split-string"}), "", ""),
    "other": ("", frozenset(), "ce", ""),
}
#: Suffixes a copy of a program picks up, stripped one at a time (on a casefolded name).
_COPY_SUFFIX = re.compile(
    r"(?:\s*\(\d+\)|[\s._-]*(?:copy|kopie|copie)(?:[\s._-]*\d+)?|[\s._-]+\d+"
    r"|\.(?:bin|real|exe|appimage|orig|old|new|bak|sh|py|pl|rb|js|run|elf|out)"
    r"|[\s._-]+(?:bin|real|appimage|portable|x86_64|amd64|x64|linux)|~)$"
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
    #: general programs that count as this app with certain arguments (``ffmpeg -f x11grab``)
    arg_patterns: tuple[ArgPattern, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.names or self.original_names or self.bundle_ids or self.arg_patterns)


@dataclass(frozen=True)
class ArgPattern:
    """A program (by any of ``programs``) run with any of the arguments ``any_of``."""

    programs: tuple[str, ...]
    any_of: tuple[str, ...]


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
    #: the real user id (-1: unknown)
    uid: int = -1
    #: owner and mode of the executable file itself (-1 / 0: unknown)
    exe_owner: int = -1
    exe_mode: int = 0

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
    #: exe | cmdline | script | name | args | original_filename | bundle_id
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


def _arg_patterns(value: object, where: str) -> tuple[ArgPattern, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise AppListError(f"{where}: expected a list of {{ programs = [...], any = [...] }}")
    patterns = []
    for number, raw in enumerate(value, start=1):
        if not isinstance(raw, Mapping) or set(raw) - {"programs", "any"}:
            raise AppListError(f"{where} #{number}: expected {{ programs = [...], any = [...] }}")
        programs = _strings(raw.get("programs"), f"{where} #{number}.programs")
        any_of = _strings(raw.get("any"), f"{where} #{number}.any")
        if not programs or not any_of:
            raise AppListError(f"{where} #{number}: programs and any must not be empty")
        patterns.append(
            ArgPattern(tuple(p.casefold() for p in programs), tuple(a.casefold() for a in any_of))
        )
    return tuple(patterns)


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
    #: the system folders an essential process's executable must live in
    essential_dirs: tuple[str, ...] = ()
    remote_servers: tuple[str, ...] = ()
    #: names the exam permits (``guards.permitted_apps``): such a name never matches
    permitted_names: frozenset[str] = frozenset()

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
                    arg_patterns=_arg_patterns(
                        raw.get(f"{os_name}_args"), f"{where}.{os_name}_args"
                    ),
                )
            )
        return cls(
            os=os_name,
            apps=tuple(a for a in apps if not a.empty),
            categories=dict(categories),
            essential=_per_os(doc.get("essential"), os_name, f"{origin}: [essential]"),
            essential_dirs=_per_os(
                doc.get("essential_dirs"), os_name, f"{origin}: [essential_dirs]"
            ),
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
        return replace(self, apps=tuple(kept), permitted_names=self.permitted_names | keys)

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
    """The comparison key of a name: casefolded; on Windows without ``.exe``."""
    folded = name.casefold()
    if os_name == "windows" and folded.endswith(".exe"):
        folded = folded[:-4]
    return folded


def name_variants(os_name: OsName, name: str) -> list[str]:
    """``name``'s key, then the keys left as copy suffixes come off (``obs (1).bin`` ->
    ``obs (1)`` -> ``obs``)."""
    key = _normalise(os_name, name).strip()
    out = [key] if key else []
    for _ in range(6):
        shorter = _COPY_SUFFIX.sub("", key).strip()
        if not shorter or shorter == key:
            break
        key = shorter
        out.append(key)
    return out


def basename(os_name: OsName, path: str) -> str:
    """The last path component with the separators of ``os_name``."""
    trimmed = path.rstrip("/\\")
    return ntpath.basename(trimmed) if os_name == "windows" else posixpath.basename(trimmed)


def _interpreter(os_name: OsName, program: str) -> str:
    """The interpreter family of ``program`` (``python``, ``shell``, ``env`` …) or ``""``."""
    for key in name_variants(os_name, program):
        found = _INTERPRETER.match(key)
        if found and found.lastgroup:
            return found.lastgroup
    return ""


def _script_after_options(family: str, args: Sequence[str]) -> tuple[str, int]:
    """The script an interpreter of ``family`` runs with ``args``, and its index.

    ``("", -1)`` when it runs inline code or nothing. ``python3 -m pkg.obs`` runs ``obs``.
    """
    letters, long_values, code, module = _INTERPRETER_OPTIONS[family]
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if family == "env" and "=" in arg and not arg.startswith("-"):
            i += 1  # VAR=value
            continue
        if not arg.startswith(("-", "+")) or arg in ("-", "+"):
            break
        if arg.startswith("--"):
            name = arg.split("=", 1)[0]
            if name in ("--eval", "--print", "--command"):
                return "", -1
            i += 2 if (name in long_values and "=" not in arg) else 1
            continue
        cluster, i = arg[1:], i + 1
        for pos, letter in enumerate(cluster):
            rest = cluster[pos + 1 :]
            if letter in code:
                return "", -1
            if letter in module:
                target = rest or (args[i] if i < len(args) else "")
                return target.rsplit(".", 1)[-1], (i - 1 if rest else i)
            if letter in letters:
                if not rest:
                    i += 1  # the value is the next argument
                break
    if i < len(args):
        return args[i], i
    return "", -1


def _script_name(os_name: OsName, facts: ProcessFacts) -> str:
    """``obs`` for ``python3 -W ignore -X dev /tmp/obs``; empty when not an interpreter."""
    if len(facts.cmdline) < 2:
        return ""
    program = basename(os_name, facts.exe or facts.cmdline[0])
    args: Sequence[str] = facts.cmdline[1:]
    script = ""
    for _ in range(4):  # env python3 -W ignore obs: one interpreter starts another
        family = _interpreter(os_name, program)
        if not family:
            break
        script, index = _script_after_options(family, args)
        if not script:
            return ""
        program, args = script, args[index + 1 :]
    return basename(os_name, script) if script else ""


class Matcher:
    """Matches :class:`ProcessFacts` against an :class:`AppList` (pure, no I/O)."""

    def __init__(self, apps: AppList) -> None:
        self.list = apps
        self.os = apps.os
        self._by_name: dict[str, ProhibitedApp] = {}
        self._by_original: dict[str, ProhibitedApp] = {}
        self._by_bundle: dict[str, ProhibitedApp] = {}
        self._patterns: list[tuple[ArgPattern, ProhibitedApp]] = []
        for app in apps.apps:
            for name in app.names:
                self._by_name.setdefault(_normalise(self.os, name), app)
            for name in app.original_names:
                self._by_original.setdefault(_normalise(self.os, name), app)
            for bundle in app.bundle_ids:
                self._by_bundle.setdefault(bundle.casefold(), app)
            self._patterns.extend((pattern, app) for pattern in app.arg_patterns)
        self._pattern_programs = {p for pattern, _ in self._patterns for p in pattern.programs}
        self._permitted = apps.permitted_names
        self._essential = {_normalise(self.os, n) for n in apps.essential}
        self._essential_dirs = tuple(
            d.rstrip("/\\").casefold() if self.os == "windows" else d.rstrip("/")
            for d in apps.essential_dirs
        )
        self._remote = {_normalise(self.os, n) for n in apps.remote_servers}

    def _candidates(self, facts: ProcessFacts) -> list[tuple[str, str]]:
        """(how, name) pairs to look up: the executable first, then what the process says."""
        out: list[tuple[str, str]] = []
        if facts.exe:
            out.append(("exe", basename(self.os, facts.exe)))
        if script := _script_name(self.os, facts):
            out.append(("script", script))
        if facts.cmdline and facts.cmdline[0]:
            first = facts.cmdline[0]
            if self.os == "linux" and len(facts.cmdline) == 1 and not posixpath.isabs(first):
                first = first.split(" ")[0]  # a process that rewrote its argv into one string
            out.append(("cmdline", basename(self.os, first)))
        if facts.name:
            out.append(("name", facts.name))
        return out

    def _lookup(self, name: str) -> ProhibitedApp | None:
        for key in name_variants(self.os, name):
            if key in self._permitted:
                return None  # the exam permits this name: no shorter form of it matches
            if app := self._by_name.get(key):
                return app
        return None

    def _match_args(self, facts: ProcessFacts, programs: list[str]) -> Match | None:
        if not self._patterns or len(facts.cmdline) < 2:
            return None
        keys = {k for p in programs for k in name_variants(self.os, p)}
        if not keys & self._pattern_programs:
            return None
        args = {a.casefold() for a in facts.cmdline[1:]}
        for pattern, app in self._patterns:
            program = next((k for k in pattern.programs if k in keys), None)
            if program is None:
                continue
            token = next((t for t in pattern.any_of if t in args), None)
            if token is not None:
                return Match(app, facts, "args", f"{program} {token}")
        return None

    def match(self, facts: ProcessFacts) -> Match | None:
        """The prohibited app this process is, or None."""
        candidates = self._candidates(facts)
        for how, name in candidates:
            app = self._lookup(name)
            if app is not None:
                return Match(app, facts, how, name)
        if found := self._match_args(facts, [n for how, n in candidates if how != "name"]):
            return found
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
            prefix = facts.name.casefold()
            for key, app in self._by_name.items():
                if key.startswith(prefix):
                    return Match(app, facts, "name", facts.name)
        return None

    def _system_executable(self, facts: ProcessFacts) -> bool:
        """The executable lives in a system folder and only root can change it."""
        exe = facts.exe.casefold() if self.os == "windows" else facts.exe
        sep = "\\" if self.os == "windows" else "/"
        folder = exe.rsplit(sep, 1)[0] if sep in exe else ""
        if not any(folder == d or folder.startswith(d + sep) for d in self._essential_dirs):
            return False
        if self.os == "windows":
            return True  # WORKAROUND(no Authenticode check yet): the folder is admin-only
        return facts.exe_owner == 0 and not facts.exe_mode & 0o022

    def is_essential(self, facts: ProcessFacts) -> bool:
        """System processes never touched: pid 0/1, kernel threads, essential executables.

        An essential process is recognised by its real executable (name, folder, owner),
        never by ``argv[0]`` or ``comm``: ``exec -a pipewire obs`` is not pipewire.
        """
        if facts.pid in (0, 1):
            return True
        if self.os == "linux" and (facts.pid == 2 or facts.ppid == 2):
            return True  # kthreadd and the kernel threads it spawns
        if self.os == "linux" and not facts.exe and not facts.cmdline and facts.pid > 0:
            # kernel threads have no cmdline; a user process always has one
            return facts.ppid in (0, 2)
        if not facts.exe or not self._system_executable(facts):
            return False
        return _normalise(self.os, basename(self.os, facts.exe)) in self._essential

    def remote_server(self, facts: ProcessFacts) -> str | None:
        """The remote-desktop server name this process is, or None."""
        for _, name in self._candidates(facts):
            if any(k in self._remote for k in name_variants(self.os, name)):
                return name
        return None


def names_of(matches: Sequence[Match]) -> list[str]:
    """Distinct app names, in order, for messages."""
    out: list[str] = []
    for m in matches:
        if m.app.name not in out:
            out.append(m.app.name)
    return out
