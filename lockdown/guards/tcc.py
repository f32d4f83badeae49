"""macOS Screen Recording permission: which apps hold ``kTCCServiceScreenCapture``.

macOS (12+) keeps privacy grants in TCC databases (SQLite): the system one at
``/Library/Application Support/com.apple.TCC/TCC.db`` holds Screen Recording. Reading it
needs Full Disk Access; without it the reader says so. An app holding the permission is
reported like a running capture app, with the remedy of the troubleshooting guide
(System Settings > Privacy & Security > Screen Recording, untick it).

Tested here against a fixture database with the macOS 12+ ``access`` schema; the query
has NOT been run against a real macOS TCC database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

SERVICE: Final = "kTCCServiceScreenCapture"
#: ``auth_value`` 2 = allowed (0 denied, 1 unknown, 3 limited)
AUTH_ALLOWED: Final = 2
SYSTEM_DB: Final = Path("/Library/Application Support/com.apple.TCC/TCC.db")
USER_DB: Final = Path.home() / "Library/Application Support/com.apple.TCC/TCC.db"
REMEDY_ID: Final = "guards.tcc.remedy"


@dataclass(frozen=True)
class TccGrant:
    #: a bundle id (client_type 0) or an absolute path (client_type 1)
    client: str
    client_type: int
    last_modified: int = 0

    @property
    def display_name(self) -> str:
        return self.client.rsplit("/", 1)[-1] if self.client_type == 1 else self.client

    def as_dict(self) -> dict[str, Any]:
        return {"client": self.client, "client_type": self.client_type}


@dataclass(frozen=True)
class TccReport:
    grants: tuple[TccGrant, ...]
    #: why a database could not be read (Full Disk Access missing, not macOS …)
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "apps": [g.as_dict() for g in self.grants],
            "notes": list(self.notes),
            "remedy": REMEDY_ID if self.grants else None,
        }


class TccUnreadable(Exception):
    """The database exists but cannot be read (usually: Full Disk Access missing)."""


def read_grants(db: Path) -> list[TccGrant]:
    """Clients allowed ``kTCCServiceScreenCapture`` in one TCC database (read-only)."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
    except sqlite3.Error as exc:
        raise TccUnreadable(f"{db}: {exc}") from None
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(access)")}
        if not columns:
            raise TccUnreadable(f"{db}: no access table (not a TCC database?)")
        if "auth_value" in columns:  # macOS 11+
            where, args = "auth_value = ?", (AUTH_ALLOWED,)
        else:  # macOS 10.14/10.15 had an 'allowed' flag
            where, args = "allowed = ?", (1,)
        modified = "last_modified" if "last_modified" in columns else "0"
        rows = conn.execute(
            f"SELECT client, client_type, {modified} FROM access "  # noqa: S608 (fixed names)
            f"WHERE service = ? AND {where} ORDER BY client",
            (SERVICE, *args),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise TccUnreadable(f"{db}: {exc} (Lockdown needs Full Disk Access to read it)") from None
    finally:
        conn.close()
    return [TccGrant(str(c), int(t or 0), int(m or 0)) for c, t, m in rows]


def screen_capture_grants(
    databases: Iterable[Path] = (SYSTEM_DB, USER_DB), exclude: Iterable[str] = ()
) -> TccReport:
    """Apps allowed to record the screen, minus ``exclude`` (our own bundle id)."""
    skip = {e.casefold() for e in exclude}
    grants: dict[str, TccGrant] = {}
    notes: list[str] = []
    for db in databases:
        if not db.exists():
            notes.append(f"{db}: not present")
            continue
        try:
            found = read_grants(db)
        except TccUnreadable as exc:
            notes.append(str(exc))
            continue
        for grant in found:
            if grant.client.casefold() not in skip:
                grants.setdefault(grant.client, grant)
    return TccReport(tuple(grants.values()), tuple(notes))
