"""Alembic migrations of the service's database (SQLite and PostgreSQL)."""
