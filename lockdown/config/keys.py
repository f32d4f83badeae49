"""Ed25519 signing keys for exam configuration files: generate, store, load."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lockdown.errors import UserError

PUBLIC_PREFIX = "ed25519:"


class KeyError_(UserError):
    """A key file is missing, unreadable or not an Ed25519 key."""


def public_text(key: Ed25519PublicKey) -> str:
    """``ed25519:<base64 of the 32 raw bytes>``: the form IT staff paste into the organisation file."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PUBLIC_PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str) -> Ed25519PublicKey:
    if not text.startswith(PUBLIC_PREFIX):
        raise KeyError_(
            f"not an Ed25519 public key (expected {PUBLIC_PREFIX}<base64>): {text[:60]!r}"
        )
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise KeyError_(f"not an Ed25519 public key: {text[:60]!r}") from None


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_path: Path
    public: str


def generate(prefix: Path) -> KeyPair:
    """Write ``PREFIX.key`` (private, PEM, mode 600) and ``PREFIX.pub`` (one line)."""
    private_path = prefix.with_name(prefix.name + ".key")
    public_path = prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists():
            raise KeyError_(f"{path} exists already; choose another name or remove it first")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        public = public_text(key.public_key())
        public_path.write_text(public + "\n", encoding="ascii")
    except OSError as exc:
        raise KeyError_(f"cannot write the key files at {prefix}: {exc.strerror}") from None
    return KeyPair(private_path, public_path, public)


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read the private key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyError_(f"{path}: not a PEM private key without password") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(
            f"{path}: not an Ed25519 private key; make one with `lockdown keys generate`"
        )
    return key


def verify(public: str, signature: bytes, data: bytes) -> bool:
    try:
        parse_public(public).verify(signature, data)
    except (InvalidSignature, KeyError_):
        return False
    return True
