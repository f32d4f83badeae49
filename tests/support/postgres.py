"""A real PostgreSQL 15 for the tests: ``initdb`` into a temporary folder as ``nobody``,
``pg_ctl start`` on 127.0.0.1 and a free port, a fresh database per test, stopped at the end.

PostgreSQL refuses to run as root, hence the unprivileged user (docs/PLATFORM facts).
Authentication is ``trust`` on loopback only: the server listens on 127.0.0.1 and its
socket folder is private to ``nobody``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from tests.support.service import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "nobody"
SUPERUSER = "lockdown"


def available() -> str | None:
    """Why PostgreSQL cannot run here, or None when it can."""
    if not (BIN / "initdb").is_file():
        return f"PostgreSQL 15 is not installed ({BIN}/initdb missing; scripts/bootstrap.sh)"
    if os.geteuid() != 0:
        return "starting PostgreSQL as an unprivileged user needs root (runuser)"
    return None


def _as_user(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["runuser", "-u", USER, "--", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{args[0]} failed: {done.stdout}{done.stderr}")
    return done


@dataclass
class PostgresServer:
    folder: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lockdown-pg-")))
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.folder / "data"

    def start(self) -> PostgresServer:
        entry = pwd.getpwnam(USER)
        os.chown(self.folder, entry.pw_uid, entry.pw_gid)
        self.folder.chmod(0o700)
        _as_user(
            str(BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        options = (
            f"-k {self.folder} -p {self.port} -c listen_addresses=127.0.0.1 "
            "-c max_connections=300 -c fsync=on -c shared_buffers=64MB"
        )
        _as_user(
            str(BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            _as_user(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
