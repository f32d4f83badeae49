"""The first schema: exams, candidates, sessions, flags, segments, events, anchors, checks.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exams",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("streams", sa.Text, nullable=False),
        sa.Column("valid_from", sa.Float, nullable=True),
        sa.Column("valid_until", sa.Float, nullable=True),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("config_body", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "candidates",
        sa.Column("exam_id", sa.String(100), sa.ForeignKey("exams.id"), primary_key=True),
        sa.Column("user_id", sa.String(200), primary_key=True),
        sa.Column("grp", sa.String(200), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("exam_id", sa.String(100), sa.ForeignKey("exams.id"), nullable=False),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("launch_jti", sa.String(64), nullable=False),
        sa.Column("client_version", sa.String(100), nullable=False),
        sa.Column("build", sa.String(20), nullable=False),
        sa.Column("build_identity", sa.String(200), nullable=False),
        sa.Column("settings_hash", sa.String(200), nullable=False),
        sa.Column("isolation_mode", sa.String(100), nullable=False),
        sa.Column("spool_header", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("closed_at", sa.Float, nullable=True),
        sa.Column("close_report", sa.Text, nullable=True),
    )
    op.create_index("ix_sessions_exam_id", "sessions", ["exam_id"])
    op.create_table(
        "session_flags",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("flag", sa.String(100), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_session_flags_session_id", "session_flags", ["session_id"])
    op.create_table(
        "segments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("stream", sa.String(20), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(100), nullable=False),
        sa.Column("object_key", sa.String(200), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("plain_sha256", sa.String(64), nullable=False),
        sa.Column("start_utc", sa.String(40), nullable=False),
        sa.Column("duration", sa.Float, nullable=False),
        sa.Column("previous_digest", sa.String(100), nullable=False),
        sa.Column("stored_at", sa.Float, nullable=False),
        sa.UniqueConstraint("session_id", "stream", "seq", name="uq_segments_session_stream_seq"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("client_id", sa.String(100), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.UniqueConstraint("session_id", "client_id", name="uq_events_session_client_id"),
    )
    op.create_table(
        "anchors",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=False),
        sa.Column("chain", sa.String(20), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("mac", sa.String(64), nullable=False),
        sa.Column("records", sa.Integer, nullable=True),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_anchors_session_id", "anchors", ["session_id"])
    op.create_table(
        "checks",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("exam_id", sa.String(100), sa.ForeignKey("exams.id"), nullable=False),
        sa.Column("session_id", sa.String(64), sa.ForeignKey("sessions.id"), nullable=True),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("client_address", sa.String(100), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "checks",
        "anchors",
        "events",
        "segments",
        "session_flags",
        "sessions",
        "candidates",
        "exams",
    ):
        op.drop_table(table)
