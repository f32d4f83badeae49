"""The running service's state: settings, keys, database, object store, probe rate limits.

:meth:`Service.open` is the start: keys made or checked, the database migrated, and (for
``serve``, before it answers) what a ``kill -9`` left behind removed (temporary objects;
committed objects no row names). Other commands open the same folder without sweeping:
they may run beside a serving process.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

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
        engine = db.make_engine(settings.database)
        db.migrate(engine)
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
        and an object without its row was never acknowledged."""
        temporaries = self.objects.sweep()
        orphans = 0
        if isinstance(self.objects, LocalObjectStore):
            with self.engine.connect() as conn:
                named = set(conn.scalars(select(models.segments.c.object_key)))
            root = self.objects.root
            for path in (
                (root / SEGMENT_PREFIX).rglob("*") if (root / SEGMENT_PREFIX).is_dir() else ()
            ):
                key = path.relative_to(root).as_posix()
                if path.is_file() and key not in named:
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
