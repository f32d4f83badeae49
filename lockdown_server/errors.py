"""Errors of the service: a user's mistake on the command line, or an API error reply."""

from __future__ import annotations

from lockdown.errors import UserError


class ServiceError(UserError):
    """A command of ``lockdown-server`` cannot run (bad option, unreadable data folder)."""


class ApiError(Exception):
    """An API call fails: the status, the JSON ``error`` code and a one-line message.

    Answered as ``{"error": code, "message": message, **extra}`` with ``Retry-After`` when
    ``retry_after`` is set (docs/protocol.md).
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}


class StorageFull(Exception):
    """The object store or the database has no room left (answered 507 with Retry-After)."""
