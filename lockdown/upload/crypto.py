"""Session keys and AES-256-GCM sealing of spool segments (format in docs/spool.md).

One 256-bit key per session, from ``os.urandom``. Each segment is sealed once with a fresh
random 96-bit nonce; the associated data binds the spool's session id and the segment's
clear header (stream, seq, times, sizes), so a segment cannot be swapped with another or
moved to another spool without failing authentication. The key itself never reaches a log
(it is registered with :func:`lockdown.log.register_secret`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from lockdown import durable, log
from lockdown.upload.base import SpoolError

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
CIPHER: Final = "AES-256-GCM"


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


WRAP_SCHEME: Final = "x25519-hkdf-sha256-aes256gcm"
RECIPIENT_PREFIX: Final = "x25519:"
#: The one line of a recipient private key file.
RECIPIENT_PRIVATE_PREFIX: Final = "lockdown-recipient-key-v1:"
_WRAP_INFO: Final = b"lockdown key wrap v1"


@dataclass(frozen=True)
class KeyWrapping:
    """A session key wrapped for a recipient (the header's ``key_wrapping``).

    ``scheme="x25519-hkdf-sha256-aes256gcm"``: an ephemeral X25519 key agreed with the
    recipient's public key, HKDF-SHA256 over the shared secret (info ``lockdown key wrap
    v1``, salt ephemeral public || recipient public) gives an AES-256-GCM key that seals
    the session key; ``recipient`` is the recipient public key's fingerprint. Only the
    holder of the recipient's private key (the proctoring service, or IT staff) can
    unwrap it: nothing on the candidate's computer can.
    """

    scheme: str = "none"
    recipient: str | None = None
    ephemeral_public: str | None = None
    nonce: str | None = None
    wrapped_key: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, obj: object) -> KeyWrapping:
        if not isinstance(obj, dict):
            raise SpoolKeyError("the wrapped key is garbled")
        fields = {k: str(v) for k, v in obj.items() if k in cls.__annotations__}
        return cls(**fields)


def parse_recipient(text: str) -> X25519PublicKey:
    """An ``x25519:<base64>`` public key (as printed by ``keys generate --recipient``).

    Raises:
        SpoolKeyError: not such a key.
    """
    body = text.strip().removeprefix(RECIPIENT_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True) if body != text.strip() else b""
        return X25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise SpoolKeyError(
            f"{text[:60]!r} is not a recipient public key (x25519:… from "
            "`lockdown keys generate --recipient`)"
        ) from None


def recipient_text(public: X25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return RECIPIENT_PREFIX + base64.b64encode(raw).decode("ascii")


def recipient_id(public: X25519PublicKey) -> str:
    """A short fingerprint of a recipient public key."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(b"lockdown-recipient\0" + raw).hexdigest()[:16]


def load_recipient(source: str) -> X25519PublicKey:
    """A recipient public key from its text or from a ``.pub`` file holding it."""
    path = Path(source)
    if not source.startswith(RECIPIENT_PREFIX) and path.is_file():
        try:
            return parse_recipient(path.read_text(encoding="ascii"))
        except (OSError, UnicodeError):
            raise SpoolKeyError(f"{path}: cannot read the recipient key") from None
    return parse_recipient(source)


def generate_recipient(prefix: Path) -> tuple[Path, Path, str]:
    """Write a new X25519 pair: ``PREFIX.key`` (mode 0600) and ``PREFIX.pub``.

    Returns:
        (private key path, public key path, public key text)
    """
    private = X25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    key_path = prefix.with_name(prefix.name + ".key")
    pub_path = prefix.with_name(prefix.name + ".pub")
    public = recipient_text(private.public_key())
    try:
        if key_path.exists():
            raise SpoolKeyError(f"{key_path}: exists already; choose another --out name")
        durable.atomic_write(
            key_path,
            f"{RECIPIENT_PRIVATE_PREFIX}{base64.b64encode(raw).decode()}\n".encode(),
            0o600,
        )
        durable.atomic_write(pub_path, (public + "\n").encode("ascii"), 0o644)
    except OSError as exc:
        raise SpoolKeyError(f"{prefix}: cannot write the key pair ({exc.strerror})") from None
    return key_path, pub_path, public


def load_recipient_private(path: Path) -> X25519PrivateKey:
    """The private key written by :func:`generate_recipient`.

    Raises:
        SpoolKeyError: missing, unreadable or not such a key file.
    """
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise SpoolKeyError(f"{path}: recipient key file not found") from None
    except (OSError, UnicodeError):
        raise SpoolKeyError(f"{path}: cannot read the recipient key file") from None
    body = text.removeprefix(RECIPIENT_PRIVATE_PREFIX)
    try:
        raw = base64.b64decode(body, validate=True) if body != text else b""
        return X25519PrivateKey.from_private_bytes(raw)
    except (ValueError, binascii.Error):
        raise SpoolKeyError(
            f"{path}: not a recipient private key (from `lockdown keys generate --recipient`)"
        ) from None


def _wrapping_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=KEY_BYTES, salt=ephemeral + recipient, info=_WRAP_INFO
    ).derive(shared)


def wrap(key: bytes, recipient: X25519PublicKey, *, label: str) -> KeyWrapping:
    """``key`` wrapped for ``recipient`` (the label is bound as associated data)."""
    ephemeral = X25519PrivateKey.generate()
    eph_raw = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    rec_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    wrapping_key = _wrapping_key(ephemeral.exchange(recipient), eph_raw, rec_raw)
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(wrapping_key).encrypt(nonce, key, label.encode("utf-8"))
    return KeyWrapping(
        scheme=WRAP_SCHEME,
        recipient=recipient_id(recipient),
        ephemeral_public=base64.b64encode(eph_raw).decode("ascii"),
        nonce=base64.b64encode(nonce).decode("ascii"),
        wrapped_key=base64.b64encode(sealed).decode("ascii"),
    )


def unwrap(wrapping: KeyWrapping, private: X25519PrivateKey, *, label: str) -> bytes:
    """The key :func:`wrap` sealed, with the recipient's private key.

    Raises:
        SpoolKeyError: not wrapped, wrapped for another recipient, or tampered with.
    """
    if wrapping.scheme != WRAP_SCHEME:
        raise SpoolKeyError(f"the key is not wrapped for a recipient (scheme {wrapping.scheme})")
    if wrapping.recipient != recipient_id(private.public_key()):
        raise SpoolKeyError(
            "this private key is not the recording's recipient; use the recipient key "
            f"whose fingerprint is {wrapping.recipient}"
        )
    try:
        eph_raw = base64.b64decode(wrapping.ephemeral_public or "", validate=True)
        nonce = base64.b64decode(wrapping.nonce or "", validate=True)
        sealed = base64.b64decode(wrapping.wrapped_key or "", validate=True)
        ephemeral = X25519PublicKey.from_public_bytes(eph_raw)
    except (ValueError, binascii.Error):
        raise SpoolKeyError("the wrapped key is garbled") from None
    rec_raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    wrapping_key = _wrapping_key(private.exchange(ephemeral), eph_raw, rec_raw)
    try:
        key = AESGCM(wrapping_key).decrypt(nonce, sealed, label.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise SpoolKeyError("the wrapped key was tampered with") from None
    log.register_secret(key.hex())
    return check_key(key)
