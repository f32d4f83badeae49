"""The service's two key pairs in its data folder: Ed25519 (tokens, exam configurations)
and X25519 (the recipient every session's data and MAC keys are wrapped for).

``keys/token.key`` (PEM) and ``keys/recipient.key`` (Lockdown's recipient key file, so
``lockdown spool export --key`` reads it too) are created with mode 0600 on first use and
refused when others can read them.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from lockdown.config import keys as config_keys
from lockdown.session import tokens
from lockdown.upload import crypto
from lockdown_server.errors import ServiceError

SIGNING_KEY = "token"  # the file name: keys/token.key
RECIPIENT_KEY = "recipient"


@dataclass(frozen=True)
class ServiceKeys:
    token: Ed25519PrivateKey
    recipient: X25519PrivateKey

    @property
    def token_public(self) -> str:
        return tokens.public_text(self.token.public_key())

    @property
    def recipient_public(self) -> str:
        return crypto.recipient_text(self.recipient.public_key())


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise ServiceError(
            f"{path}: the private key can be read by others (mode {mode:o}); run chmod 600 {path}"
        )


def load_or_create(folder: Path) -> ServiceKeys:
    """The keys in ``folder`` (``DATA/keys``), made on first use.

    Raises:
        ServiceError: a key file is unreadable, not a key, or readable by others.
    """
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise ServiceError(f"{folder}: cannot make the keys folder ({exc.strerror})") from None
    token_path = folder / f"{SIGNING_KEY}.key"
    recipient_path = folder / f"{RECIPIENT_KEY}.key"
    try:
        if not token_path.exists():
            config_keys.generate(folder / SIGNING_KEY)
        if not recipient_path.exists():
            crypto.generate_recipient(folder / RECIPIENT_KEY)
        for path in (token_path, recipient_path):
            _check_private(path)
        return ServiceKeys(
            config_keys.load_private(token_path), crypto.load_recipient_private(recipient_path)
        )
    except (config_keys.KeyError_, crypto.SpoolKeyError) as exc:
        raise ServiceError(str(exc)) from None
    except OSError as exc:
        raise ServiceError(f"{folder}: cannot read the service keys ({exc.strerror})") from None
