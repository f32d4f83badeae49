"""Errors that are the user's to fix: shown as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input the user controls (a file, a flag, a password).

    The message is one line that says what happened and what to do. The CLI prints it
    and exits with :attr:`exit_code` (2 for usage and configuration errors).
    """

    exit_code = 2


class VerificationFailed(UserError):
    """A check found a problem in an otherwise readable input (a tampered journal)."""

    exit_code = 1
