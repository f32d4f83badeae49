"""Session keys and AES-256-GCM sealing of spool segments (format in docs/spool.md).

One 256-bit key per session, from ``os.urandom``. Each segment is sealed once with a fresh
random 96-bit nonce; the associated data binds the spool's session id and the segment's
clear header (stream, seq, times, sizes), so a segment cannot be swapped with another or
moved to another spool without failing authentication. The key itself never reaches a log
(it is registered with :func:`lockdown.log.register_secret`).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lockdown import durable, log
from lockdown.upload.base import SpoolError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
CIPHER: Final = "AES-256-GCM"
#: The one line of a key file: this prefix, the key as 64 hex digits, a newline.
KEY_FILE_PREFIX: Final = "lockdown-spool-key-v1:"


class SpoolKeyError(SpoolError):
    """A key file is missing, unreadable, malformed, or does not fit the spool."""


def new_key() -> bytes:
    """A fresh random 256-bit session key."""
    key = os.urandom(KEY_BYTES)
    log.register_secret(key.hex())
    return key


def key_id(key: bytes) -> str:
    """A short public fingerprint of ``key`` (to check that the right key was given)."""
    return hashlib.sha256(b"lockdown-spool-key-id\0" + key).hexdigest()[:16]


def check_key(key: bytes) -> bytes:
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise SpoolKeyError("the spool key must be 32 bytes (AES-256)")
    return key


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``nonce || ciphertext || tag`` with a fresh random nonce."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of :func:`seal`'s output.

    Raises:
        SpoolError: too short, or the authentication tag does not match (corrupted,
            tampered, swapped, or the wrong key).
    """
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SpoolError("ciphertext is cut short")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SpoolError("the authentication tag does not match (corrupted or tampered)") from None


def write_key_file(path: Path, key: bytes) -> None:
    """Store ``key`` in ``path`` with mode 0600, atomically (write, fsync, rename)."""
    check_key(key)
    try:
        durable.make_folder(path.parent)
        durable.atomic_write(path, f"{KEY_FILE_PREFIX}{key.hex()}\n".encode("ascii"), 0o600)
    except OSError as exc:
        raise SpoolKeyError(f"{path}: cannot write the spool key ({exc.strerror})") from None


def read_key_file(path: Path) -> bytes:
    """The key stored by :func:`write_key_file`."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SpoolKeyError(f"{path}: spool key file not found") from None
    except (OSError, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a key file"
        raise SpoolKeyError(f"{path}: cannot read the spool key ({reason})") from None
    body = text.removeprefix(KEY_FILE_PREFIX)
    try:
        key = bytes.fromhex(body) if body != text else b""
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise SpoolKeyError(f"{path}: not a spool key file")
    log.register_secret(key.hex())
    return key


@dataclass(frozen=True)
class KeyWrapping:
    """How the session key is wrapped for the proctoring service (the header's ``key_wrapping``).

    Today only ``scheme="none"``: the key stays on this machine (a key file or the caller).
    Reserved for later: ``scheme="x25519-hkdf-sha256-aes256gcm"`` with ``recipient`` (the
    service public key's fingerprint), ``ephemeral_public``, ``nonce`` and ``wrapped_key``
    (base64), so the service alone can unwrap the session key; see docs/spool.md.
    """

    scheme: str = "none"
    recipient: str | None = None
    ephemeral_public: str | None = None
    nonce: str | None = None
    wrapped_key: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}
