"""The store on PostgreSQL and S3 (moto), below the HTTP API: the same migrations build
exactly the models; of many concurrent inserts of one key exactly one wins; processes
starting together migrate once; an S3 object is visible only whole, under its final key;
cut replies and resets on the way to S3 (boto3 retries) never store a key twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy import func, select

from lockdown_server.store import db, models
from lockdown_server.store.s3 import S3ObjectStore
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.postgres import PostgresServer
from tests.support.s3 import MotoServer

EXAM = {
    "id": "e1",
    "title": "T",
    "streams": "[]",
    "retention_days": 1,
    "config_body": "",
    "created_at": 0.0,
}


def test_the_migrations_build_exactly_the_models_on_postgresql(postgres: PostgresServer) -> None:
    engine = db.make_engine(postgres.new_database())
    with ThreadPoolExecutor(4) as pool:  # four processes starting at once: one migrates
        list(pool.map(lambda _n: db.migrate(engine), range(4)))
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), models.metadata) == []
    engine.dispose()


def test_of_concurrent_inserts_of_one_key_exactly_one_wins(postgres: PostgresServer) -> None:
    engine = db.make_engine(postgres.new_database(), pool=16)
    db.migrate(engine)
    barrier = threading.Barrier(16)

    def insert(n: int) -> bool:
        with engine.begin() as conn:
            barrier.wait(10)
            return db.insert_once(conn, models.exams, {**EXAM, "title": f"T{n}"})

    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(insert, range(16)))
    assert won.count(True) == 1
    with engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(models.exams)) == 1
    engine.dispose()


def test_an_s3_object_is_visible_only_whole_under_its_final_key(moto: MotoServer) -> None:
    bucket = moto.new_bucket()
    store = S3ObjectStore(bucket, endpoint_url=moto.endpoint)
    upload = store.begin()
    for n in range(50):
        upload.write(bytes([n]) * 200_000)  # 10 MB: a multipart upload to the temporary key
        assert moto.keys(bucket) == []  # nothing visible while it arrives
    key = store.commit(upload, "segments/s1")
    assert moto.keys(bucket) == [key] and key.startswith("segments/s1/")
    assert store.read(key) == b"".join(bytes([n]) * 200_000 for n in range(50))
    aborted = store.begin()
    aborted.write(b"torn")
    aborted.abort()
    assert moto.keys(bucket) == [key]


@pytest.mark.parametrize(
    "faults",
    [Faults(cut_reply=0.3), Faults(reset=0.3, reset_after=20_000)],
    ids=["cut-replies", "resets"],
)
def test_faults_on_the_way_to_s3_never_store_a_key_twice(moto: MotoServer, faults: Faults) -> None:
    """boto3 retries what it may; a commit that still fails returns no key (the service
    answers 5xx and the client sends the segment again). Each returned key holds its
    body whole, once; anything else is a leftover the start's sweep removes."""
    bucket = moto.new_bucket()
    bodies: dict[str, bytes] = {}
    failed = 0
    with FaultProxy(("127.0.0.1", moto.port), seed=20) as proxy:
        store = S3ObjectStore(bucket, endpoint_url=proxy.url)
        proxy.set_faults(faults)
        n = 0
        while len(bodies) < 12 and n < 100:
            n += 1
            body = n.to_bytes(4, "big") * 15_000
            upload = store.begin()
            upload.write(body)
            try:
                bodies[store.commit(upload, "segments/s1")] = body
            except (BotoCoreError, ClientError):
                failed += 1
        stats = dict(proxy.stats)
    print(f"{len(bodies)} committed, {failed} failed, proxy {stats}")
    assert len(bodies) == 12
    assert stats.get("cut_reply", 0) + stats.get("reset", 0) > 0, stats  # faults happened
    direct = S3ObjectStore(bucket, endpoint_url=moto.endpoint)
    assert all(direct.read(key) == body for key, body in bodies.items())
    leftovers = set(moto.keys(bucket)) - set(bodies)
    committed_bodies = list(bodies.values())
    for key in leftovers:  # never a second copy of a committed body under another key
        assert key.startswith(".tmp/") or direct.read(key) not in committed_bodies
    direct.sweep()
    assert not set(moto.keys(bucket, ".tmp/"))
