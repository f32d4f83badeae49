"""A TCP fault proxy of the project's own on 127.0.0.1 (``tc netem`` is not available here).

It sits in front of a server and forwards bytes both ways, and on each new connection
decides (from a seeded random generator, in accept order) whether to misbehave:

- ``drop``: close the connection at once, nothing forwarded (a dead or flapping service);
- ``error``: answer an HTTP error itself (``error_status``, with ``Retry-After`` when set)
  after reading the request, never reaching the server (a 5xx from a load balancer);
- ``reset``: forward ``reset_after`` bytes of the request, then reset both sides (a
  connection reset mid-body: the server sees a torn upload);
- ``cut_reply``: forward the whole request, let the server answer, then reset the client's
  side after ``reply_after`` bytes of the reply (the server stored it, the client never
  heard: the case exactly-once is about);

and on every connection ``delay_s`` (before the first byte each way) and ``rate_bps``
(a fixed byte rate each way); ``link_bps`` caps the bytes towards the server of all
connections together (one uplink shared by parallel uploads). :meth:`FaultProxy.set_faults` switches faults at run time,
:meth:`FaultProxy.set_upstream` points it at a restarted server, :meth:`FaultProxy.sever`
cuts every open connection; :attr:`FaultProxy.stats` counts what happened.

Faults are decided per connection: a client that keeps a connection alive sees a new
decision only on its next connection.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Final

CHUNK: Final = 16 * 1024
_HEAD_LIMIT: Final = 64 * 1024


@dataclass(frozen=True)
class Faults:
    """What the proxy does to new connections; probabilities from 0 to 1."""

    drop: float = 0.0
    error: float = 0.0
    error_status: int = 503
    retry_after: int | None = 1
    reset: float = 0.0
    reset_after: int = 1024
    cut_reply: float = 0.0
    reply_after: int = 0
    delay_s: float = 0.0
    rate_bps: int | None = None
    link_bps: int | None = None


NONE: Final = Faults()


def _reset(sock: socket.socket) -> None:
    """Close with an RST (linger 0), not a FIN.

    ``shutdown(SHUT_RD)`` first wakes a thread blocked reading the socket (a bare close
    would wait for it and send nothing); it sends nothing itself.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class _Throttle:
    """Sleeps so that bytes pass at ``rate`` per second at most."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0
        self._lock = threading.Lock()

    def pace(self, n: int) -> None:
        if not self.rate:
            return
        with self._lock:
            if not self.sent:  # the clock starts at the first byte: no credit while idle
                self.start = time.monotonic()
            self.sent += n
            due = self.start + self.sent / self.rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)

    def chunk(self) -> int:
        return max(1, min(CHUNK, self.rate // 10)) if self.rate else CHUNK


class FaultProxy:
    """Listens on 127.0.0.1 (an ephemeral port) and forwards to ``upstream``."""

    def __init__(self, upstream: tuple[str, int], *, seed: int = 0) -> None:
        self.seed = seed
        self._upstream = upstream
        self._random = random.Random(seed)
        self._faults = NONE
        self._link: _Throttle | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.stats: Counter[str] = Counter()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="faultproxy", daemon=True)

    # -- control ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def set_faults(self, faults: Faults) -> None:
        """Faults for connections accepted from now on."""
        with self._lock:
            self._faults = faults
            self._link = _Throttle(faults.link_bps) if faults.link_bps else None

    def set_upstream(self, upstream: tuple[str, int]) -> None:
        with self._lock:
            self._upstream = upstream

    def sever(self) -> None:
        """Reset every connection open now (a network flap)."""
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            _reset(sock)
        self._count("severed", len(socks))

    def stop(self) -> None:
        self._stopped.set()
        _close(self._listener)
        self.sever()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the work ---------------------------------------------------------------------

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.stats[name] += n

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                faults, upstream = self._faults, self._upstream
                roll = [self._random.random() for _ in range(4)]
                self.stats["connections"] += 1
            threading.Thread(
                target=self._serve, args=(client, faults, upstream, roll), daemon=True
            ).start()

    def _track(self, sock: socket.socket, on: bool) -> None:
        with self._lock:
            if on:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def _serve(
        self,
        client: socket.socket,
        faults: Faults,
        upstream: tuple[str, int],
        roll: list[float],
    ) -> None:
        self._track(client, True)
        try:
            if roll[0] < faults.drop:
                self._count("dropped")
                _close(client)
                return
            if roll[1] < faults.error:
                self._count("errors")
                self._answer_error(client, faults)
                return
            try:
                server = socket.create_connection(upstream, timeout=10)
            except OSError:
                self._count("upstream_down")
                _close(client)
                return
            server.settimeout(None)
            self._track(server, True)
            reset_at = faults.reset_after if roll[2] < faults.reset else None
            cut_at = faults.reply_after if roll[3] < faults.cut_reply else None
            up = threading.Thread(
                target=self._pump,
                args=(client, server, faults, reset_at, "up"),
                daemon=True,
            )
            up.start()
            self._pump(server, client, faults, cut_at, "down")
            up.join()
            self._track(server, False)
        finally:
            self._track(client, False)

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        faults: Faults,
        reset_at: int | None,
        direction: str,
    ) -> None:
        throttle = _Throttle(faults.rate_bps)
        link = self._link if direction == "up" else None
        first = True
        passed = 0
        while True:
            try:
                data = src.recv(throttle.chunk())
            except OSError:
                data = b""
            if not data:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)
                if direction == "down":
                    _close(src)
                    _close(dst)
                return
            cut = reset_at is not None and passed + len(data) > reset_at
            if cut and reset_at is not None:
                data = data[: reset_at - passed]
            if first and faults.delay_s:
                time.sleep(faults.delay_s)
            first = False
            throttle.pace(len(data))
            if link is not None:
                link.pace(len(data))
            try:
                dst.sendall(data)
            except OSError:
                _reset(src)
                _reset(dst)
                return
            passed += len(data)
            self._count(f"bytes_{direction}", len(data))
            if cut:
                self._count("reset" if direction == "up" else "cut_reply")
                _reset(src)
                _reset(dst)
                return

    def _answer_error(self, client: socket.socket, faults: Faults) -> None:
        """Read the request (head and a Content-Length body), answer the error, close."""
        client.settimeout(5)
        data = b""
        try:
            while b"\r\n\r\n" not in data and len(data) < _HEAD_LIMIT:
                chunk = client.recv(CHUNK)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip() or b"0")
            remaining = length - len(body)
            while remaining > 0:
                chunk = client.recv(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
            text = b'{"error": "unavailable", "message": "the fault proxy answers an error"}'
            lines = [
                f"HTTP/1.1 {faults.error_status} Fault Proxy".encode(),
                b"Content-Type: application/json",
                f"Content-Length: {len(text)}".encode(),
                b"Connection: close",
            ]
            if faults.retry_after is not None:
                lines.append(f"Retry-After: {faults.retry_after}".encode())
            client.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + text)
        except (OSError, ValueError):
            pass
        _close(client)
