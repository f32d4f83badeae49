"""Safe Exam Browser exam keys: the Config Key, our Browser Exam Key and the per-URL hashes.

The **Config Key** (CK) is computed exactly as Safe Exam Browser does: the lower-case hex
SHA-256 of the UTF-8 "SEB-JSON" of the settings dictionary (:func:`seb_json`). The same
algorithm gives a Lockdown exam configuration its CK, over the dictionary of the options
the configuration sets (dotted option names -> validated values, see :func:`config_key`).

The **Browser Exam Key** (BEK) identifies the browser build together with the config. Ours
is (documented for IT staff in ``docs/exam-keys.md``)::

    BEK = hex(HMAC-SHA256(key = examKeySalt bytes,
                          msg = "Lockdown BEK v1\\n" + version + "\\n" + build identity
                                + "\\n" + CK))

where the build identity is the SHA-256 over the package's own source files
(:func:`build_identity`), deterministic per release.

For a request to ``url`` (its ``#fragment`` removed) the client sends
``X-SafeExamBrowser-ConfigKeyHash = sha256hex(url + CK)`` and
``X-SafeExamBrowser-RequestHash = sha256hex(url + BEK)`` (:meth:`ExamKeys.hashes_for`).
"""

from __future__ import annotations

import argparse
import base64
import functools
import getpass
import hashlib
import hmac
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lockdown import __version__, log
from lockdown.config.settings import ConfigError

if TYPE_CHECKING:
    from lockdown.config.seb import SebConfig

#: Removed from dictionaries at every level before hashing (SEB writes its own version there).
ORIGINATOR_VERSION: Final = "originatorVersion"
#: The file a packaged build ships when its ``.py`` sources are not on disk (frozen bundles).
BUILD_IDENTITY_FILE: Final = "build-identity.txt"
BEK_LABEL: Final = "Lockdown BEK v1"
MAX_DEPTH: Final = 64
_HEX64: Final = re.compile(r"[0-9a-f]{64}")
PACKAGE_ROOT: Final = Path(__file__).resolve().parent.parent


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


def _identity_of(root: Path) -> str | None:
    files = sorted(
        (p for p in root.rglob("*.py") if "__pycache__" not in p.parts),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).hexdigest().encode("ascii") + b"\n")
    return digest.hexdigest()


def build_identity(root: Path | None = None) -> str:
    """SHA-256 hex over the package's own ``.py`` files (path and content hash of each).

    A frozen bundle without sources ships ``build-identity.txt`` (computed from the same
    sources at build time) in the package folder; that file wins when present.
    """
    if root is None:
        return _default_build_identity()
    return _compute_identity(root)


def _compute_identity(root: Path) -> str:
    shipped = root / BUILD_IDENTITY_FILE
    if shipped.is_file():
        text = shipped.read_text(encoding="ascii", errors="replace").strip().lower()
        if _HEX64.fullmatch(text):
            return text
        log.config.warning("%s is not a SHA-256; computing the build identity", shipped)
    identity = _identity_of(root)
    if identity is None:
        log.config.warning("No package sources under %s; the Browser Exam Key is weak", root)
        return hashlib.sha256(f"lockdown {__version__}".encode()).hexdigest()
    return identity


@functools.cache
def _default_build_identity() -> str:
    identity = _compute_identity(PACKAGE_ROOT)
    log.config.debug("Build identity %s", identity)
    return identity


def browser_exam_key(config_key: str, salt_hex: str, *, identity: str | None = None) -> str:
    """Our Browser Exam Key: HMAC-SHA256 keyed with the salt over version, build and CK."""
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
    build = identity if identity is not None else build_identity()
    message = f"{BEK_LABEL}\n{__version__}\n{build}\n{config_key}".encode()
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

    def hashes_for(self, url: str) -> tuple[str, str]:
        """(``X-SafeExamBrowser-ConfigKeyHash``, ``X-SafeExamBrowser-RequestHash``) for ``url``."""
        return url_hash(url, self.config_key), url_hash(url, self.browser_exam_key)


def keys_for_values(values: Mapping[str, Any], salt_hex: str) -> ExamKeys:
    """Keys of a Lockdown exam configuration, from the option values it sets."""
    ck = config_key(values)
    return ExamKeys(config_key=ck, browser_exam_key=browser_exam_key(ck, salt_hex))


def keys_for_seb(cfg: SebConfig) -> ExamKeys:
    """Keys of a loaded ``.seb`` file (salt from its ``examKeySalt``)."""
    salt = str(cfg.values.get("browser.exam_key_salt", ""))
    return ExamKeys(
        config_key=cfg.config_key, browser_exam_key=browser_exam_key(cfg.config_key, salt)
    )


# -- `lockdown config keys FILE` ----------------------------------------------------------


MAX_PASSWORD_FILE_BYTES: Final = 64 * 1024


def read_password_file(spec: str) -> str:
    """The password in the first line of file ``spec``, or of standard input for ``-``.

    The line ends at the first line break (``\n`` or ``\r\n``), which is not part of the
    password; everything else is, spaces included. Every failure is one line.
    """
    origin = "standard input" if spec == "-" else spec
    try:
        if spec == "-":
            line = sys.stdin.readline(MAX_PASSWORD_FILE_BYTES)
        else:
            with open(spec, encoding="utf-8", newline="") as fh:
                line = fh.readline(MAX_PASSWORD_FILE_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{origin}: password file not found; check the path") from None
    except IsADirectoryError:
        raise ConfigError(f"{origin}: is a folder, expected a password file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{origin}: the password file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{origin}: cannot read the password file ({exc.strerror})") from None
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise ConfigError(
            f"{origin}: the password file is empty; put the password on its first line"
        )
    log.register_secret(password)
    return password


def _password_source(
    given: str | None, origin: str, *, password_file: str | None = None
) -> Callable[[int], str | None]:
    """Where a ``.seb`` password comes from: ``--password``, ``--password-file`` or the terminal.

    A file is read only when the ``.seb`` file asks for a password, once; a given
    password is tried once; the terminal is asked up to three times.
    """
    read: list[str] = []

    def ask(attempt: int) -> str | None:
        if password_file is not None:
            if attempt > 1:
                return None
            if not read:
                read.append(read_password_file(password_file))
            return read[0]
        if given is not None:
            return given if attempt == 1 else None
        if not sys.stdin.isatty():
            raise ConfigError(
                f"{origin}: the file is password-protected and there is no terminal to ask "
                "on; pass --password-file FILE (or - for standard input)"
            )
        try:
            return getpass.getpass(f"Password for {origin} (try {attempt} of 3): ")
        except EOFError:
            return None

    return ask


def password_source_for(args: argparse.Namespace, origin: str) -> Callable[[int], str | None]:
    """The password source of a command with ``--password`` / ``--password-file``."""
    return _password_source(
        getattr(args, "password", None),
        origin,
        password_file=getattr(args, "password_file", None),
    )


def keys_for_file(path: Path, *, password: Callable[[int], str | None]) -> ExamKeys:
    """Keys of a ``.seb`` file or a Lockdown exam configuration (told apart by content)."""
    from lockdown.config import examfile, seb

    data = examfile.read_file(path)
    origin = str(path)
    if path.suffix.lower() == ".seb" or seb.looks_like_seb(data):
        return keys_for_seb(seb.load_seb(data, origin=origin, password=password))
    body, _ = examfile.split_signature(data)
    _, values = examfile.parse_body(body, origin=origin)
    try:
        return keys_for_values(values, str(values.get("browser.exam_key_salt", "")))
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


def main_keys(args: argparse.Namespace) -> int:
    """``lockdown config keys FILE [--password-file FILE|-]``: print the two keys, labelled."""
    path = Path(args.file)
    keys = keys_for_file(path, password=password_source_for(args, str(path)))
    print(f"Config Key: {keys.config_key}")
    print(f"Browser Exam Key: {keys.browser_exam_key}")
    return 0
