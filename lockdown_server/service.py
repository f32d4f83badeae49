"""The running service's state: settings, keys, database, object store, probe rate limits.

:meth:`Service.open` is the start: keys made or checked, the database migrated, and (for
``serve``, before it answers) what a ``kill -9`` left behind removed (temporary objects;
committed objects no row names). Other commands open the same folder without sweeping:
they may run beside a serving process.

Several processes (PostgreSQL + S3, :attr:`ServiceSettings.shared`) keep nothing in memory
another one needs: sessions, segments, events, flags and presence are rows. What is per
process: the probe and check rate limits (:class:`RateLimiter`; N processes behind a load
balancer allow up to N times the limit) and the database connection pool. The sweep at
start removes only what is older than ``shared_sweep_age_s``, since another process may be
between storing an object and committing its row.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, select
from sqlalchemy.exc import ArgumentError, OperationalError

from lockdown_server import keys
from lockdown_server.settings import ServiceSettings
from lockdown_server.store import db, models
from lockdown_server.store.objects import LocalObjectStore, ObjectStore

log = logging.getLogger("lockdown_server")

SEGMENT_PREFIX = "segments"
PROBE_PREFIX = "probes"


@dataclass
class RateLimiter:
    """At most ``limit`` events per ``window_s`` per key (in this process)."""

    limit: int
    window_s: float = 60.0
    _seen: dict[str, collections.deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: str, now: float | None = None) -> float:
        """0 when allowed (and counted), else the seconds until the next one is."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            seen = self._seen.setdefault(key, collections.deque())
            while seen and seen[0] <= moment - self.window_s:
                seen.popleft()
            if len(seen) >= self.limit:
                return seen[0] + self.window_s - moment
            seen.append(moment)
            return 0.0


@dataclass
class Service:
    settings: ServiceSettings
    keys: keys.ServiceKeys
    engine: Engine
    objects: ObjectStore
    probes: RateLimiter
    checks: RateLimiter

    @classmethod
    def open(cls, settings: ServiceSettings, *, sweep: bool = False) -> Service:
        """Open (and on first use make) the data folder; ``sweep`` (``serve`` only, before
        it answers anything) removes what a crash left behind.

        Raises:
            ServiceError: the data folder or its keys cannot be used.
        """
        from lockdown_server.errors import ServiceError

        try:
            settings.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(
                f"{settings.data}: cannot make the data folder ({exc.strerror})"
            ) from None
        service_keys = keys.load_or_create(settings.keys)
        engine = db.make_engine(settings.database, pool=settings.database_pool)
        try:
            db.migrate(engine)
        except (OperationalError, ArgumentError, ImportError) as exc:
            where = engine.url.render_as_string(hide_password=True)
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise ServiceError(f"{where}: cannot open the database ({reason})") from None
        objects: ObjectStore
        if settings.s3_bucket:
            from lockdown_server.store.s3 import S3ObjectStore

            objects = S3ObjectStore(
                settings.s3_bucket, endpoint_url=settings.s3_endpoint, prefix=settings.s3_prefix
            )
        else:
            objects = LocalObjectStore(settings.objects)
        service = cls(
            settings,
            service_keys,
            engine,
            objects,
            probes=RateLimiter(settings.probe_per_minute),
            checks=RateLimiter(settings.checks_per_minute),
        )
        if sweep:
            service.sweep()
        return service

    def sweep(self) -> None:
        """Remove temporary objects and segment objects that no row names (a crash between
        storing an object and committing its row): the row never exists without its object,
        and an object without its row was never acknowledged. With a shared database only
        what is older than ``shared_sweep_age_s`` (another process may be mid-upload)."""
        age = self.settings.shared_sweep_age_s if self.settings.shared else 0.0
        temporaries = self.objects.sweep(age)
        candidates = list(self.objects.keys(SEGMENT_PREFIX, age))
        orphans = 0
        if candidates:
            with self.engine.connect() as conn:
                named = set(conn.scalars(select(models.segments.c.object_key)))
            for key in candidates:
                if key not in named:
                    self.objects.delete(key)
                    orphans += 1
        if temporaries or orphans:
            log.info(
                "Removed %d temporary and %d unacknowledged objects left by a crash",
                temporaries,
                orphans,
            )

    def close(self) -> None:
        self.engine.dispose()
