"""Typed option values: each type converts and validates raw TOML values and documents itself."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit


class InvalidValue(ValueError):
    """A value does not fit an option's type; the message says what was expected."""


class OptionType(Protocol):
    """Converts a raw value (from TOML or a .seb file) to the option's Python value."""

    def convert(self, value: object) -> Any: ...

    def describe(self) -> str:
        """A short phrase for docs and errors, e.g. ``an integer from 1 to 16``."""
        ...


def _fmt(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class Bool:
    def convert(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        raise InvalidValue(f"expected true or false, got {_fmt(value)}")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Int:
    minimum: int | None = None
    maximum: int | None = None

    def convert(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        return value

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f"an integer of at least {self.minimum}"
        return "an integer"


@dataclass(frozen=True)
class Float:
    minimum: float | None = None
    maximum: float | None = None

    def convert(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        number = float(value)
        if not math.isfinite(number):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        return number

    def describe(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f"a number from {self.minimum:g} to {self.maximum:g}"
        return "a number"


@dataclass(frozen=True)
class Str:
    pattern: str | None = None
    pattern_doc: str = ""
    max_length: int = 4096

    def convert(self, value: object) -> str:
        if not isinstance(value, str):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if len(value) > self.max_length:
            raise InvalidValue(f"expected at most {self.max_length} characters")
        if self.pattern is not None and value and not re.fullmatch(self.pattern, value):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        return value

    def describe(self) -> str:
        return self.pattern_doc or "a text"


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of values; each value is documented."""

    values: Mapping[str, str]

    def convert(self, value: object) -> str:
        if not isinstance(value, str) or value not in self.values:
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(f'"{v}"' for v in self.values)


_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+)ms)?")


@dataclass(frozen=True)
class Duration:
    """Seconds as a number, or text like ``90s``, ``5m``, ``1h30m``, ``250ms``."""

    minimum: float = 0.0
    maximum: float = 7 * 24 * 3600.0

    def convert(self, value: object) -> float:
        seconds: float
        if isinstance(value, bool):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if isinstance(value, int | float):
            seconds = float(value)
        elif (
            isinstance(value, str)
            and value
            and (m := _DURATION.fullmatch(value))
            and any(m.groups())
        ):
            h, mi, s, ms = m.groups()
            seconds = int(h or 0) * 3600 + int(mi or 0) * 60 + float(s or 0) + int(ms or 0) / 1000.0
        else:
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if not math.isfinite(seconds) or not self.minimum <= seconds <= self.maximum:
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        return seconds

    def describe(self) -> str:
        return (
            f"a duration from {self.minimum:g}s to {self.maximum:g}s "
            '(seconds, or text like "90s", "5m", "1h30m")'
        )


@dataclass(frozen=True)
class Url:
    """An absolute URL with one of the allowed schemes; empty when ``optional``."""

    schemes: tuple[str, ...] = ("http", "https")
    optional: bool = True

    def convert(self, value: object) -> str:
        if not isinstance(value, str):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if value == "" and self.optional:
            return value
        try:
            parts = urlsplit(value)
        except ValueError as exc:
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}") from exc
        if parts.scheme not in self.schemes or (
            parts.scheme in ("http", "https") and not parts.hostname
        ):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if any(ch.isspace() for ch in value):
            raise InvalidValue(f"expected {self.describe()} without spaces, got {_fmt(value)}")
        return value

    def describe(self) -> str:
        schemes = " or ".join(f"{s}://" for s in self.schemes)
        return f"a {schemes} URL" + (' (or "" for none)' if self.optional else "")


@dataclass(frozen=True)
class Record:
    """A table with named, typed fields (e.g. one URL filter rule)."""

    fields: Mapping[str, OptionType]
    defaults: Mapping[str, object] = field(default_factory=dict)

    def convert(self, value: object) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise InvalidValue(f"unknown field {unknown[0]!r}; expected {self.describe()}")
        out: dict[str, Any] = {}
        for name, kind in self.fields.items():
            if name in value:
                try:
                    out[name] = kind.convert(value[name])
                except InvalidValue as exc:
                    raise InvalidValue(f"field {name!r}: {exc}") from None
            elif name in self.defaults:
                out[name] = self.defaults[name]
            else:
                raise InvalidValue(f"missing field {name!r}; expected {self.describe()}")
        return out

    def describe(self) -> str:
        parts = []
        for name, kind in self.fields.items():
            opt = f" (default {self.defaults[name]!r})" if name in self.defaults else ""
            parts.append(f"{name}: {kind.describe()}{opt}")
        return "a table with " + "; ".join(parts)


@dataclass(frozen=True)
class List:
    item: OptionType
    max_items: int = 1000

    def convert(self, value: object) -> tuple[Any, ...]:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InvalidValue(f"expected {self.describe()}, got {_fmt(value)}")
        if len(value) > self.max_items:
            raise InvalidValue(f"expected at most {self.max_items} items, got {len(value)}")
        out = []
        for index, item in enumerate(value):
            try:
                out.append(self.item.convert(item))
            except InvalidValue as exc:
                raise InvalidValue(f"item {index + 1}: {exc}") from None
        return tuple(out)

    def describe(self) -> str:
        return f"a list of {self.item.describe()}"
