"""The demo's proctoring service: ``lockdown-server serve`` on 127.0.0.1, in a child process.

A child process, not a thread of the client: the client never imports ``lockdown_server``
(DESIGN.md; the service is not bundled with it), the service's event loop and database
writes stay off the exam's GUI thread, and the demo runs the real deployment's shape — a
separate service spoken to over HTTP. The service's data folder (SQLite database, object
store, keys) is the demo's own; exams and candidates are made with the real command.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from lockdown import log
from lockdown.errors import UserError
from lockdown.session.client import ServiceClient

START_TIMEOUT_S: Final = 60.0


class EmbeddedServiceError(UserError):
    """The demo's service did not start or refused a command."""


def available() -> bool:
    """Whether ``lockdown_server`` and its libraries are installed next to the client
    (a source checkout with the ``server`` extra; never a frozen client bundle)."""
    if getattr(sys, "frozen", False):
        return False
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("lockdown_server", "fastapi", "uvicorn")
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedService:
    """``lockdown-server serve --host 127.0.0.1`` on ``data``, started and stopped by the demo."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = _free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data.parent / "service.log"

    def _argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "lockdown_server", *args]

    def start(self) -> EmbeddedService:
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(
                self._argv(
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data",
                    str(self.data),
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ},
            )
        client = ServiceClient(self.url, timeout=(1.0, 2.0))
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    raise EmbeddedServiceError(
                        f"the demo's proctoring service stopped at once; see {self.log_file}"
                    )
                if client.healthz().ok:
                    log.init.info(
                        "The demo's proctoring service runs at %s (data %s)", self.url, self.data
                    )
                    return self
                time.sleep(0.1)
        finally:
            client.close()
        self.stop()
        raise EmbeddedServiceError(
            f"the demo's proctoring service did not get ready in {START_TIMEOUT_S:.0f} s; see {self.log_file}"
        )

    def run(self, *args: str) -> str:
        """``lockdown-server COMMAND [ACTION] --data DATA ARGS…``; its standard output."""
        command, *rest = args
        sub = rest[:1] if command in ("exam", "candidates") else []
        tail = rest[1:] if sub else rest
        done = subprocess.run(
            self._argv(command, *sub, "--data", str(self.data), *tail),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise EmbeddedServiceError(
                f"lockdown-server {' '.join(args[:2])} failed: {done.stderr.strip()[-300:]}"
            )
        return done.stdout

    def token_key(self) -> str:
        """The service's public token key (it signs the exam configurations it prints)."""
        return (self.data / "keys" / "token.pub").read_text(encoding="ascii").strip()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
