"""The fault proxy drops, errs, resets, cuts replies, delays and throttles, seeded and at will."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests.support.faultproxy import FaultProxy, Faults
from tests.support.httpserver import LocalServer, Response, SeenRequest


@pytest.fixture
def proxy(http_server: LocalServer) -> Iterator[FaultProxy]:
    http_server.routes["/echo"] = lambda req: Response(body=b"got %d" % len(req.body))
    http_server.page("/big", "x" * 200_000)
    with FaultProxy(("127.0.0.1", http_server.port), seed=7) as running:
        yield running


def _full_posts(server: LocalServer, size: int) -> list[SeenRequest]:
    return [r for r in server.seen("/echo") if len(r.body) == size]


def test_without_faults_requests_pass_both_ways(proxy: FaultProxy) -> None:
    reply = requests.post(proxy.url + "/echo", data=b"a" * 50_000, timeout=10)
    assert reply.status_code == 200 and reply.content == b"got 50000"
    assert proxy.stats["bytes_up"] > 50_000


def test_a_dropped_connection_reaches_nobody(proxy: FaultProxy, http_server: LocalServer) -> None:
    proxy.set_faults(Faults(drop=1.0))
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/big", timeout=10)
    assert proxy.stats["dropped"] == 1 and http_server.requests == []


def test_an_error_is_answered_by_the_proxy_with_retry_after(
    proxy: FaultProxy, http_server: LocalServer
) -> None:
    proxy.set_faults(Faults(error=1.0, error_status=503, retry_after=4))
    reply = requests.post(proxy.url + "/echo", data=b"b" * 10_000, timeout=10)
    assert reply.status_code == 503 and reply.headers["Retry-After"] == "4"
    assert http_server.requests == []


def test_a_reset_mid_body_leaves_the_server_a_torn_request(
    proxy: FaultProxy, http_server: LocalServer
) -> None:
    proxy.set_faults(Faults(reset=1.0, reset_after=3000))
    with pytest.raises(requests.ConnectionError):
        requests.post(proxy.url + "/echo", data=b"c" * 100_000, timeout=10)
    time.sleep(0.2)
    assert proxy.stats["reset"] == 1 and _full_posts(http_server, 100_000) == []
    assert proxy.stats["bytes_up"] == 3000


def test_a_cut_reply_reaches_the_server_but_not_the_client(
    proxy: FaultProxy, http_server: LocalServer
) -> None:
    proxy.set_faults(Faults(cut_reply=1.0, reply_after=0))
    with pytest.raises(requests.ConnectionError):
        requests.post(proxy.url + "/echo", data=b"d" * 20_000, timeout=10)
    assert len(_full_posts(http_server, 20_000)) == 1 and proxy.stats["cut_reply"] == 1


def test_delay_and_throttle_slow_a_transfer_down(proxy: FaultProxy) -> None:
    proxy.set_faults(Faults(delay_s=0.3))
    started = time.monotonic()
    requests.get(proxy.url + "/big", timeout=10)
    assert time.monotonic() - started >= 0.3
    proxy.set_faults(Faults(rate_bps=400_000))
    started = time.monotonic()
    reply = requests.get(proxy.url + "/big", timeout=10)
    elapsed = time.monotonic() - started
    assert len(reply.content) == 200_000 and elapsed >= 0.45, elapsed


def _outcomes(server: LocalServer, seed: int) -> list[str]:
    out = []
    with FaultProxy(("127.0.0.1", server.port), seed=seed) as proxy:
        proxy.set_faults(Faults(drop=0.5))
        for _ in range(12):
            try:
                requests.get(proxy.url + "/big", timeout=10)
                out.append("ok")
            except requests.ConnectionError:
                out.append("drop")
    return out


def test_the_same_seed_gives_the_same_faults(http_server: LocalServer) -> None:
    http_server.page("/big", "y")
    first = _outcomes(http_server, 11)
    assert first == _outcomes(http_server, 11)
    assert {"ok", "drop"} == set(first)


def test_faults_switch_at_run_time_and_sever_cuts_open_connections(
    proxy: FaultProxy, http_server: LocalServer
) -> None:
    proxy.set_faults(Faults(drop=1.0))
    with pytest.raises(requests.ConnectionError):
        requests.get(proxy.url + "/big", timeout=10)
    proxy.set_faults(Faults(rate_bps=50_000))
    with requests.Session() as session:
        result: list[BaseException] = []

        def slow_get() -> None:
            try:
                session.get(proxy.url + "/big", timeout=10)
            except requests.RequestException as exc:
                result.append(exc)

        worker = threading.Thread(target=slow_get)
        worker.start()
        time.sleep(0.5)
        proxy.sever()
        worker.join(10)
    assert result and proxy.stats["severed"] >= 1
    proxy.set_faults(Faults())
    assert requests.get(proxy.url + "/big", timeout=10).status_code == 200
