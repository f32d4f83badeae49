"""A real ``lockdown-server serve`` (uvicorn) on 127.0.0.1 in a process of its own.

:class:`ServiceProcess` starts it on a data folder, waits for ``/healthz``, and can kill it
(``SIGKILL``) and start it again on the same folder and port. Exams and candidates are
made through the real command (``python -m lockdown_server exam create`` …). The fixtures
``lockdown_service`` (one per test session) and ``service_factory`` (fresh ones, stopped
after the test) live in tests/conftest.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lockdown.capture.base import Segment
from lockdown.config import keys as config_keys
from lockdown.upload import crypto
from lockdown.upload.spool import Spool
from lockdown_server import exams
from lockdown_server.service import Service
from lockdown_server.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(
    *args: str, check: bool = True, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``lockdown-server ARGS`` in a process of its own (stdout, stderr as text)."""
    done = subprocess.run(
        [sys.executable, "-m", "lockdown_server", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(f"lockdown-server {args[0]} failed ({done.returncode}): {done.stderr}")
    return done


@dataclass(frozen=True)
class Storage:
    """Where a service keeps its data: SQLite + the data folder (empty), or PostgreSQL + S3."""

    database_url: str = ""
    s3_bucket: str = ""
    s3_endpoint: str = ""

    @property
    def name(self) -> str:
        return "pg-s3" if self.database_url else "sqlite"

    def args(self) -> tuple[str, ...]:
        out: tuple[str, ...] = ()
        if self.database_url:
            out += ("--database-url", self.database_url)
        if self.s3_bucket:
            out += ("--s3-bucket", self.s3_bucket, "--s3-endpoint", self.s3_endpoint)
        return out

    def settings(self, data: Path) -> ServiceSettings:
        return ServiceSettings(
            data,
            database_url=self.database_url,
            s3_bucket=self.s3_bucket,
            s3_endpoint=self.s3_endpoint,
        )


@dataclass
class ServiceProcess:
    data: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    storage: Storage = field(default_factory=Storage)
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    #: with TLS (``--tls-cert`` in ``extra``): the certificate clients verify against
    ca: Path | None = None
    _opened: Service | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ca else 'http'}://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    @property
    def log(self) -> Path:
        return self.data.parent / f"{self.data.name}-service.log"

    def start(self) -> ServiceProcess:
        self.data.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "lockdown_server",
                    "serve",
                    "--data",
                    str(self.data),
                    "--port",
                    str(self.port),
                    *self.storage.args(),
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_env(),
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the service exited: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(requests.RequestException):
                verify = str(self.ca) if self.ca else True
                if requests.get(self.url + "/healthz", timeout=2, verify=verify).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"the service did not get ready: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        """``kill -9``: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None
        if self._opened is not None:
            self._opened.close()
            self._opened = None

    def restart(self) -> None:
        self.kill()
        self.start()

    # -- the data it serves -----------------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        sub = rest[:1] if command in ("exam", "candidates") else []
        tail = rest[1:] if sub else rest
        data = ("--data", str(self.data), *self.storage.args())
        return run_cli(command, *sub, *data, *tail, check=check)

    def open(self) -> Service:
        """The service's data in this process (beside the running one, as the CLI does)."""
        if self._opened is None:
            self._opened = Service.open(self.storage.settings(self.data))
        return self._opened

    def object_keys(self, prefix: str = "segments") -> list[str]:
        """The committed objects under ``prefix`` in whichever store the service uses."""
        return sorted(self.open().objects.keys(prefix))

    def create_exam(
        self, exam_id: str, *, streams: str = "camera,microphone,screen", retention_days: int = 30
    ) -> bytes:
        """A new exam (window: from a minute ago to a day ahead); its signed configuration."""
        _, config = exams.create(
            self.open(),
            title=f"Exam {exam_id}",
            streams=streams.split(","),
            valid_from=time.time() - 60,
            valid_until=time.time() + 86400,
            service_url=self.url,
            exam_id=exam_id,
            retention_days=retention_days,
        )
        return config

    def add_candidate(self, exam_id: str, user: str, name: str = "Ada", group: str = "A") -> str:
        """A launch link for a new candidate of ``exam_id``."""
        service = self.open()
        (link,) = exams.add_candidates(
            service, exams.get(service, exam_id), [exams.Candidate(user, group, name)], self.url
        )
        return link

    def token_key(self) -> Ed25519PrivateKey:
        """The service's signing key (to make tokens it would make: expired ones)."""
        return config_keys.load_private(self.data / "keys" / "token.key")


def launch_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


# -- a minimal protocol client for the service's tests (the real one is lockdown.session) --


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


@dataclass
class StoredSegment:
    """One segment file of a real spool, as the client uploads it."""

    stream: str
    seq: int
    body: bytes
    meta: dict[str, object]

    @property
    def digest(self) -> str:
        return content_digest(self.body)


class Api:
    """Plain calls to the service (no retries): each returns the ``requests`` response."""

    def __init__(self, base: str, *, timeout: float = 20) -> None:
        self.base = base.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()

    def close(self) -> None:
        self.http.close()

    def _auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def exchange(self, launch: str) -> requests.Response:
        return self.http.post(
            f"{self.base}/api/v1/token", json={"launch_token": launch}, timeout=self.timeout
        )

    def session_token(self, launch: str) -> str:
        reply = self.exchange(launch)
        assert reply.status_code == 200, reply.text
        return str(reply.json()["session_token"])

    def create_session(
        self,
        token: str,
        sid: str,
        *,
        build: str = "installed",
        spool_header: object = None,
        resume: dict[str, str] | None = None,
    ) -> requests.Response:
        body: dict[str, object] = {
            **(resume or {}),
            "session_id": sid,
            "client_version": "0.1.0",
            "build": build,
            "build_identity": "test-build",
            "settings_hash": "0" * 64,
            "isolation_mode": "shared",
            "spool_header": spool_header or {},
        }
        return self.http.post(
            f"{self.base}/api/v1/sessions",
            json=body,
            headers=self._auth(token),
            timeout=self.timeout,
        )

    def put(
        self, token: str, sid: str, seg: StoredSegment, *, digest: str | None = None
    ) -> requests.Response:
        headers = {
            **self._auth(token),
            "Content-Digest": digest or seg.digest,
            "Lockdown-Segment": json.dumps(seg.meta),
            "Content-Type": "application/octet-stream",
        }
        return self.http.put(
            f"{self.base}/api/v1/sessions/{sid}/segments/{seg.stream}/{seg.seq}",
            data=seg.body,
            headers=headers,
            timeout=self.timeout,
        )

    def head(self, token: str, sid: str, stream: str, seq: int) -> requests.Response:
        return self.http.head(
            f"{self.base}/api/v1/sessions/{sid}/segments/{stream}/{seq}",
            headers=self._auth(token),
            timeout=self.timeout,
        )

    def manifest(self, token: str, sid: str) -> requests.Response:
        return self.http.get(
            f"{self.base}/api/v1/sessions/{sid}/manifest",
            headers=self._auth(token),
            timeout=self.timeout,
        )

    def events(
        self, token: str, sid: str, events: list[dict[str, object]], heads: dict[str, object]
    ) -> requests.Response:
        return self.http.post(
            f"{self.base}/api/v1/sessions/{sid}/events",
            json={"events": events, "heads": heads},
            headers=self._auth(token),
            timeout=self.timeout,
        )

    def close_session(self, token: str, sid: str, body: dict[str, object]) -> requests.Response:
        return self.http.post(
            f"{self.base}/api/v1/sessions/{sid}/close",
            json=body,
            headers=self._auth(token),
            timeout=self.timeout,
        )


def spool_segments(
    folder: Path, recipient_pub: str, segments: list[Segment]
) -> tuple[dict[str, object], list[StoredSegment]]:
    """A real encrypted spool of ``segments`` for ``recipient_pub``: its header JSON and the
    segment files as the client uploads them (oldest first, with previous digests)."""
    spool = Spool.open(
        folder,
        report=lambda _e: None,
        max_bytes=1 << 30,
        recipient=crypto.parse_recipient(recipient_pub),
    )
    with spool:
        for segment in segments:
            spool.add(segment)
        records = spool.records()
    header = json.loads((folder / "spool.json").read_text())
    out: list[StoredSegment] = []
    previous: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.start_utc, r.stream.value, r.seq)):
        body = (folder / "segments" / record.file).read_bytes()
        stream = record.stream.value
        out.append(
            StoredSegment(
                stream,
                record.seq,
                body,
                {
                    "start_utc": record.start_utc.isoformat(),
                    "duration": record.duration,
                    "plain_sha256": record.sha256,
                    "previous_digest": previous.get(stream, ""),
                },
            )
        )
        previous[stream] = content_digest(body)
    return header, out
