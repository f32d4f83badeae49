"""Layered, frozen settings: defaults < organisation file < exam configuration.

The organisation file (IT staff, one per machine) may set any option, lock options so no
exam configuration overrides them, and holds the trusted config-signing keys. An exam
configuration may set only options declared ``exam=True``. The resulting
:class:`Settings` is immutable: exam settings are frozen once the exam starts.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal

from lockdown import log
from lockdown.config.schema import OPTIONS, Option
from lockdown.config.types import InvalidValue
from lockdown.errors import UserError

Source = Literal["default", "organisation", "exam"]
SCHEMA: Final[Mapping[str, Option]] = MappingProxyType({o.key: o for o in OPTIONS})
ORGANISATION_MAX_BYTES: Final = 256 * 1024


class ConfigError(UserError):
    """A configuration file or value is wrong; the message names the file, key and value."""


class UndeclaredOption(KeyError):
    """Code asked for an option the schema does not declare (a programming error)."""


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    return value


def convert(key: str, raw: object, *, origin: str) -> Any:
    """Validate one raw value for ``key``; the error names origin, key, value and expectation."""
    option = SCHEMA.get(key)
    if option is None:
        raise ConfigError(f"{origin}: unknown option {key!r}; see `lockdown settings` for the list")
    try:
        return _freeze(option.type.convert(raw))
    except InvalidValue as exc:
        raise ConfigError(f"{origin}: option {key!r}: {exc}") from None


def flatten(table: Mapping[str, Any], *, origin: str, prefix: str = "") -> dict[str, Any]:
    """Turn nested TOML tables (``[guards] clipboard = …``) into dotted keys, validated."""
    out: dict[str, Any] = {}
    for name, raw in table.items():
        key = f"{prefix}{name}"
        if key in SCHEMA:
            out[key] = convert(key, raw, origin=origin)
        elif isinstance(raw, Mapping) and any(k.startswith(key + ".") for k in SCHEMA):
            out.update(flatten(raw, origin=origin, prefix=key + "."))
        else:
            raise ConfigError(
                f"{origin}: unknown option {key!r}; see `lockdown settings` for the list"
            )
    return out


@dataclass(frozen=True)
class Organisation:
    """The organisation layer: values, locked keys, where it came from."""

    values: Mapping[str, Any] = field(default_factory=dict)
    locked: frozenset[str] = frozenset()
    path: Path | None = None
    #: SHA-256 (hex) of the file's bytes, None without a file
    sha256: str | None = None

    def as_record(self) -> dict[str, Any]:
        """Where the organisation layer came from, for the journal."""
        return {"path": str(self.path) if self.path else None, "sha256": self.sha256}

    @property
    def trusted_keys(self) -> tuple[str, ...]:
        keys: tuple[str, ...] = self.values.get("config.trusted_keys", ())
        return keys

    @property
    def allow_unsigned(self) -> bool:
        return bool(self.values.get("config.allow_unsigned", False))


def parse_organisation(data: bytes, *, origin: str) -> Organisation:
    if len(data) > ORGANISATION_MAX_BYTES:
        raise ConfigError(f"{origin}: larger than {ORGANISATION_MAX_BYTES // 1024} KiB")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: not a UTF-8 text file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    except ValueError:  # tomllib on an integer longer than Python converts (4,300 digits)
        raise ConfigError(f"{origin}: not valid TOML (a number with far too many digits)") from None
    unknown = sorted(set(doc) - {"settings", "locked"})
    if unknown:
        raise ConfigError(
            f"{origin}: unknown top-level key {unknown[0]!r}; expected settings, locked"
        )
    settings = doc.get("settings", {})
    if not isinstance(settings, dict):
        raise ConfigError(f"{origin}: 'settings' must be a table")
    values = flatten(settings, origin=origin)
    locked_raw = doc.get("locked", [])
    if not isinstance(locked_raw, list) or not all(isinstance(k, str) for k in locked_raw):
        raise ConfigError(f"{origin}: 'locked' must be a list of option names")
    for key in locked_raw:
        if key not in SCHEMA:
            raise ConfigError(f"{origin}: 'locked' names unknown option {key!r}")
    return Organisation(values=MappingProxyType(values), locked=frozenset(locked_raw))


def load_organisation(
    path: Path, *, required: bool = False, problem: Callable[[Path], str | None] | None = None
) -> Organisation:
    """Read the organisation file; a missing default file means an unmanaged machine.

    ``problem`` (the system file's trust check) says why the file cannot have come from
    IT staff (owned by another user, writable by others…): it is then refused.
    """
    why = problem(path) if problem is not None else None
    if why is not None:
        raise ConfigError(
            f"{path}: refused: {why}; the organisation file and the folders above it must "
            "be owned by root (Administrators on Windows) and writable by nobody else — ask "
            "IT staff to fix the ownership and permissions (chown root:root, chmod go-w)"
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if required:
            raise ConfigError(f"{path}: organisation file not found; check the path") from None
        log.config.info("No organisation file at %s; using defaults", path)
        return Organisation()
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected the organisation file") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the organisation file ({exc.strerror}); "
            "ask IT staff to check its permissions"
        ) from None
    org = parse_organisation(data, origin=str(path))
    digest = hashlib.sha256(data).hexdigest()
    return Organisation(values=org.values, locked=org.locked, path=path, sha256=digest)


def choose_organisation(explicit: str | None) -> Organisation:
    """The organisation layer of this run.

    ``explicit`` (``--organisation FILE``) names a file that must exist; a development
    build's override variable stands in for the system file; otherwise the system file of this OS, refused unless
    only administrators can change it.
    """
    from lockdown import paths
    from lockdown.platform.trust import system_trust

    if explicit:
        return load_organisation(Path(explicit), required=True)
    override = paths.organisation_override()
    if override is not None:  # missing: an unmanaged machine, as for the system file
        return load_organisation(override)
    trust = system_trust()
    return load_organisation(Path(trust.organisation_file()), problem=trust.file_problem)


class Settings(Mapping[str, Any]):
    """Immutable option values. Reading an undeclared option raises :class:`UndeclaredOption`."""

    __slots__ = ("_sources", "_values", "ignored")

    def __init__(
        self,
        values: Mapping[str, Any],
        sources: Mapping[str, Source],
        ignored: tuple[str, ...] = (),
    ) -> None:
        self._values = MappingProxyType(dict(values))
        self._sources = MappingProxyType(dict(sources))
        #: exam values dropped because the organisation locked their option
        self.ignored = ignored

    def __getitem__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise UndeclaredOption(
                f"option {key!r} is not declared in the settings schema"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "ignored"):
            raise AttributeError("settings are frozen")
        object.__setattr__(self, name, value)

    def source(self, key: str) -> Source:
        self[key]
        return self._sources[key]

    def changed(self) -> dict[str, Any]:
        """Options whose value does not come from the defaults."""
        return {k: v for k, v in self._values.items() if self._sources[k] != "default"}

    @classmethod
    def defaults(cls) -> Settings:
        return layer(Organisation(), {})


def layer(organisation: Organisation, exam_values: Mapping[str, Any]) -> Settings:
    """Combine the layers; locked organisation options win over the exam's values."""
    values: dict[str, Any] = {o.key: _freeze(o.default) for o in OPTIONS}
    sources: dict[str, Source] = dict.fromkeys(values, "default")
    for key, value in organisation.values.items():
        values[key] = value
        sources[key] = "organisation"
    ignored = []
    for key, value in exam_values.items():
        if not SCHEMA[key].exam:
            raise ConfigError(f"option {key!r} may be set only by the organisation file")
        if key in organisation.locked:
            log.config.warning(
                "Exam configuration sets %s, locked by the organisation; ignored", key
            )
            ignored.append(key)
            continue
        values[key] = value
        sources[key] = "exam"
    return Settings(values, sources, tuple(ignored))
