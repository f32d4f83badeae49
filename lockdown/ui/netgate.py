"""The network gate: every TCP connection of the web engine passes the URL filter's decision.

QtWebEngine asks the request interceptor about a redirect's target only *after* it told
the network service to follow the redirect (measured: a ``<script>`` or ``fetch`` 302'd
to a blocked origin reached that origin although the interceptor blocked it). And
WebRTC's sockets never pass the interceptor at all. So the engine is started with
``--proxy-server=socks5://127.0.0.1:PORT`` pointing at this gate (and UDP WebRTC off,
see :mod:`lockdown.ui.hardening`): the engine opens no connection of its own, the gate
opens it for it.

The gate lets a connection to ``host:port`` through when the request interceptor has
allowed a URL on that host and port in this session (it tells the gate before the
request starts). For a host and port it has not seen, the gate waits a moment for the
interceptor's decision (a redirect's target is decided just after the engine asks to
connect) and refuses the connection when the decision is "blocked" or none comes —
WebRTC's TURN-over-TCP to a host no URL rule allows, for instance. Every refusal is
reported (journalled as ``web.connection_refused``).

The gate decides per host and port: a redirect to a blocked path of a host the exam is
allowed to reach still reaches that host (the interceptor then blocks the response).

WebRTC (measured in this engine, see ``docs/web-engine.md``): deleting
``RTCPeerConnection`` from the page is undone through a fresh ``about:blank`` frame, and
no Chromium switch removes it; ``--force-webrtc-ip-handling-policy=disable_non_proxied_udp``
stops STUN and every UDP socket but lets TURN over TCP go direct, unless a proxy is set:
then it goes through the proxy, this gate. The gate recognises a TURN allocation by the
STUN magic cookie in its first bytes and refuses it unless the exam allows WebRTC
(``browser.webrtc``); either way it is journalled. (TURN over TLS cannot be told from
HTTPS: it reaches only a host:port the URL filter allowed.)
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import urlsplit

from lockdown import log
from lockdown.events import Event

Endpoint = tuple[str, int]
#: How long a connection to an unseen host waits for the interceptor's decision.
DECISION_WAIT_S: Final = 2.0
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SOCKS_VERSION: Final = 5
_REPLY_OK: Final = 0
_REPLY_NOT_ALLOWED: Final = 2
_REPLY_UNREACHABLE: Final = 4
_REPLY_UNSUPPORTED: Final = 7
#: A STUN message (TURN over TCP sends them as they are) has this at bytes 4-8.
_COOKIE: Final = bytes.fromhex("2112a442")
_STUN_PEEK: Final = 8


def ascii_host(host: str) -> str:
    """A host name as it goes on the wire: lower-case, IDNA (punycode), no brackets."""
    bare = host.strip("[]").lower()
    try:
        return bare.encode("idna").decode("ascii")
    except UnicodeError:
        return bare


def endpoint(url: str) -> Endpoint | None:
    """``(host, port)`` an http(s)/ws(s) URL connects to, host lower-case without brackets."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return ascii_host(parts.hostname), port or _DEFAULT_PORTS[scheme]


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed during the SOCKS handshake")
        data += chunk
    return data


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


class NetworkGate:
    """A SOCKS5 proxy on 127.0.0.1 that opens only the connections the URL filter allows."""

    def __init__(self, *, decision_wait_s: float = DECISION_WAIT_S) -> None:
        self._wait = decision_wait_s
        self._cond = threading.Condition()
        self._permitted: set[Endpoint] = set()
        self._refused_at: dict[Endpoint, float] = {}
        self._report: Callable[[Event], None] | None = None
        #: whether the exam allows WebRTC peer connections (TURN over TCP)
        self.webrtc = False
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._serve, name="lockdown-netgate", daemon=True)
        self._closed = False

    @property
    def port(self) -> int:
        return int(self._server.getsockname()[1])

    @property
    def proxy_url(self) -> str:
        return f"socks5://127.0.0.1:{self.port}"

    def start(self) -> NetworkGate:
        self._server.listen(64)
        self._thread.start()
        log.init.info("Network gate listening on 127.0.0.1:%d", self.port)
        return self

    def stop(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()

    def set_report(self, report: Callable[[Event], None] | None) -> None:
        """Where refusals are reported (the session journal), from the gate's threads."""
        self._report = report

    # -- decisions (from the request interceptor, on the GUI thread) ----------------------

    def permit(self, url: str) -> None:
        """The interceptor allowed ``url``: connections to its host and port may open."""
        point = endpoint(url)
        if point is None:
            return
        with self._cond:
            if point not in self._permitted:
                self._permitted.add(point)
                self._cond.notify_all()

    def refuse(self, url: str) -> None:
        """The interceptor blocked ``url``: a connection waiting for it is refused now."""
        point = endpoint(url)
        if point is None:
            return
        with self._cond:
            self._refused_at[point] = time.monotonic()
            self._cond.notify_all()

    def allows(self, point: Endpoint) -> bool:
        """Whether a connection to ``point`` may open (waits for a pending decision)."""
        asked = time.monotonic()
        deadline = asked + self._wait
        with self._cond:
            while True:
                if point in self._permitted:
                    return True
                if self._refused_at.get(point, -1.0) >= asked:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)

    # -- the proxy ------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(
                target=self._handle, args=(conn,), name="lockdown-netgate-conn", daemon=True
            ).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            point = self._handshake(conn)
        except (OSError, ConnectionError, ValueError):
            conn.close()
            return
        if point is None:
            conn.close()
            return
        if not self.allows(point):
            self._refused(point)
            self._reply(conn, _REPLY_NOT_ALLOWED)
            conn.close()
            return
        try:
            upstream = socket.create_connection(point, timeout=15)
        except OSError:
            self._reply(conn, _REPLY_UNREACHABLE)
            conn.close()
            return
        upstream.settimeout(None)
        self._reply(conn, _REPLY_OK)
        back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
        back.start()
        if self._first_bytes_pass(conn, upstream, point):
            _pipe(conn, upstream)
        else:
            with contextlib.suppress(OSError):
                upstream.shutdown(socket.SHUT_RDWR)
                conn.shutdown(socket.SHUT_RDWR)
        back.join()
        conn.close()
        upstream.close()

    def _first_bytes_pass(
        self, conn: socket.socket, upstream: socket.socket, point: Endpoint
    ) -> bool:
        """Forward the client's first bytes unless they open a TURN allocation the exam
        does not allow (a STUN message: its magic cookie at bytes 4-8)."""
        first = b""
        try:
            while len(first) < _STUN_PEEK:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                first += chunk
        except OSError:
            return False
        turn = len(first) >= _STUN_PEEK and first[0] & 0xC0 == 0 and first[4:8] == _COOKIE
        if turn:
            self._webrtc(point, allowed=self.webrtc)
            if not self.webrtc:
                return False
        try:
            upstream.sendall(first)
        except OSError:
            return False
        return bool(first)

    def _handshake(self, conn: socket.socket) -> Endpoint | None:
        version, count = _recv_exact(conn, 2)
        if version != _SOCKS_VERSION:
            return None
        methods = _recv_exact(conn, count)
        if 0 not in methods:  # no authentication is all we offer
            conn.sendall(bytes([_SOCKS_VERSION, 0xFF]))
            return None
        conn.sendall(bytes([_SOCKS_VERSION, 0]))
        version, command, _, kind = _recv_exact(conn, 4)
        if kind == 1:
            host = socket.inet_ntop(socket.AF_INET, _recv_exact(conn, 4))
        elif kind == 4:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(conn, 16))
        elif kind == 3:
            (length,) = _recv_exact(conn, 1)
            host = _recv_exact(conn, length).decode("ascii")
        else:
            return None
        (port,) = struct.unpack("!H", _recv_exact(conn, 2))
        if command != 1:  # CONNECT only: no BIND, no UDP ASSOCIATE
            self._reply(conn, _REPLY_UNSUPPORTED)
            return None
        return ascii_host(host), port

    @staticmethod
    def _reply(conn: socket.socket, code: int) -> None:
        with contextlib.suppress(OSError):
            conn.sendall(bytes([_SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0]))

    def _webrtc(self, point: Endpoint, *, allowed: bool) -> None:
        host, port = point
        log.web.warning(
            "WebRTC TURN connection to %s:%d %s", host, port, "allowed" if allowed else "refused"
        )
        report = self._report
        if report is not None:
            kind = "web.webrtc_connection" if allowed else "web.webrtc_refused"
            report(Event(kind, {"host": host, "port": port}))

    def _refused(self, point: Endpoint) -> None:
        host, port = point
        log.web.warning("Network gate refused a connection to %s:%d", host, port)
        report = self._report
        if report is not None:
            report(
                Event(
                    "web.connection_refused",
                    {"host": host, "port": port, "reason": "no allowed request to this host"},
                )
            )


_gates: list[NetworkGate] = []


def start() -> NetworkGate:
    """Start this process's gate (once, before the web engine starts)."""
    if not _gates:
        _gates.append(NetworkGate().start())
    return _gates[0]


def current() -> NetworkGate | None:
    """The process's gate when the web engine was started behind one."""
    return _gates[0] if _gates else None


def stop() -> None:
    """Stop the process's gate (the engine cannot connect anywhere afterwards)."""
    while _gates:
        _gates.pop().stop()
