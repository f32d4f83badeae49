"""The protocol client returns replies and never raises: statuses, errors, Retry-After,
no answer at all; and it trusts no proxy from the environment."""

from __future__ import annotations

import base64
import hashlib
import json
import socket
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from lockdown.session.client import ServiceClient, content_digest, retry_after_seconds
from tests.support.httpserver import LocalServer, Response, SeenRequest


def _json(status: int, body: dict[str, object], **headers: str) -> Response:
    return Response(status, json.dumps(body).encode(), "application/json", dict(headers))


def test_content_digest_is_rfc9530_sha256_of_the_body() -> None:
    body = b'{"hello": "world"}'
    expected = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert content_digest(body) == f"sha-256=:{expected}:"
    # the example of RFC 9530 section 2
    assert content_digest(b'{"hello": "world"}\n') == (
        "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:"
    )


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds(later, now=now.timestamp()) == pytest.approx(30.0)


def test_a_segment_put_sends_digest_and_metadata_and_reads_the_echo(
    http_server: LocalServer,
) -> None:
    body = b"\x00encrypted segment\xff" * 100
    digest = content_digest(body)
    path = "/api/v1/sessions/s-1/segments/camera/3"
    http_server.routes[path] = _json(201, {"stream": "camera", "seq": 3, "digest": digest})
    client = ServiceClient(http_server.url(""))
    reply = client.put_segment(
        "tok", "s-1", "camera", 3, body, digest=digest, meta={"duration": 30.0}
    )
    assert reply.ok and reply.status == 201 and reply.body["digest"] == digest
    seen = http_server.requests[-1]
    assert (seen.method, seen.path, seen.body) == ("PUT", path, body)
    assert seen.headers["Content-Digest"] == digest
    assert seen.headers["Authorization"] == "Bearer tok"
    assert json.loads(seen.headers["Lockdown-Segment"]) == {"duration": 30.0}
    assert reply.date  # every answer carries Date


def test_errors_come_back_as_values_with_their_code_and_retry_after(
    http_server: LocalServer,
) -> None:
    http_server.routes["/api/v1/token"] = _json(
        503, {"error": "busy", "message": "try later"}, **{"Retry-After": "3"}
    )
    reply = ServiceClient(http_server.url("")).exchange("launch")
    assert (reply.status, reply.error, reply.message, reply.retry_after) == (
        503,
        "busy",
        "try later",
        3.0,
    )
    assert reply.retryable and not reply.ok
    http_server.routes["/api/v1/token"] = _json(401, {"error": "unauthorized"})
    reply = ServiceClient(http_server.url("")).exchange("launch")
    assert reply.status == 401 and not reply.retryable


def test_a_reply_that_is_not_json_is_a_bad_reply(http_server: LocalServer) -> None:
    http_server.routes["/api/v1/sessions/s/manifest"] = Response(200, b"<html>portal</html>")
    reply = ServiceClient(http_server.url("")).manifest("tok", "s")
    assert (reply.status, reply.error, reply.ok) == (0, "bad_reply", False)
    assert reply.retryable


def test_no_service_listening_is_a_reply_not_an_exception() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    reply = ServiceClient(f"http://127.0.0.1:{port}").healthz()
    assert (reply.status, reply.error, reply.ok, reply.retryable) == (0, "unreachable", False, True)
    assert f"127.0.0.1:{port}" in reply.message


def test_a_slow_service_times_out_as_a_reply(http_server: LocalServer) -> None:
    import time

    def slow(_: SeenRequest) -> Response:
        time.sleep(1.0)
        return _json(200, {"status": "ok"})

    http_server.routes["/healthz"] = slow
    reply = ServiceClient(http_server.url(""), timeout=(1.0, 0.2)).healthz()
    assert (reply.status, reply.error) == (0, "timeout")


def test_the_environment_proxy_is_not_used(
    http_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # positive control: requests honours the variable when trusting the environment
    import requests

    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "")
    http_server.routes["/healthz"] = _json(200, {"status": "ok"})
    with pytest.raises(requests.exceptions.ProxyError):
        requests.get(http_server.url("/healthz"), timeout=2)
    assert ServiceClient(http_server.url("")).healthz().ok


def test_a_success_that_does_not_echo_our_digest_acknowledges_nothing(
    http_server: LocalServer, tmp_path: Path
) -> None:
    """A proxy or a broken service answering 201 without the digest (or another one) must
    not make the uploader forget a segment; it retries until the echo is right."""
    import random
    import time

    from lockdown.upload.base import Stream
    from lockdown.upload.source import SpoolSource
    from lockdown.upload.spool import Spool
    from lockdown.upload.uploader import RetryPolicy, Uploader, UploadSettings
    from tests.unit.upload.factory import TEST_KEY, Events, segment

    spool = Spool.open(tmp_path / "s", report=Events(), max_bytes=1 << 30, key=TEST_KEY)
    spool.add(segment(Stream.CAMERA, 0))
    answers = iter([{}, {"digest": "sha-256=:AAAA:"}])

    def put(seen: SeenRequest) -> Response:
        body = next(answers, None)
        if body is None:
            body = {"digest": seen.headers["Content-Digest"]}
        return _json(201, body)

    http_server.routes["/api/v1/sessions/sid/segments/camera/0"] = put
    http_server.routes["/api/v1/sessions/sid/manifest"] = _json(200, {"streams": {}})
    events = Events()
    uploader = Uploader(
        ServiceClient(http_server.url("")),
        "sid",
        "tok",
        SpoolSource(spool),
        journal=None,
        report=events,
        settings=UploadSettings(retry=RetryPolicy(0.01, 0.02), idle_s=0.02),
        rng=random.Random(1),
    ).start()
    deadline = time.monotonic() + 10
    while spool.pending() and time.monotonic() < deadline:
        time.sleep(0.02)
    uploader.stop()
    spool.close()
    puts = http_server.seen("/api/v1/sessions/sid/segments/camera/0")
    assert len(puts) == 3  # two answers without our digest, then the right one
    assert [e["error"] for e in events.of("upload.retry")] == ["digest_not_echoed"] * 2
    assert len(events.of("upload.acknowledged")) == 1
