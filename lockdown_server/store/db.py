"""The metadata database: engine, migrations (Alembic), and the one portable idempotent insert.

SQLite (the default, a file in the data folder) runs in WAL mode with ``synchronous=FULL``
so a committed row survives a power cut; it is for one service process. PostgreSQL
(``postgresql+psycopg://…``, psycopg 3) runs at its default READ COMMITTED isolation and
serves several processes. Every write that must happen once goes through
:func:`insert_once` (``INSERT … ON CONFLICT DO NOTHING``), which both dialects spell the
same way in SQLAlchemy; on PostgreSQL a concurrent insert of the same key waits for the
other transaction and then does nothing (rowcount 0), so exactly one caller sees True.
Migrations on PostgreSQL hold an advisory lock, so processes starting together migrate
one after the other.
"""

from __future__ import annotations

from importlib import resources
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, Table, create_engine, event, literal, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from lockdown_server.errors import StorageFull


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=FULL",
        "foreign_keys=ON",
        "busy_timeout=15000",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


#: pg_advisory_xact_lock key held while migrating ("lockdown" in ASCII)
MIGRATION_LOCK: Final = 0x6C6F636B646F776E


def make_engine(url: str, pool: int = 20) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(
        url, pool_pre_ping=True, pool_size=pool, max_overflow=pool, pool_timeout=30
    )


def alembic_config(engine: Engine) -> Config:
    config = Config()
    location = resources.files("lockdown_server.store") / "migrations"
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``)."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def insert_once(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert unless a row with the same unique key exists; True when this call inserted."""
    module = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(**values).on_conflict_do_nothing().returning(literal(1))
    # RETURNING yields a row only when this statement inserted (psycopg's rowcount is -1)
    return conn.execute(statement).first() is not None


def is_full(exc: OperationalError) -> bool:
    """The database refused a write for want of space (SQLite: "database or disk is full")."""
    text = str(exc.orig).lower()
    return "disk is full" in text or "no space left" in text or "could not extend" in text


def raise_if_full(exc: OperationalError) -> None:
    if is_full(exc):
        raise StorageFull(str(exc.orig)) from exc
