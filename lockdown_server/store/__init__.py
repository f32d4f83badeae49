"""Metadata (SQLAlchemy, Alembic migrations) and objects (one small interface) of the service."""
