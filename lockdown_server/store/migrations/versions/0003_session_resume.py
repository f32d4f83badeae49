"""A restarted client's session resumes its earlier one: ``resumed_from`` and
``superseded_by`` on sessions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("resumed_from", sa.String(64), nullable=True))
        batch.add_column(sa.Column("superseded_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("superseded_by")
        batch.drop_column("resumed_from")
