"""Lockdown exam configuration files: TOML, signed with Ed25519 over the exact bytes.

Format (documented for IT staff in ``docs/exam-config.md``)::

    format = 1
    [exam]
    id = "physics-2026"
    title = "Physics final"
    valid_from = 2026-06-01T08:00:00Z      # optional
    valid_until = 2026-06-01T12:00:00Z     # optional
    [browser]
    start_url = "https://exam.example.org/"
    url_rules = [{ action = "allow", expression = "https://cdn.example.org/*" }]
    [quit]
    url = "https://exam.example.org/done"
    [guards]
    clipboard = "isolated"
    [proctoring]
    camera = true
    [service]
    url = "https://proctor.example.org/"
    # lockdown-signature ed25519:<public key> <signature>

The last line is the signature of every byte before it (``lockdown config sign``).
"""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lockdown import log
from lockdown.config import keys
from lockdown.config.settings import ConfigError, Organisation, flatten

MAX_CONFIG_BYTES: Final = 1024 * 1024
#: The largest configuration file read at all (a Safe Exam Browser ``.seb`` may be this big).
MAX_FILE_BYTES: Final = 8 * 1024 * 1024
FORMAT_VERSION: Final = 1
SIGNATURE_PREFIX: Final = b"# lockdown-signature "
_SIGNATURE_LINE: Final = re.compile(
    rb"# lockdown-signature (ed25519:[A-Za-z0-9+/]{43}=) ([A-Za-z0-9+/]{86}==)\n?"
)
_EXAM_FIELDS: Final = {"id", "title", "valid_from", "valid_until"}


@dataclass(frozen=True)
class ExamMeta:
    id: str = ""
    title: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class ExamConfig:
    """A verified exam configuration: its metadata, its option values and who signed it."""

    meta: ExamMeta
    values: Mapping[str, Any]
    signed_by: str | None
    body: bytes
    source: str


def split_signature(data: bytes) -> tuple[bytes, bytes | None]:
    """Return (signed body, signature line or None)."""
    start = data.rfind(b"\n" + SIGNATURE_PREFIX)
    if start == -1:
        if data.startswith(SIGNATURE_PREFIX):
            return b"", data
        return data, None
    return data[: start + 1], data[start + 1 :]


def sign(data: bytes, key: Ed25519PrivateKey) -> bytes:
    """Return ``data`` (any old signature removed) with a signature line appended."""
    body, _ = split_signature(data)
    if body and not body.endswith(b"\n"):
        body += b"\n"
    signature = base64.b64encode(key.sign(body))
    public = keys.public_text(key.public_key()).encode("ascii")
    return body + SIGNATURE_PREFIX + public + b" " + signature + b"\n"


def _parse_time(value: object, name: str, origin: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ConfigError(
            f"{origin}: exam.{name} must be a date and time with a zone, "
            f"like 2026-06-01T08:00:00Z; got {value!r}"
        )
    return value.astimezone(UTC)


def parse_body(body: bytes, *, origin: str) -> tuple[ExamMeta, dict[str, Any]]:
    """Parse and validate the TOML body (no signature check)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(
            f"{origin}: not a UTF-8 text file; is it a Lockdown exam configuration?"
        ) from None
    if "\x00" in text:
        raise ConfigError(
            f"{origin}: binary data in a text file; is it a Lockdown exam configuration?"
        )
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc}); the file may be truncated") from None
    except ValueError:  # tomllib on an integer longer than Python converts (4,300 digits)
        raise ConfigError(
            f"{origin}: not valid TOML (a number with far too many digits); "
            "ask your exam organiser for a corrected file"
        ) from None
    fmt = doc.pop("format", None)
    if fmt != FORMAT_VERSION:
        raise ConfigError(
            f"{origin}: 'format = {FORMAT_VERSION}' missing or unsupported (got {fmt!r}); "
            "is it a Lockdown exam configuration?"
        )
    exam = doc.pop("exam", {})
    if not isinstance(exam, dict):
        raise ConfigError(f"{origin}: [exam] must be a table")
    unknown = sorted(set(exam) - _EXAM_FIELDS)
    if unknown:
        raise ConfigError(
            f"{origin}: unknown field exam.{unknown[0]}; expected {sorted(_EXAM_FIELDS)}"
        )
    for name in ("id", "title"):
        if not isinstance(exam.get(name, ""), str):
            raise ConfigError(f"{origin}: exam.{name} must be a text")
    meta = ExamMeta(
        id=exam.get("id", ""),
        title=exam.get("title", ""),
        valid_from=_parse_time(exam.get("valid_from"), "valid_from", origin),
        valid_until=_parse_time(exam.get("valid_until"), "valid_until", origin),
    )
    return meta, flatten(doc, origin=origin)


def load_bytes(
    data: bytes,
    organisation: Organisation,
    *,
    origin: str,
    now: datetime | None = None,
    trusted_keys: tuple[str, ...] | None = None,
) -> ExamConfig:
    """Verify the signature first, then parse, then check the validity window."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{origin}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not an exam configuration"
        )
    if not data.strip():
        raise ConfigError(f"{origin}: the file is empty")
    body, signature_line = split_signature(data)
    trusted = organisation.trusted_keys if trusted_keys is None else trusted_keys
    signed_by: str | None = None
    if signature_line is None:
        if not organisation.allow_unsigned:
            raise ConfigError(
                f"{origin}: the configuration is not signed; ask your exam organiser for a "
                "signed file (unsigned files are refused unless the organisation allows them)"
            )
    else:
        match = _SIGNATURE_LINE.fullmatch(signature_line)
        if match is None:
            raise ConfigError(f"{origin}: the signature line is malformed; the file was changed")
        public, b64 = match.group(1).decode(), match.group(2)
        try:
            signature = base64.b64decode(b64, validate=True)
        except binascii.Error:
            raise ConfigError(
                f"{origin}: the signature line is malformed; the file was changed"
            ) from None
        if public not in trusted:
            raise ConfigError(
                f"{origin}: signed by an untrusted key ({public[:20]}…); ask IT staff to add it "
                "to the organisation file's config.trusted_keys"
            )
        if not keys.verify(public, signature, body):
            raise ConfigError(
                f"{origin}: the signature does not match; the file was changed after signing"
            )
        signed_by = public
    meta, values = parse_body(body, origin=origin)
    moment = now or datetime.now(UTC)
    if meta.valid_from and moment < meta.valid_from:
        raise ConfigError(
            f"{origin}: not valid before {meta.valid_from.isoformat()}; try again then"
        )
    if meta.valid_until and moment > meta.valid_until:
        raise ConfigError(
            f"{origin}: expired at {meta.valid_until.isoformat()}; ask for a current file"
        )
    log.config.info("Exam configuration %s verified (signed by %s)", origin, signed_by or "nobody")
    return ExamConfig(meta=meta, values=values, signed_by=signed_by, body=body, source=origin)


def read_file(path: Path, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a configuration file (Lockdown or ``.seb``); every failure is one line."""
    try:
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected an exam configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    if len(data) > limit:
        raise ConfigError(f"{path}: larger than {limit // 1024} KiB; not an exam configuration")
    return data


def load_file(path: Path, organisation: Organisation, **kwargs: Any) -> ExamConfig:
    return load_bytes(read_file(path), organisation, origin=str(path), **kwargs)
