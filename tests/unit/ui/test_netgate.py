"""The network gate: a SOCKS5 proxy on loopback that opens only what the URL filter allowed."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lockdown.events import Event
from lockdown.ui.netgate import NetworkGate, endpoint
from tests.support.httpserver import LocalServer


@pytest.fixture
def gate() -> Iterator[tuple[NetworkGate, list[Event]]]:
    events: list[Event] = []
    made = NetworkGate(decision_wait_s=1.0).start()
    made.set_report(events.append)
    yield made, events
    made.stop()


@pytest.fixture
def upstream() -> Iterator[LocalServer]:
    server = LocalServer().start()
    server.page("/", "hello")
    yield server
    server.stop()


def socks_get(gate: NetworkGate, host: str, port: int) -> tuple[int, bytes]:
    """SOCKS5 CONNECT by name, then GET / when it was granted; (reply code, response)."""
    with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as conn:
        conn.sendall(b"\x05\x01\x00")
        assert conn.recv(2) == b"\x05\x00"
        name = host.encode()
        conn.sendall(b"\x05\x01\x00\x03" + bytes([len(name)]) + name + struct.pack("!H", port))
        reply = conn.recv(10)
        if reply[1] != 0:
            return reply[1], b""
        conn.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := conn.recv(4096):
            data += chunk
        return 0, data


def test_endpoint_is_the_host_and_port_on_the_wire() -> None:
    assert endpoint("https://Bücher.example/x") == ("xn--bcher-kva.example", 443)
    assert endpoint("http://[::1]:8080/") == ("::1", 8080)
    assert endpoint("data:text/html,x") is None


def test_a_permitted_host_is_connected(
    gate: tuple[NetworkGate, list[Event]], upstream: LocalServer
) -> None:
    proxy, events = gate
    proxy.permit(upstream.url("/page"))
    code, data = socks_get(proxy, "127.0.0.1", upstream.port)
    assert code == 0 and data.endswith(b"hello")
    assert events == []


def test_an_unknown_host_is_refused_journalled_and_never_reached(
    gate: tuple[NetworkGate, list[Event]], upstream: LocalServer
) -> None:
    proxy, events = gate
    started = time.monotonic()
    assert socks_get(proxy, "127.0.0.1", upstream.port)[0] == 2
    assert time.monotonic() - started >= 0.9  # it waited for a decision that never came
    assert upstream.requests == []
    assert [e.payload for e in events] == [
        {"host": "127.0.0.1", "port": upstream.port, "reason": "no allowed request to this host"}
    ]


@pytest.mark.parametrize("allowed", [True, False])
def test_a_pending_connection_follows_the_interceptors_decision(
    allowed: bool, gate: tuple[NetworkGate, list[Event]], upstream: LocalServer
) -> None:
    """A redirect's target: the engine asks to connect, then the interceptor decides."""
    proxy, _ = gate
    decide = proxy.permit if allowed else proxy.refuse
    timer = threading.Timer(0.2, decide, args=(upstream.url("/target"),))
    timer.start()
    started = time.monotonic()
    code, _ = socks_get(proxy, "127.0.0.1", upstream.port)
    timer.join()
    assert code == (0 if allowed else 2)
    assert time.monotonic() - started < 0.9  # decided, not timed out
    assert bool(upstream.requests) is allowed


#: A STUN Allocate request (what TURN over TCP sends first), with its magic cookie.
ALLOCATE = bytes.fromhex("0003 0000 2112a442") + bytes(12)


@pytest.mark.parametrize("webrtc", [False, True])
def test_a_turn_allocation_passes_only_when_the_exam_allows_webrtc(
    webrtc: bool, gate: tuple[NetworkGate, list[Event]]
) -> None:
    proxy, events = gate
    proxy.webrtc = webrtc
    received: list[bytes] = []
    with socket.socket() as turn:
        turn.bind(("127.0.0.1", 0))
        turn.listen(1)
        port = turn.getsockname()[1]
        proxy.permit(f"http://127.0.0.1:{port}/")  # a host the URL filter allows

        def serve() -> None:
            conn, _ = turn.accept()
            with conn:
                received.append(conn.recv(100))

        server = threading.Thread(target=serve)
        server.start()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
            conn.sendall(b"\x05\x01\x00")
            conn.recv(2)
            conn.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + struct.pack("!H", port))
            assert conn.recv(10)[1] == 0
            conn.sendall(ALLOCATE)
            server.join(5)
    assert received == [ALLOCATE if webrtc else b""]
    kind = "web.webrtc_connection" if webrtc else "web.webrtc_refused"
    assert [(e.type, e.payload) for e in events] == [(kind, {"host": "127.0.0.1", "port": port})]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.binary(max_size=64))
def test_any_bytes_from_a_client_never_open_a_connection_or_stop_the_gate(
    garbage: bytes, upstream: LocalServer
) -> None:
    proxy = NetworkGate(decision_wait_s=0.05).start()
    before = len(upstream.requests)  # the server is shared by the examples
    try:
        # the gate may close on the first bad byte: the rest then meets a reset
        with (
            socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn,
            contextlib.suppress(OSError),
        ):
            conn.sendall(garbage)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(4096):
                pass
        assert len(upstream.requests) == before
        proxy.permit(upstream.url("/"))
        assert socks_get(proxy, "127.0.0.1", upstream.port)[1].endswith(b"hello")
    finally:
        proxy.stop()
