"""The checks' verdicts at their thresholds: clock, bandwidth, free disk, system, permissions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from lockdown.checks import needs
from lockdown.checks.base import CheckContext, Service, Status
from lockdown.checks.machine import ScreenCaptureCheck, os_supported
from lockdown.checks.network import BandwidthCheck, ClockCheck, clock_offset
from lockdown.config.settings import Organisation, Settings, convert, layer
from lockdown.guards.tcc import TccGrant
from lockdown.platform import screencap
from lockdown.session.probe import ProbeReply, Reply

SERVICE = Service("https://proctor.example.org", "a.b")


def _settings(**values: Any) -> Settings:
    return layer(
        Organisation(),
        {
            k.replace("__", "."): convert(k.replace("__", "."), v, origin="t")
            for k, v in values.items()
        },
    )


def _ctx(tmp_path: Path, settings: Settings | None = None, **kw: Any) -> CheckContext:
    return CheckContext(
        settings or Settings.defaults(),
        needs.ALL_STREAMS,
        tmp_path,
        kw.pop("service", SERVICE),
        **kw,
    )


def _reply_with_offset(offset: float) -> Reply:
    """An answer whose Date says the service is ``offset`` s ahead (whole seconds)."""
    now = 1_780_000_000.0
    date = datetime.fromtimestamp(int(now + offset - 0.5), UTC)
    return Reply(True, 200, {"status": "ok"}, date=date, sent=now - 0.05, received=now + 0.05)


@pytest.mark.parametrize(
    ("offset", "status"),
    [(0.0, Status.PASS), (-1.5, Status.PASS), (3.0, Status.WARN), (-60.0, Status.WARN),
     (121.0, Status.FAIL), (-3600.0, Status.FAIL)],
)  # fmt: skip
def test_clock_warns_past_two_seconds_and_fails_past_two_minutes(
    tmp_path: Path, offset: float, status: Status
) -> None:
    ctx = _ctx(tmp_path)
    ctx.shared["health"] = _reply_with_offset(offset)
    measured = clock_offset(ctx.shared["health"])
    assert measured == pytest.approx(offset, abs=0.6)
    result = ClockCheck().run(ctx)
    assert result.status is status
    if status is not Status.PASS:
        assert (result.message_id, result.remedy_id) == ("check.clock.off", "check.clock.remedy")
        assert result.values["how"] == ("behind" if offset > 0 else "ahead of")


def test_clock_thresholds_are_settings(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, _settings(checks__clock_warn=10, checks__clock_fail=20))
    ctx.shared["health"] = _reply_with_offset(15.0)
    assert ClockCheck().run(ctx).status is Status.WARN


def test_clock_is_skipped_with_a_reason_without_service_or_date(tmp_path: Path) -> None:
    assert ClockCheck().run(_ctx(tmp_path, service=None)).message_id == "check.service.none"
    ctx = _ctx(tmp_path)
    ctx.shared["health"] = Reply(False, error="unreachable", reason="x")
    assert ClockCheck().run(ctx).message_id == "check.clock.no_answer"
    ctx.shared["health"] = Reply(True, 200, {"status": "ok"}, sent=1.0, received=2.0)
    assert ClockCheck().run(ctx).message_id == "check.clock.no_date"


def _upload(rate_kbps: float) -> ProbeReply:
    return ProbeReply(Reply(True, 200), 1024, service_rate_bps=rate_kbps * 1000)


@pytest.mark.parametrize(
    ("rate_kbps", "status", "message"),
    [
        (1000.0, Status.PASS, "check.bandwidth.ok"),
        (300.0, Status.WARN, "check.bandwidth.lag"),  # under 2x 177 kbit/s
        (100.0, Status.WARN, "check.bandwidth.after_exam"),  # under 1x
    ],
)
def test_bandwidth_only_ever_warns(
    tmp_path: Path, rate_kbps: float, status: Status, message: str
) -> None:
    check = BandwidthCheck()
    assert check.blocking is False
    ctx = _ctx(tmp_path)
    ctx.shared["upload"] = _upload(rate_kbps)
    result = check.run(ctx)
    assert (result.status, result.message_id) == (status, message)
    assert result.measured["recording_kbps"] == pytest.approx(96 + 17 + 64)
    assert result.measured["rate_kbps"] == pytest.approx(rate_kbps)


def test_bandwidth_is_skipped_when_the_upload_did_not_run(tmp_path: Path) -> None:
    result = BandwidthCheck().run(_ctx(tmp_path))
    assert (result.status, result.message_id) == (Status.SKIP, "check.bandwidth.no_upload")


def test_free_disk_needed_is_one_and_a_half_times_the_recording_never_under_1_gib() -> None:
    defaults = Settings.defaults()
    assert needs.disk_needed_mb(defaults, needs.ALL_STREAMS) == 1024  # 3 h x 177 kbit/s < 1 GiB
    long_exam = _settings(kiosk__exam_duration="10h", proctoring__camera_max_kbps=2000)
    kbps = 2000 + 17 + 64
    expected = 1.5 * kbps * 1000 / 8 * 36000 / 2**20
    assert needs.disk_needed_mb(long_exam, needs.ALL_STREAMS) == pytest.approx(expected)
    assert expected > 1024
    assert needs.disk_needed_mb(long_exam, ()) == 1024


@pytest.mark.parametrize(
    ("system", "release", "mac", "ok"),
    [("Linux", "6.1.0", "", True), ("Windows", "10", "", True), ("Windows", "8.1", "", False),
     ("Darwin", "23.0.0", "14.2.1", True), ("Darwin", "20.6.0", "11.7", False),
     ("FreeBSD", "14.0", "", False)],
)  # fmt: skip
def test_supported_systems(system: str, release: str, mac: str, ok: bool) -> None:
    assert os_supported(system, release, mac)[0] is ok


class FakeCoreGraphics:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer

    def preflight_screen_capture(self) -> bool | None:
        return self.answer


class FakePortal:
    def __init__(self, types: int | None) -> None:
        self.types = types

    def screencast_source_types(self) -> int | None:
        return self.types


@pytest.mark.parametrize(
    ("backend", "probe", "status", "message"),
    [
        ("macos", FakeCoreGraphics(True), Status.PASS, "check.screen.ok"),
        ("macos", FakeCoreGraphics(None), Status.PASS, "check.screen.ok"),
        ("macos", FakeCoreGraphics(False), Status.FAIL, "check.screen.denied"),
        ("wayland", FakePortal(screencap.PORTAL_MONITOR | screencap.PORTAL_WINDOW), Status.PASS,
         "check.screen.asked_at_start"),
        ("wayland", FakePortal(screencap.PORTAL_WINDOW), Status.FAIL, "check.screen.denied"),
        ("wayland", FakePortal(None), Status.FAIL, "check.screen.denied"),
    ],
)  # fmt: skip
def test_screen_capture_permission_through_the_native_adapters(
    tmp_path: Path, backend: str, probe: object, status: Status, message: str
) -> None:
    check = ScreenCaptureCheck(backend, {backend: probe, "tcc": lambda: ()})
    result = check.run(_ctx(tmp_path))
    assert (result.status, result.message_id) == (status, message)
    if status is Status.FAIL:
        assert result.remedy_id == f"check.screen.{backend}_remedy"


def test_macos_apps_holding_screen_recording_fail_with_the_guides_remedy(tmp_path: Path) -> None:
    grants = (TccGrant("us.zoom.xos", 0), TccGrant("/Applications/OBS.app", 1))
    check = ScreenCaptureCheck("macos", {"macos": FakeCoreGraphics(True), "tcc": lambda: grants})
    result = check.run(_ctx(tmp_path))
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.FAIL,
        "guards.tcc.granted",
        "guards.tcc.remedy",
    )
    assert result.values["apps"] == "us.zoom.xos, OBS.app"


def test_a_failed_x11_grab_fails_with_a_remedy_and_no_screen_recorded_skips(
    tmp_path: Path,
) -> None:
    check = ScreenCaptureCheck("x11", {"x11": lambda: (False, "black pixels")})
    result = check.run(_ctx(tmp_path))
    assert (result.status, result.remedy_id) == (Status.FAIL, "check.screen.grab_remedy")
    assert result.values["reason"] == "black pixels"
    ctx = CheckContext(Settings.defaults(), ("camera",), tmp_path)
    assert check.run(ctx).status is Status.SKIP
