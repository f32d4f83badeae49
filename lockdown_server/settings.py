"""The service's one settings object (what ``lockdown-server serve`` runs with)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class ServiceSettings:
    """Where the data lives and the limits the API enforces."""

    #: the data folder: database, object store, keys
    data: Path
    #: the URL candidates' clients reach the service at (written into exam configurations)
    public_url: str = ""
    #: SQLAlchemy URL; empty: SQLite ``service.db`` in the data folder (one process only);
    #: ``postgresql+psycopg://…``: several service processes may share it
    database_url: str = ""
    #: connections each process keeps to PostgreSQL (and as many more in bursts)
    database_pool: int = 20
    #: S3 bucket for segments and probes; empty: the ``objects`` folder in the data folder
    s3_bucket: str = ""
    #: S3-compatible endpoint (MinIO, Ceph); empty: AWS's, from boto3's configuration
    s3_endpoint: str = ""
    #: a key prefix inside the bucket (several services in one bucket)
    s3_prefix: str = ""
    #: with a shared database, what a crash left is removed at start only once this old
    #: (another process may be between storing an object and committing its row)
    shared_sweep_age_s: float = 3600.0
    session_token_s: int = 3600
    #: a session seen this recently is alive: a second session of its candidate gets 409
    presence_window_s: float = 45.0
    max_segment_bytes: int = 256 * MIB
    #: below this much free space a segment is refused with 507 (room for the database)
    min_free_bytes: int = 64 * MIB
    storage_retry_after_s: int = 30
    probe_max_bytes: int = 4 * MIB
    probe_per_minute: int = 6
    checks_per_minute: int = 30
    max_event_batch_bytes: int = 8 * MIB
    max_events_per_batch: int = 5000
    max_check_bytes: int = 1 * MIB

    @property
    def database(self) -> str:
        return self.database_url or f"sqlite:///{self.data / 'service.db'}"

    @property
    def shared(self) -> bool:
        """Several service processes may run on this database and object store."""
        return not self.database.startswith("sqlite")

    @property
    def objects(self) -> Path:
        return self.data / "objects"

    @property
    def keys(self) -> Path:
        return self.data / "keys"
