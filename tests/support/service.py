"""A real ``lockdown-server serve`` (uvicorn) on 127.0.0.1 in a process of its own.

:class:`ServiceProcess` starts it on a data folder, waits for ``/healthz``, and can kill it
(``SIGKILL``) and start it again on the same folder and port. Exams and candidates are
made through the real command (``python -m lockdown_server exam create`` …). The fixtures
``lockdown_service`` (one per test session) and ``service_factory`` (fresh ones, stopped
after the test) live in tests/conftest.py.
"""

from __future__ import annotations

import contextlib
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

from lockdown.config import keys as config_keys

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


@dataclass
class ServiceProcess:
    data: Path
    port: int = field(default_factory=free_port)
    extra: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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
                if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
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

    def restart(self) -> None:
        self.kill()
        self.start()

    # -- the data it serves -----------------------------------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command, *rest = args
        sub = rest[:1] if command in ("exam", "candidates") else []
        tail = rest[1:] if sub else rest
        return run_cli(command, *sub, "--data", str(self.data), *tail, check=check)

    def create_exam(self, exam_id: str, *, streams: str = "camera,microphone,screen") -> bytes:
        """A new exam (window: the next day); its signed configuration."""
        done = self.cli(
            "exam",
            "create",
            "--id",
            exam_id,
            "--title",
            f"Exam {exam_id}",
            "--streams",
            streams,
            "--start",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)),
            "--end",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400)),
            "--url",
            self.url,
        )
        return done.stdout.encode()

    def add_candidate(self, exam_id: str, user: str, name: str = "Ada", group: str = "A") -> str:
        """A launch link for a new candidate of ``exam_id``."""
        done = self.cli(
            "candidates",
            "add",
            "--exam",
            exam_id,
            "--id",
            user,
            "--name",
            name,
            "--group",
            group,
            "--url",
            self.url,
        )
        return done.stdout.strip()

    def token_key(self) -> Ed25519PrivateKey:
        """The service's signing key (to make tokens it would make: expired ones)."""
        return config_keys.load_private(self.data / "keys" / "token.key")


def launch_token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]
