"""The service's tables (SQLAlchemy Core), the same on SQLite and PostgreSQL.

Times are Unix seconds (``Float``), compared the same way on both databases. The tables
change only through a migration in ``store/migrations/versions`` (a test compares them).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

exams = Table(
    "exams",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("title", String(300), nullable=False),
    #: JSON list of the recorded streams
    Column("streams", Text, nullable=False),
    Column("valid_from", Float, nullable=True),
    Column("valid_until", Float, nullable=True),
    Column("retention_days", Integer, nullable=False),
    #: the exam configuration's TOML body, unsigned, without a launch token
    Column("config_body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

candidates = Table(
    "candidates",
    metadata,
    Column("exam_id", String(100), ForeignKey("exams.id"), primary_key=True),
    Column("user_id", String(200), primary_key=True),
    Column("grp", String(200), nullable=False),
    Column("name", String(300), nullable=False),
    Column("created_at", Float, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("exam_id", String(100), ForeignKey("exams.id"), nullable=False, index=True),
    Column("user_id", String(200), nullable=False),
    Column("launch_jti", String(64), nullable=False),
    Column("client_version", String(100), nullable=False),
    Column("build", String(20), nullable=False),
    Column("build_identity", String(200), nullable=False),
    Column("settings_hash", String(200), nullable=False),
    Column("isolation_mode", String(100), nullable=False),
    #: the spool's header JSON (wrapped data and MAC keys)
    Column("spool_header", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("closed_at", Float, nullable=True),
    #: the close request's JSON (final heads, segment counts)
    Column("close_report", Text, nullable=True),
    # a restarted client's session names the one it resumes (proved by that one's upload
    # token); the earlier one is then superseded and no longer counts as alive
    Column("resumed_from", String(64), nullable=True),
    Column("superseded_by", String(64), nullable=True),
)

session_flags = Table(
    "session_flags",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id"), nullable=False, index=True),
    Column("flag", String(100), nullable=False),
    Column("detail", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

segments = Table(
    "segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id"), nullable=False),
    Column("stream", String(20), nullable=False),
    Column("seq", Integer, nullable=False),
    #: ``sha-256=:<base64>:`` of the stored (encrypted) body
    Column("digest", String(100), nullable=False),
    Column("object_key", String(200), nullable=False),
    Column("size", Integer, nullable=False),
    Column("plain_sha256", String(64), nullable=False),
    Column("start_utc", String(40), nullable=False),
    Column("duration", Float, nullable=False),
    Column("previous_digest", String(100), nullable=False),
    Column("stored_at", Float, nullable=False),
    UniqueConstraint("session_id", "stream", "seq", name="uq_segments_session_stream_seq"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id"), nullable=False),
    Column("client_id", String(100), nullable=False),
    Column("record", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    UniqueConstraint("session_id", "client_id", name="uq_events_session_client_id"),
)

anchors = Table(
    "anchors",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), ForeignKey("sessions.id"), nullable=False, index=True),
    #: "journal" or "spool"
    Column("chain", String(20), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("mac", String(64), nullable=False),
    Column("records", Integer, nullable=True),
    Column("received_at", Float, nullable=False),
)

checks = Table(
    "checks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("exam_id", String(100), ForeignKey("exams.id"), nullable=False),
    Column("session_id", String(64), ForeignKey("sessions.id"), nullable=True),
    Column("report", Text, nullable=False),
    Column("client_address", String(100), nullable=False),
    Column("received_at", Float, nullable=False),
)

#: what the retention job deleted (kept after the session's own rows are gone)
retention_log = Table(
    "retention_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_at", Float, nullable=False),
    Column("exam_id", String(100), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("user_id", String(200), nullable=False),
    #: the session's close, else its last sign of life (Unix seconds)
    Column("last_activity", Float, nullable=False),
    Column("objects", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    #: rows deleted: the session's segments, events, anchors, flags, checks and itself
    Column("rows", Integer, nullable=False),
)
