"""The service steps against a real HTTP service on 127.0.0.1: reachable, clock, upload,
bandwidth through a throttling proxy, refusals, and what the requests trust."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from lockdown.checks import needs
from lockdown.checks.base import CheckContext, Service, Status
from lockdown.checks.network import BandwidthCheck, ClockCheck, ServiceCheck, UploadCheck
from lockdown.checks.runner import run_checks
from lockdown.config.settings import Organisation, Settings, convert, layer
from lockdown.session import probe
from tests.support.faultproxy import FaultProxy, Faults
from tests.support.httpserver import LocalServer
from tests.support.probeservice import PROBE_TOKEN, StandInService


def _settings(**values: Any) -> Settings:
    converted = {
        key.replace("__", "."): convert(key.replace("__", "."), value, origin="test")
        for key, value in values.items()
    }
    org = {k: v for k, v in converted.items() if k.startswith("network.")}
    exam = {k: v for k, v in converted.items() if not k.startswith("network.")}
    return layer(Organisation(values=org), exam)


def _ctx(tmp_path: Path, url: str, settings: Settings | None = None) -> CheckContext:
    return CheckContext(
        settings or _settings(checks__upload_test_kb=64),
        needs.ALL_STREAMS,
        tmp_path,
        Service(url, PROBE_TOKEN),
    )


def _steps() -> list[Any]:
    return [ServiceCheck(), ClockCheck(), UploadCheck(), BandwidthCheck()]


def test_against_the_service_every_step_passes_and_the_clock_is_measured(
    tmp_path: Path, stand_in_service: StandInService
) -> None:
    outcomes = run_checks(_steps(), _ctx(tmp_path, stand_in_service.url), time_limit=20)
    assert [(o.check_id, o.result.status) for o in outcomes] == [
        ("service", Status.PASS),
        ("clock", Status.PASS),
        ("upload", Status.PASS),
        ("bandwidth", Status.PASS),
    ]
    assert abs(outcomes[1].result.measured["offset_s"] or 0) < 1.0
    (seen,) = stand_in_service.server.seen("/api/v1/probe")
    assert len(seen.body) == 64 * 1024
    assert seen.headers["Authorization"] == f"Bearer {PROBE_TOKEN}"


def test_through_a_throttled_link_bandwidth_warns_while_the_upload_passes(
    tmp_path: Path, stand_in_service: StandInService
) -> None:
    # 20 KB/s = 160 kbit/s, under the 177 kbit/s three streams record: after the exam
    upstream = ("127.0.0.1", stand_in_service.server.port)
    with FaultProxy(upstream) as proxy:
        proxy.set_faults(Faults(rate_bps=20_000))
        ctx = _ctx(tmp_path, proxy.url, _settings(checks__upload_test_kb=48))
        outcomes = run_checks(_steps(), ctx, time_limit=20)
    status = {o.check_id: o.result for o in outcomes}
    assert status["upload"].status is Status.PASS
    assert status["bandwidth"].status is Status.WARN
    assert status["bandwidth"].message_id == "check.bandwidth.after_exam"
    assert status["bandwidth"].remedy_id == "check.bandwidth.remedy"
    rate = status["bandwidth"].measured["rate_kbps"]
    assert rate is not None and 80 < rate < 177


def test_a_service_that_refuses_the_probe_fails_the_upload_with_the_guides_remedy(
    tmp_path: Path, stand_in_service: StandInService
) -> None:
    stand_in_service.refuse_probe = True
    outcomes = run_checks(_steps(), _ctx(tmp_path, stand_in_service.url), time_limit=20)
    upload, bandwidth = outcomes[2].result, outcomes[3].result
    assert (upload.status, upload.message_id, upload.remedy_id) == (
        Status.FAIL,
        "check.upload.failed",
        "check.upload.remedy",
    )
    assert "401 unauthorized: probe token refused" in upload.values["reason"]
    assert bandwidth.status is Status.SKIP


def test_a_busy_service_says_how_long_to_wait(
    tmp_path: Path, stand_in_service: StandInService
) -> None:
    stand_in_service.rate_limit = True
    result = UploadCheck().run(_ctx(tmp_path, stand_in_service.url))
    assert (result.status, result.message_id) == (Status.FAIL, "check.upload.rate_limited")
    assert result.values["seconds"] == "17"


def test_no_service_answering_fails_the_service_step_and_skips_the_clock(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outcomes = run_checks(_steps(), _ctx(tmp_path, f"http://127.0.0.1:{port}"), time_limit=20)
    service, clock, upload, bandwidth = (o.result for o in outcomes)
    assert (service.status, service.remedy_id) == (Status.FAIL, "check.service.remedy")
    assert "Connection refused" in service.values["reason"]
    assert clock.status is Status.SKIP and clock.message_id == "check.clock.no_answer"
    assert upload.status is Status.FAIL and upload.remedy_id == "check.upload.remedy"
    assert bandwidth.status is Status.SKIP


def test_a_hanging_service_is_a_timeout_not_a_hang(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        reply = probe.health(url, Settings.defaults(), timeout=0.5)
    assert reply.error == "timeout"
    assert time.monotonic() - started < 3


def test_no_service_known_skips_every_service_step_with_the_reason(tmp_path: Path) -> None:
    ctx = CheckContext(Settings.defaults(), needs.ALL_STREAMS, tmp_path, None)
    outcomes = run_checks(_steps(), ctx, time_limit=5)
    assert {(o.result.status, o.result.message_id) for o in outcomes} == {
        (Status.SKIP, "check.service.none")
    }


def test_plain_http_to_another_computer_is_refused_before_connecting() -> None:
    reply = probe.health("http://192.0.2.1", Settings.defaults(), timeout=0.5)
    assert (reply.ok, reply.error) == (False, "insecure")


@pytest.fixture
def recording_proxy() -> Any:
    server = LocalServer().start()  # sees every request sent to it, answers 404
    yield server
    server.stop()


def test_the_environments_proxy_is_ignored_and_the_organisations_is_used(
    tmp_path: Path,
    stand_in_service: StandInService,
    recording_proxy: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy_url = recording_proxy.url("").rstrip("/")
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, proxy_url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    reply = probe.health(stand_in_service.url, Settings.defaults(), timeout=5)
    assert reply.ok
    assert recording_proxy.requests == []
    # positive control: the organisation's proxy is used, so the same request reaches it
    through_org = _settings(network__proxy=proxy_url)
    reply = probe.health(stand_in_service.url, through_org, timeout=5)
    assert reply.status == 404
    assert [r.path for r in recording_proxy.requests] == [f"{stand_in_service.url}/healthz"]


def test_the_report_is_sent_with_its_id_and_the_probe_token(
    stand_in_service: StandInService,
) -> None:
    reply = probe.send_checks(
        stand_in_service.url,
        PROBE_TOKEN,
        Settings.defaults(),
        check_id="6f2d7f0e-0000-4000-8000-000000000001",
        report={"schema": "lockdown-check-report"},
        session_id="s-1",
        timeout=5,
    )
    assert reply.ok and reply.status == 201
    assert stand_in_service.reports == [
        {
            "check_id": "6f2d7f0e-0000-4000-8000-000000000001",
            "report": {"schema": "lockdown-check-report"},
            "session_id": "s-1",
        }
    ]
