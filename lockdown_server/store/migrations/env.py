"""Alembic's environment: runs on the connection the service passes, or on the URL given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from lockdown_server.store.models import metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    engine = create_engine(context.config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as connection:
        _run(connection)
