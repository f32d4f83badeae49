"""The service's store: migrations build exactly the tables the code uses, inserts happen
once, objects appear only when committed, probes are rate-limited."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import given
from hypothesis import strategies as st

from lockdown_server.api.routes.segments import digest_header, parse_digest, parse_meta
from lockdown_server.errors import ApiError
from lockdown_server.service import RateLimiter
from lockdown_server.store import db, models
from lockdown_server.store.objects import LocalObjectStore


def test_the_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    db.migrate(engine)
    db.migrate(engine)  # again: nothing to do
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), models.metadata) == []
    engine.dispose()


def test_insert_once_inserts_once(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'service.db'}")
    db.migrate(engine)
    exam = {
        "id": "e1",
        "title": "T",
        "streams": "[]",
        "retention_days": 1,
        "config_body": "",
        "created_at": 0.0,
    }
    with engine.begin() as conn:
        assert db.insert_once(conn, models.exams, exam) is True
        assert db.insert_once(conn, models.exams, {**exam, "title": "other"}) is False
        assert conn.scalar(models.exams.select().with_only_columns(models.exams.c.title)) == "T"
    engine.dispose()


def test_an_object_exists_only_once_committed(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    upload = store.begin()
    upload.write(b"part one ")
    upload.write(b"part two")
    assert [p for p in (tmp_path / "objects").rglob("*") if p.parent.name != ".tmp"] == [
        tmp_path / "objects" / ".tmp"
    ]
    key = store.commit(upload, "segments/s1")
    assert key.startswith("segments/s1/") and store.read(key) == b"part one part two"
    aborted = store.begin()
    aborted.write(b"torn")
    assert store.sweep() == 1  # a crash's leftover
    assert b"".join(store.iter_chunks(key, 4)) == b"part one part two"
    store.delete(key)
    store.delete(key)
    with pytest.raises(ValueError):
        store.read("../escape")


def test_the_rate_limiter_allows_a_number_per_window() -> None:
    limiter = RateLimiter(limit=2, window_s=60)
    assert limiter.take("a", now=0) == 0 and limiter.take("a", now=1) == 0
    assert limiter.take("a", now=2) == pytest.approx(58)
    assert limiter.take("b", now=2) == 0
    assert limiter.take("a", now=60.5) == 0


def test_content_digest_round_trips_and_garbage_is_refused() -> None:
    raw = bytes(range(32))
    assert parse_digest(digest_header(raw)) == raw
    assert parse_digest("md5=:x:, " + digest_header(raw)) == raw
    for bad in (None, "", "sha-256=abc", "sha-256=:AAAA:"):
        with pytest.raises(ApiError):
            parse_digest(bad)


@given(st.text(max_size=200))
def test_a_garbled_segment_header_is_a_400(text: str) -> None:
    try:
        meta = parse_meta(text)
    except ApiError as exc:
        assert exc.status == 400
    else:
        assert len(meta.plain_sha256) == 64
