"""Safe Exam Browser ``.seb`` files: read the container, parse the plist, map it onto our options.

Container (see ``docs/exam-keys.md``): plain XML (``<?xml``), optionally gzipped, or
``gzip(prefix || payload)`` with a 4-byte prefix:

- ``plnd``: the payload is gzip(XML);
- ``pswd``: the payload is an RNCryptor v3 (or v2) password blob whose plaintext is
  gzip(XML); the password is asked through a callback, three tries;
- ``pwcc`` (client configuration, encrypted with the SEB admin password), ``pkhs`` and
  ``phsk`` (encrypted for a certificate in the machine's identity store): refused with
  one line saying what to ask for instead.

The settings dictionary is an Apple XML property list (dict, array, string, integer,
real, true/false, date, data), read in two streaming expat passes: a pre-scan that builds
nothing and refuses too many elements, too deep nesting and over-long integers, then the
tree (:func:`parse_plist`; plistlib is not used: it builds the whole tree before any
check and cannot read SEB for Windows' dates with fractional seconds). The SEB keys listed in
:data:`MAPPED` become our option values (validated by the settings schema); every other
key is logged on ``lockdown.config`` and listed in :attr:`SebConfig.ignored`.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import hmac
import os
import re
import xml.parsers.expat
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from lockdown import log
from lockdown.config import examkeys
from lockdown.config.settings import ConfigError, Organisation, convert

MAX_SEB_BYTES: Final = 8 * 1024 * 1024
MAX_XML_BYTES: Final = 16 * 1024 * 1024
MAX_PASSWORD_TRIES: Final = 3
#: elements (keys and values) a settings property list may hold; a full SEB file has ~1,000
MAX_ELEMENTS: Final = 100_000
#: characters of an ``<integer>``: SEB's integers are 32 or 64 bits
MAX_INTEGER_CHARS: Final = 24
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1
GZIP_MAGIC: Final = b"\x1f\x8b"
PREFIX_PLAIN: Final = b"plnd"
PREFIX_PASSWORD: Final = b"pswd"
PREFIX_CLIENT: Final = b"pwcc"
PREFIX_CERT: Final = b"pkhs"
PREFIX_CERT_SYMMETRIC: Final = b"phsk"
PREFIXES: Final = (PREFIX_PLAIN, PREFIX_PASSWORD, PREFIX_CLIENT, PREFIX_CERT, PREFIX_CERT_SYMMETRIC)

# RNCryptor: version, options, encryption salt, HMAC salt, IV, ciphertext, HMAC.
RNC_VERSION: Final = 3
RNC_OPTIONS_PASSWORD: Final = 1
RNC_SALT: Final = 8
RNC_IV: Final = 16
RNC_HMAC: Final = 32
RNC_HEADER: Final = 2 + RNC_SALT + RNC_SALT + RNC_IV
RNC_ROUNDS: Final = 10_000
_UTF8_BOM: Final = b"\xef\xbb\xbf"

PasswordSource = Callable[[int], str | None]


@dataclass(frozen=True)
class SebConfig:
    """A loaded ``.seb`` file: our option values, the SEB keys we ignore, its Config Key."""

    #: our option keys -> values validated through :func:`lockdown.config.settings.convert`
    values: Mapping[str, Any]
    #: SEB keys of the settings dictionary that map onto nothing of ours
    ignored: tuple[str, ...]
    #: lower-case hex Config Key, exactly as Safe Exam Browser computes it
    config_key: str
    #: the settings dictionary as parsed from the plist
    plist: Mapping[str, Any]


class _Mismatch(ValueError):
    """A SEB value does not have the type or range its mapping expects."""


# -- the container ------------------------------------------------------------------------


def _gunzip(data: bytes, *, origin: str, what: str) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_XML_BYTES + 1)
    except zlib.error:
        raise ConfigError(
            f"{origin}: the {what} is damaged (bad gzip data); download the .seb file again"
        ) from None
    if len(out) > MAX_XML_BYTES:
        raise ConfigError(
            f"{origin}: the {what} unpacks to more than {MAX_XML_BYTES // (1024 * 1024)} MiB; "
            "not a Safe Exam Browser configuration"
        )
    if not inflater.eof:
        raise ConfigError(
            f"{origin}: the {what} is truncated (gzip data ends early); "
            "download the .seb file again"
        )
    return out


def _xml_start(data: bytes) -> bytes:
    """``data`` without a UTF-8 byte order mark and leading white space."""
    return data.removeprefix(_UTF8_BOM).lstrip()


def _is_xml(data: bytes) -> bool:
    return _xml_start(data).startswith((b"<?xm", b"<plist", b"<!DOCTYPE plist"))


def looks_like_seb(data: bytes) -> bool:
    """True when ``data`` has the shape of a ``.seb`` file (not of a Lockdown TOML config)."""
    return data.startswith(GZIP_MAGIC) or _is_xml(data) or data[:4] in PREFIXES


def _xml_from(payload: bytes, *, origin: str, what: str) -> bytes:
    if payload.startswith(GZIP_MAGIC):
        payload = _gunzip(payload, origin=origin, what=what)
    if not _is_xml(payload):
        raise ConfigError(
            f"{origin}: the {what} holds no XML settings; the file is damaged or not a "
            "Safe Exam Browser configuration"
        )
    return _xml_start(payload)


def _keys(password: str, enc_salt: bytes, hmac_salt: bytes) -> tuple[bytes, bytes]:
    secret = password.encode("utf-8")
    return (
        hashlib.pbkdf2_hmac("sha1", secret, enc_salt, RNC_ROUNDS, 32),
        hashlib.pbkdf2_hmac("sha1", secret, hmac_salt, RNC_ROUNDS, 32),
    )


def _decrypt_blob(blob: bytes, *, origin: str, password: PasswordSource) -> bytes:
    if len(blob) < RNC_HEADER + RNC_IV + RNC_HMAC or (len(blob) - RNC_HEADER - RNC_HMAC) % 16:
        raise ConfigError(
            f"{origin}: the encrypted settings are truncated or damaged; "
            "download the .seb file again"
        )
    version, options = blob[0], blob[1]
    if version not in (2, 3) or options != RNC_OPTIONS_PASSWORD:
        raise ConfigError(
            f"{origin}: unsupported encryption format (version {version}, options {options}); "
            "ask your exam organiser to save the file again with a current Safe Exam Browser"
        )
    enc_salt = blob[2 : 2 + RNC_SALT]
    hmac_salt = blob[2 + RNC_SALT : 2 + 2 * RNC_SALT]
    iv = blob[2 + 2 * RNC_SALT : RNC_HEADER]
    signed, tag = blob[:-RNC_HMAC], blob[-RNC_HMAC:]
    ciphertext = blob[RNC_HEADER:-RNC_HMAC]
    wrong = False
    for attempt in range(1, MAX_PASSWORD_TRIES + 1):
        given = password(attempt)
        if given is None:
            if wrong:
                raise ConfigError(
                    f"{origin}: wrong password; ask your exam organiser for the right one"
                )
            raise ConfigError(
                f"{origin}: the file is password-protected and no password was given; "
                "ask your exam organiser for the password"
            )
        log.register_secret(given)
        try:
            enc_key, hmac_key = _keys(given, enc_salt, hmac_salt)
        except UnicodeEncodeError:  # a lone surrogate cannot be the password
            enc_key, hmac_key = b"", b""
        if hmac_key and hmac.compare_digest(
            hmac.new(hmac_key, signed, hashlib.sha256).digest(), tag
        ):
            return _aes_decrypt(enc_key, iv, ciphertext, origin=origin)
        wrong = True
        log.config.info("Wrong password for %s (try %d of %d)", origin, attempt, MAX_PASSWORD_TRIES)
    raise ConfigError(
        f"{origin}: wrong password {MAX_PASSWORD_TRIES} times; "
        "ask your exam organiser for the right one"
    )


def _aes_decrypt(key: bytes, iv: bytes, ciphertext: bytes, *, origin: str) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise ConfigError(
            f"{origin}: the encrypted settings are damaged (bad padding); "
            "download the .seb file again"
        ) from None


def encrypt_blob(
    plaintext: bytes, password: str, *, random: Callable[[int], bytes] = os.urandom
) -> bytes:
    """An RNCryptor v3 password blob (AES-256-CBC, HMAC-SHA256, PBKDF2-SHA1 10,000 rounds)."""
    enc_salt, hmac_salt, iv = random(RNC_SALT), random(RNC_SALT), random(RNC_IV)
    enc_key, hmac_key = _keys(password, enc_salt, hmac_salt)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(algorithms.AES(enc_key), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    signed = bytes([RNC_VERSION, RNC_OPTIONS_PASSWORD]) + enc_salt + hmac_salt + iv + ciphertext
    return signed + hmac.new(hmac_key, signed, hashlib.sha256).digest()


def write_seb(
    xml: bytes,
    *,
    password: str | None = None,
    random: Callable[[int], bytes] = os.urandom,
) -> bytes:
    """A ``.seb`` file: ``gzip(pswd || blob(gzip(xml)))`` with a password, else ``gzip(plnd || gzip(xml))``."""
    inner = gzip.compress(xml, mtime=0)
    if password is None:
        return gzip.compress(PREFIX_PLAIN + inner, mtime=0)
    return gzip.compress(PREFIX_PASSWORD + encrypt_blob(inner, password, random=random), mtime=0)


def unwrap(data: bytes, *, origin: str, password: PasswordSource) -> bytes:
    """The settings XML inside a ``.seb`` file (decrypting it when it has a password)."""
    if len(data) > MAX_SEB_BYTES:
        raise ConfigError(
            f"{origin}: larger than {MAX_SEB_BYTES // (1024 * 1024)} MiB; "
            "not a Safe Exam Browser configuration"
        )
    if not data.strip():
        raise ConfigError(f"{origin}: the file is empty; download the .seb file again")
    raw = _gunzip(data, origin=origin, what="file") if data.startswith(GZIP_MAGIC) else data
    if _is_xml(raw):
        return _xml_start(raw)
    prefix, payload = raw[:4], raw[4:]
    if prefix == PREFIX_PLAIN:
        return _xml_from(payload, origin=origin, what="settings")
    if prefix == PREFIX_PASSWORD:
        plaintext = _decrypt_blob(payload, origin=origin, password=password)
        return _xml_from(plaintext, origin=origin, what="decrypted settings")
    if prefix == PREFIX_CLIENT:
        raise ConfigError(
            f"{origin}: this .seb file configures a Safe Exam Browser client (pwcc, admin "
            "password), it does not start an exam; ask your exam organiser for the exam's .seb file"
        )
    if prefix in (PREFIX_CERT, PREFIX_CERT_SYMMETRIC):
        raise ConfigError(
            f"{origin}: this .seb file is encrypted for a certificate ({prefix.decode()}), which "
            "Lockdown cannot open; ask your exam organiser for a password-protected or plain .seb file"
        )
    raise ConfigError(
        f"{origin}: not a Safe Exam Browser configuration (unknown format); "
        "check that you chose the right file"
    )


# -- the property list --------------------------------------------------------------------


class _Refused(Exception):
    """The property list breaks a limit or a rule; the message says which (one line)."""


def _line(parser: xml.parsers.expat.XMLParserType) -> str:
    return f"line {parser.CurrentLineNumber}"


class _Prescan:
    """A streaming pass over the XML that builds nothing: counts elements, tracks nesting.

    It refuses too many elements, containers nested too deeply, over-long integers and
    entity declarations as soon as it meets them, so a hostile file (millions of empty
    ``<dict/>``, an unclosed ``<array>`` nested a million times) costs neither time nor
    memory before it is refused.
    """

    def __init__(self, parser: xml.parsers.expat.XMLParserType) -> None:
        self.parser = parser
        self.elements = 0
        self.open: list[bool] = []  # one entry per open element: is it a container?
        self.containers = 0
        self.in_integer = False
        self.integer_chars = 0

    def start(self, name: str, attrs: object) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise _Refused(
                f"the settings hold more than {MAX_ELEMENTS:,} elements; "
                "not a Safe Exam Browser configuration"
            )
        container = name in ("dict", "array")
        if container:
            if self.containers > examkeys.MAX_DEPTH:
                raise _Refused(
                    f"settings nested deeper than {examkeys.MAX_DEPTH} levels; "
                    "not a Safe Exam Browser configuration"
                )
            self.containers += 1
        self.open.append(container)
        self.in_integer = name == "integer"
        self.integer_chars = 0

    def end(self, name: str) -> None:
        if self.open.pop():
            self.containers -= 1
        self.in_integer = False

    def text(self, data: str) -> None:
        if self.in_integer:
            self.integer_chars += len(data.strip())
            if self.integer_chars > MAX_INTEGER_CHARS:
                raise _Refused(
                    f"an integer at {_line(self.parser)} is longer than {MAX_INTEGER_CHARS} "
                    "digits; not a Safe Exam Browser configuration"
                )


def _entity(*_args: object) -> None:
    raise _Refused("XML entity declarations are not supported in plist files")


_DATE: Final = re.compile(
    r"(?P<year>\d{4})(?:-(?P<month>\d\d)(?:-(?P<day>\d\d)(?:T(?P<hour>\d\d)"
    r"(?::(?P<minute>\d\d)(?::(?P<second>\d\d)(?:\.(?P<fraction>\d{1,9}))?)?)?)?)?)?"
    r"(?P<zone>Z|[+-]\d\d:\d\d)?",
    re.ASCII,
)
_INTEGER: Final = re.compile(r"[+-]?[0-9]+|0[xX][0-9a-fA-F]+", re.ASCII)


def _date(text: str) -> datetime:
    """A plist date: Apple's ``2026-06-01T08:00:00Z`` (units may be left out, as plistlib
    reads them) and SEB for Windows' ``2026-06-01T08:00:00.1234567Z`` or ``+02:00``;
    the result is naive UTC (fractions beyond microseconds are cut)."""
    match = _DATE.fullmatch(text.strip())
    if match is None or (match["zone"] is None and match["second"] is None):
        raise ValueError(f"date {text.strip()[:40]!r} is not in ISO 8601 form")
    year, month, day, hour, minute, second = (
        int(match[k] or default) for k, default in _DATE_PARTS
    )
    micro = int((match["fraction"] or "0")[:6].ljust(6, "0"))
    moment = datetime(year, month, day, hour, minute, second, micro)
    zone = match["zone"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        moment = (moment.replace(tzinfo=timezone(sign * offset))).astimezone(UTC)
        moment = moment.replace(tzinfo=None)
    return moment


_DATE_PARTS: Final = (
    ("year", "1"),
    ("month", "1"),
    ("day", "1"),
    ("hour", "0"),
    ("minute", "0"),
    ("second", "0"),
)


def _integer(text: str) -> int:
    raw = text.strip()
    if not _INTEGER.fullmatch(raw):
        raise ValueError(f"integer {raw[:40]!r} is not a number")
    number = int(raw, 16) if raw[:2].lower() == "0x" else int(raw)
    if not INT_MIN <= number <= INT_MAX:
        raise ValueError(f"integer {raw[:24]}… does not fit in 64 bits")
    return number


class _Builder:
    """The second pass, after the pre-scan passed: builds the settings as plistlib would."""

    def __init__(self, parser: xml.parsers.expat.XMLParserType) -> None:
        self.parser = parser
        self.stack: list[dict[str, Any] | list[Any]] = []
        self.key: str | None = None
        self.root: object = None
        self.rooted = False
        self.text: list[str] = []

    def _add(self, value: object) -> None:
        if not self.stack:
            if self.rooted:
                raise ValueError(f"a second top-level value at {_line(self.parser)}")
            self.root, self.rooted = value, True
            return
        top = self.stack[-1]
        if isinstance(top, dict):
            if self.key is None:
                raise ValueError(f"a value without a key at {_line(self.parser)}")
            top[self.key] = value
            self.key = None
        else:
            top.append(value)

    def start(self, name: str, attrs: object) -> None:
        self.text = []
        if name in ("dict", "array"):
            container: dict[str, Any] | list[Any] = {} if name == "dict" else []
            self._add(container)
            self.stack.append(container)
        elif name not in _SCALARS and name != "plist":
            raise ValueError(f"unknown element <{name[:40]}> at {_line(self.parser)}")

    def end(self, name: str) -> None:
        if name in ("dict", "array"):
            if name == "dict" and self.key is not None:
                raise ValueError(f"missing value for key {self.key[:40]!r} at {_line(self.parser)}")
            self.stack.pop()
            return
        if name == "plist":
            return
        text = "".join(self.text)
        self.text = []
        if name == "key":
            if self.key is not None or not self.stack or not isinstance(self.stack[-1], dict):
                raise ValueError(f"unexpected key at {_line(self.parser)}")
            self.key = text
        elif name == "string":
            self._add(text)
        elif name == "integer":
            self._add(_integer(text))
        elif name == "real":
            self._add(float(text))
        elif name == "true":
            self._add(True)
        elif name == "false":
            self._add(False)
        elif name == "date":
            self._add(_date(text))
        elif name == "data":
            self._add(binascii.a2b_base64(text.encode("ascii")))

    def data(self, data: str) -> None:
        self.text.append(data)


_SCALARS: Final = frozenset({"key", "string", "integer", "real", "true", "false", "date", "data"})


def prescan(xml_bytes: bytes, *, origin: str) -> int:
    """Refuse a property list that is too big or too deep before any of it is built.

    Returns the number of elements. Raises :class:`ConfigError` (one line) on too many
    elements (:data:`MAX_ELEMENTS`), nesting deeper than :data:`examkeys.MAX_DEPTH`, an
    integer longer than :data:`MAX_INTEGER_CHARS` characters or an entity declaration.
    """
    parser = xml.parsers.expat.ParserCreate()
    scan = _Prescan(parser)
    _expat_pass(parser, (scan.start, scan.end, scan.text), xml_bytes, origin)
    return scan.elements


def _expat_pass(parser: Any, handlers: tuple[Any, Any, Any], xml_bytes: bytes, origin: str) -> None:
    """One streaming pass: start, end and text handlers, entities refused, one-line errors."""
    parser.StartElementHandler, parser.EndElementHandler, parser.CharacterDataHandler = handlers
    parser.EntityDeclHandler = _entity
    try:
        parser.Parse(xml_bytes, True)
    except _Refused as exc:
        raise ConfigError(f"{origin}: {exc}") from None
    except (
        xml.parsers.expat.ExpatError,
        ValueError,
        LookupError,
        OverflowError,
        binascii.Error,
    ) as exc:
        raise _invalid(origin, exc) from None


def _invalid(origin: str, exc: BaseException) -> ConfigError:
    reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
    return ConfigError(
        f"{origin}: the settings are not a valid property list ({reason}); "
        "the file is damaged or not a Safe Exam Browser configuration"
    )


def parse_plist(xml_bytes: bytes, *, origin: str) -> dict[str, Any]:
    """The top-level ``<dict>`` of an Apple XML property list.

    Two streaming passes with expat: :func:`prescan` first (limits, nothing built), then
    the tree (the types plistlib reads, plus SEB for Windows' dates with fractional
    seconds and offsets; integers limited to 64 bits; unknown elements refused).
    """
    prescan(xml_bytes, origin=origin)
    return build_tree(xml_bytes, origin=origin)


def build_tree(xml_bytes: bytes, *, origin: str) -> dict[str, Any]:
    """The settings tree of a property list, without the limits: call :func:`prescan` first.

    (Apart for the tests, which show that the pre-scan is what bounds time and memory.)
    """
    parser = xml.parsers.expat.ParserCreate()
    builder = _Builder(parser)
    _expat_pass(parser, (builder.start, builder.end, builder.data), xml_bytes, origin)
    if not isinstance(builder.root, dict):
        raise ConfigError(
            f"{origin}: the settings property list does not hold a dictionary; "
            "not a Safe Exam Browser configuration"
        )
    return builder.root


# -- mapping SEB keys onto our options ----------------------------------------------------


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Mismatch(f"expected true or false, got {value!r:.60}")
    return value


def _int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Mismatch(f"expected an integer, got {value!r:.60}")
    return value


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise _Mismatch(f"expected a string, got {value!r:.60}")
    return value


def _choice(table: Mapping[int, str]) -> Callable[[object], str]:
    def pick(value: object) -> str:
        number = _int(value)
        if number not in table:
            raise _Mismatch(f"expected one of {sorted(table)}, got {number}")
        return table[number]

    return pick


def _url_rules(value: object) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _Mismatch(f"expected an array of rules, got {value!r:.60}")
    rules = []
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise _Mismatch(f"rule {index}: expected a dictionary, got {item!r:.60}")
        try:
            action = _int(item.get("action", 0))
            if action not in (0, 1):
                raise _Mismatch(f"action: expected 0 (block) or 1 (allow), got {action}")
            rules.append(
                {
                    "active": _bool(item.get("active", True)),
                    "kind": "regex" if _bool(item.get("regex", False)) else "glob",
                    "expression": _str(item.get("expression", "")),
                    "action": "allow" if action == 1 else "block",
                }
            )
        except _Mismatch as exc:
            raise _Mismatch(f"rule {index}: {exc}") from None
    return rules


def _executables(value: object) -> list[str]:
    if not isinstance(value, list):
        raise _Mismatch(f"expected an array of processes, got {value!r:.60}")
    names: list[str] = []
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise _Mismatch(f"process {index}: expected a dictionary, got {item!r:.60}")
        try:
            active = _bool(item.get("active", True))
            name = _str(item.get("executable", "")).strip()
        except _Mismatch as exc:
            raise _Mismatch(f"process {index}: {exc}") from None
        if active and name and name not in names:
            names.append(name)
    return names


def _max_displays(value: object) -> int:
    number = _int(value)
    clamped = min(max(number, 1), 16)
    if clamped != number:
        log.config.warning("allowedDisplaysMaxNumber %d taken as %d", number, clamped)
    return clamped


def _salt(value: object) -> str:
    if not isinstance(value, bytes):
        raise _Mismatch(f"expected data, got {value!r:.60}")
    return value.hex()


#: SEB key -> (our option key, conversion of the SEB value to our raw value)
MAPPED: Final[Mapping[str, tuple[str, Callable[[object], object]]]] = MappingProxyType(
    {
        "startURL": ("browser.start_url", _str),
        "quitURL": ("quit.url", _str),
        "hashedQuitPassword": ("quit.password_hash", lambda v: _str(v).lower()),
        "allowQuit": ("quit.allow", _bool),
        "URLFilterEnable": ("browser.url_filter", _bool),
        "URLFilterRules": ("browser.url_rules", _url_rules),
        "clipboardPolicy": (
            "guards.clipboard",
            _choice({0: "allow", 1: "block", 2: "isolated"}),
        ),
        "enablePrintScreen": ("guards.screenshots", lambda v: not _bool(v)),
        "allowScreenSharing": (
            "guards.remote_session",
            lambda v: "allow" if _bool(v) else "deny",
        ),
        "allowVirtualMachine": (
            "guards.virtual_machine",
            lambda v: "allow" if _bool(v) else "deny",
        ),
        "allowedDisplaysMaxNumber": ("guards.max_displays", _max_displays),
        "prohibitedProcesses": ("guards.prohibited_apps_extra", _executables),
        "permittedProcesses": ("guards.permitted_apps", _executables),
        "browserWindowAllowReload": ("browser.allow_reload", _bool),
        # 0 blocked, 1 same window, 2 new window: we have one window, so 2 opens in it too.
        "newBrowserWindowByLinkPolicy": (
            "browser.new_window_policy",
            _choice({0: "block", 1: "same_window", 2: "same_window"}),
        ),
        "sendBrowserExamKey": ("browser.send_browser_exam_key", _bool),
        "examKeySalt": ("browser.exam_key_salt", _salt),
        "enableScreenProctoring": ("proctoring.screen", _bool),
    }
)


def map_settings(
    plist: Mapping[str, Any], *, origin: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """(our validated option values, the SEB keys ignored) for a settings dictionary."""
    values: dict[str, Any] = {}
    for seb_key, (our_key, convert_seb) in MAPPED.items():
        if seb_key not in plist:
            continue
        try:
            raw = convert_seb(plist[seb_key])
        except _Mismatch as exc:
            raise ConfigError(
                f"{origin}: Safe Exam Browser setting {seb_key!r}: {exc}; "
                "ask your exam organiser for a corrected file"
            ) from None
        try:
            values[our_key] = convert(our_key, raw, origin=origin)
        except ConfigError as exc:
            detail = str(exc).removeprefix(f"{origin}: ")
            raise ConfigError(
                f"{origin}: Safe Exam Browser setting {seb_key!r} gives {detail}; "
                "ask your exam organiser for a corrected file"
            ) from None
    ignored = tuple(sorted((k for k in plist if k not in MAPPED), key=str.lower))
    return values, ignored


def _freeze(value: object) -> object:
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def load_seb(data: bytes, *, origin: str, password: PasswordSource) -> SebConfig:
    """Read a ``.seb`` file; every problem is a one-line :class:`ConfigError`.

    Args:
        data: the file's bytes.
        origin: where it came from (a path or URL), named in messages and the log.
        password: called with the try number (1, 2, 3) when the file has a password;
            returns the password, or None to give up.
    """
    xml = unwrap(data, origin=origin, password=password)
    plist = parse_plist(xml, origin=origin)
    values, ignored = map_settings(plist, origin=origin)
    try:
        key = examkeys.config_key(plist)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{origin}: cannot compute the Config Key ({exc})") from None
    log.config.info(
        "Safe Exam Browser file %s: %d settings mapped (%s), %d ignored",
        origin,
        len(values),
        ", ".join(sorted(values)) or "none",
        len(ignored),
    )
    if ignored:
        log.config.info("Safe Exam Browser settings ignored in %s: %s", origin, ", ".join(ignored))
    frozen = _freeze(plist)
    assert isinstance(frozen, Mapping)
    return SebConfig(
        values=MappingProxyType(values),
        ignored=ignored,
        config_key=key,
        plist=frozen,
    )


def check_allowed(organisation: Organisation, *, origin: str) -> None:
    """Refuse a ``.seb`` file when the organisation file sets ``config.allow_seb = false``."""
    if not organisation.values.get("config.allow_seb", True):
        raise ConfigError(
            f"{origin}: Safe Exam Browser files are switched off on this computer "
            "(config.allow_seb); ask your exam organiser for a Lockdown exam configuration"
        )
