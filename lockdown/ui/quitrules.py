"""Quit rules without Qt: the quit URL, the quit password check and the growing delay.

The quit password hash is the lower-case hex SHA-256 of the UTF-8 password (Safe Exam
Browser's ``hashedQuitPassword``), compared case-insensitively. Each wrong attempt makes
the candidate wait longer before the next one: 1 s, 2 s, 4 s … at most 30 s.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from lockdown.ui.urlfilter import strip_fragment

MAX_DELAY_S: Final = 30.0


def password_hash(password: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 password."""
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def delay_after(wrong_attempts: int) -> float:
    """Seconds the candidate waits after ``wrong_attempts`` wrong passwords (0 for none)."""
    if wrong_attempts <= 0:
        return 0.0
    return float(min(MAX_DELAY_S, 2.0 ** (wrong_attempts - 1)))


def _normal(url: str) -> str:
    return strip_fragment(url).rstrip("/")


@dataclass(frozen=True)
class QuitRules:
    """What ends the exam: the quit URL, and the quit button (with or without password)."""

    allow_quit: bool = True
    quit_url: str = ""
    password_hash: str = ""

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> QuitRules:
        return cls(
            allow_quit=settings["quit.allow"],
            quit_url=settings["quit.url"],
            password_hash=settings["quit.password_hash"],
        )

    @property
    def needs_password(self) -> bool:
        return bool(self.password_hash)

    def is_quit_url(self, url: str) -> bool:
        """True when loading ``url`` ends the exam (fragment and a trailing slash ignored)."""
        return bool(self.quit_url) and _normal(url) == _normal(self.quit_url)

    def check_password(self, password: str) -> bool:
        if not self.password_hash:
            return True
        return hmac.compare_digest(password_hash(password), self.password_hash.lower())
