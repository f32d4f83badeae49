"""Safe Exam Browser exam keys: the Config Key, our Browser Exam Key and the per-URL hashes.

The **Config Key** (CK) is computed exactly as Safe Exam Browser does: the lower-case hex
SHA-256 of the UTF-8 "SEB-JSON" of the settings dictionary (:func:`seb_json`). The same
algorithm gives a Lockdown exam configuration its CK, over the dictionary of the options
the configuration sets (dotted option names -> validated values, see :func:`config_key`).

The **Browser Exam Key** (BEK) covers what the exam enforces on this computer: the build,
the isolation mode of the display and the layered effective settings (defaults <
organisation file < exam), so any local change to what is enforced changes the key the
exam server checks. Ours is (documented for IT staff in ``docs/exam-keys.md``)::

    BEK = hex(HMAC-SHA256(key = examKeySalt bytes,
                          msg = "Lockdown BEK v2" LF version LF "build: " kind LF identity
                                LF "isolation: " mode LF "settings: " settings-hash LF CK))

where kind is ``installed`` or ``development``, identity the SHA-256 over the shipped code
and resources (:mod:`lockdown.build`), and the settings hash the SHA-256 of the SEB-JSON
of the enforced effective settings (:func:`settings_hash`).

For a request to ``url`` (its ``#fragment`` removed) the client sends
``X-SafeExamBrowser-ConfigKeyHash = sha256hex(url + CK)`` and
``X-SafeExamBrowser-RequestHash = sha256hex(url + BEK)`` (:meth:`ExamKeys.hashes_for`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from lockdown.build import Build
from lockdown.build import current as current_build
from lockdown.config.settings import ConfigError

#: Removed from dictionaries at every level before hashing (SEB writes its own version there).
ORIGINATOR_VERSION: Final = "originatorVersion"
BEK_LABEL: Final = "Lockdown BEK v2"
MAX_DEPTH: Final = 64
_HEX64: Final = re.compile(r"[0-9a-f]{64}")


# -- SEB-JSON and the Config Key ----------------------------------------------------------


def _sort_key(key: str) -> tuple[str, str]:
    # Case-insensitive; on a tie lower case first ("allowWlan" before "allowWLAN"):
    # swapping the case makes lower-case letters compare as the smaller upper-case ones.
    return (key.lower(), key.swapcase())


def _real(value: float) -> str:
    """A real as SEB for Windows writes it: .NET Framework's ``Double.ToString()``.

    That is the general format with 15 significant digits: trailing zeros dropped (``1.0``
    is ``1``), scientific notation when the decimal exponent is below -4 or at least 15,
    with an upper-case ``E``, a sign and at least two digits (``1E+20``, ``1E-05``);
    negative zero is ``0``; the non-finite values are ``NaN``, ``Infinity`` and
    ``-Infinity``. Python's ``format(x, ".15G")`` follows the same rules for finite values.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "0"
    return format(value, ".15G")


def _date(value: datetime) -> str:
    # Moodle's form (``+00:00``, quoted); fractional seconds only when the date has them.
    moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return moment.isoformat()


def _write(value: object, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"settings nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        out.append("{")
        first = True
        for key in sorted((k for k in value if k != ORIGINATOR_VERSION), key=_sort_key):
            item = value[key]
            if isinstance(item, Mapping) and not _has_content(item):
                continue  # SEB for Windows: a dictionary value with no entries is left out
            if not first:
                out.append(",")
            first = False
            out.append(f'"{key}":')
            _write(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, str):
        out.append(f'"{value}"')
    elif isinstance(value, bool):
        out.append("true" if value else "false")
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_real(value))
    elif isinstance(value, bytes | bytearray):
        out.append('"' + base64.b64encode(bytes(value)).decode("ascii") + '"')
    elif isinstance(value, datetime):
        out.append(f'"{_date(value)}"')
    elif isinstance(value, Sequence):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _write(item, out, depth + 1)
        out.append("]")
    else:
        raise TypeError(f"cannot write {type(value).__name__} in SEB-JSON")


def _has_content(value: Mapping[str, Any]) -> bool:
    """SEB for Windows' rule: a dictionary has content when it has any entry at all.

    Its entries are counted as parsed, before ``originatorVersion`` is removed and before
    its own empty dictionaries are left out: ``{"originatorVersion": "x"}`` and
    ``{"d": {}}`` are written as ``{}``; only ``{}`` itself is left out.
    """
    return len(value) > 0


def seb_json(settings: Mapping[str, Any]) -> str:
    """The SEB-JSON text of a settings dictionary, as Safe Exam Browser hashes it.

    SEB for Windows' rules (``Json.cs`` of SafeExamBrowser/seb-win-refactoring), everywhere
    (``.seb`` files and Lockdown configurations alike): ``originatorVersion`` is removed at
    every level; a dictionary *value* with no entries at all is left out, while an array
    keeps every item, ``{}`` included (:func:`_has_content`); keys are sorted
    case-insensitively with lower case first on a tie; arrays keep their order; no
    whitespace and no escaping; data is written as base64, reals as .NET Framework writes
    them (:func:`_real`: ``1``, ``0.5``, ``1E+20``). Dates follow Moodle's form, ISO 8601
    in UTC (``1940-10-09T22:13:56+00:00``; SEB versions write dates differently).
    """
    out: list[str] = []
    _write(settings, out, 0)
    return "".join(out)


def config_key(settings: Mapping[str, Any]) -> str:
    """Lower-case hex SHA-256 of the UTF-8 SEB-JSON of ``settings``.

    For a ``.seb`` file ``settings`` is its plist dictionary; for a Lockdown exam
    configuration it is the option values it sets (``ExamConfig.values``: dotted option
    names, validated values, URL rules with their defaults filled in).
    """
    return hashlib.sha256(seb_json(settings).encode("utf-8")).hexdigest()


# -- the Browser Exam Key -----------------------------------------------------------------

#: Isolation modes of the exam display. "shared": the candidate's own desktop; "isolated":
#: an X server of its own that only Lockdown can reach (Linux, ``guards.display_isolation``).
ISOLATION_MODES: Final = ("shared", "isolated")
#: Options that decide which configurations load, not what the exam enforces; the salt
#: is the HMAC key itself. Every other effective option is covered by the key.
_NOT_ENFORCED_PREFIXES: Final = ("config.",)
_NOT_ENFORCED: Final = frozenset({"browser.exam_key_salt"})


def enforced_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The effective options that decide what the exam enforces (see :data:`_NOT_ENFORCED`)."""
    return {
        key: value
        for key, value in settings.items()
        if key not in _NOT_ENFORCED and not key.startswith(_NOT_ENFORCED_PREFIXES)
    }


def settings_hash(settings: Mapping[str, Any]) -> str:
    """SHA-256 hex of the SEB-JSON of the enforced effective settings (defaults included)."""
    return config_key(enforced_settings(settings))


def isolation_modes(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The isolation modes an exam with these settings may run in (one key each)."""
    policy = settings.get("guards.display_isolation", "preferred")
    if policy == "required":
        return ("isolated",)
    if policy == "off":
        return ("shared",)
    return ISOLATION_MODES


def browser_exam_key(
    config_key: str,
    salt_hex: str,
    *,
    settings: str,
    mode: str,
    build: Build | None = None,
) -> str:
    """Our Browser Exam Key: HMAC-SHA256 keyed with the salt over what is enforced.

    The message is ``"Lockdown BEK v2"``, the version, ``build: installed|development``,
    the build identity, ``isolation: MODE``, ``settings: HASH`` (:func:`settings_hash`
    of the layered effective settings) and the Config Key, one per line.
    """
    if len(salt_hex) % 2:
        raise ConfigError(
            f"exam key salt {salt_hex[:16]!r}… has an odd number of hex digits; "
            "ask your exam organiser for a correct configuration"
        )
    try:
        salt = bytes.fromhex(salt_hex)
    except ValueError:
        raise ConfigError(
            f"exam key salt {salt_hex[:16]!r} is not hexadecimal; "
            "ask your exam organiser for a correct configuration"
        ) from None
    this = build if build is not None else current_build()
    message = "\n".join(
        (
            BEK_LABEL,
            this.version,
            f"build: {this.kind}",
            this.identity,
            f"isolation: {mode}",
            f"settings: {settings}",
            config_key,
        )
    ).encode()
    return hmac.new(salt, message, hashlib.sha256).hexdigest()


def url_hash(url: str, key: str) -> str:
    """``sha256hex(utf8(url + key))`` with the URL's ``#fragment`` removed."""
    bare = url.split("#", 1)[0]
    return hashlib.sha256((bare + key).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ExamKeys:
    """The two keys of one exam (lower-case hex) and the per-URL hashes derived from them."""

    config_key: str
    browser_exam_key: str
    #: the isolation mode the Browser Exam Key was derived for
    mode: str = "shared"
    #: :func:`settings_hash` of the effective settings it covers
    settings_hash: str = ""

    def hashes_for(self, url: str) -> tuple[str, str]:
        """(``X-SafeExamBrowser-ConfigKeyHash``, ``X-SafeExamBrowser-RequestHash``) for ``url``."""
        return url_hash(url, self.config_key), url_hash(url, self.browser_exam_key)


def exam_keys(
    config_key: str, settings: Mapping[str, Any], *, mode: str, build: Build | None = None
) -> ExamKeys:
    """The keys of an exam whose effective (layered) settings are ``settings``."""
    digest = settings_hash(settings)
    bek = browser_exam_key(
        config_key,
        str(settings.get("browser.exam_key_salt", "")),
        settings=digest,
        mode=mode,
        build=build,
    )
    return ExamKeys(config_key, bek, mode, digest)


def keys_for_values(values: Mapping[str, Any], settings: Mapping[str, Any], mode: str) -> ExamKeys:
    """Keys of a Lockdown exam configuration: its option values, the effective settings."""
    return exam_keys(config_key(values), settings, mode=mode)


class HasConfigKey(Protocol):
    """A loaded ``.seb`` file (``seb.SebConfig``): its Config Key, as SEB computes it."""

    @property
    def config_key(self) -> str: ...


def keys_for_seb(cfg: HasConfigKey, settings: Mapping[str, Any], mode: str) -> ExamKeys:
    """Keys of a loaded ``.seb`` file (the Config Key over the file alone, as SEB's)."""
    return exam_keys(cfg.config_key, settings, mode=mode)
