"""The machine steps on real things: a test grab of our own window on the X server, a full
disk (tmpfs), the guards' own verdicts met with the exam's policy."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lockdown.checks import needs
from lockdown.checks.base import CheckContext, Status
from lockdown.checks.machine import (
    DisplaysCheck,
    FreeDiskCheck,
    ScreenCaptureCheck,
    VirtualMachineCheck,
    x11_test_grab,
)
from lockdown.config.settings import Organisation, Settings, convert, layer
from lockdown.platform.screencap import TEST_COLOURS, x11_test_window
from tests.support import disk
from tests.support.xserver import Xvfb


def _ctx(folder: Path, settings: Settings | None = None) -> CheckContext:
    return CheckContext(settings or Settings.defaults(), needs.ALL_STREAMS, folder)


@pytest.mark.x11
def test_the_screen_capture_step_grabs_our_own_test_window(xserver: Xvfb, tmp_path: Path) -> None:
    ok, how = x11_test_grab(xserver.display)
    assert ok, how
    result = ScreenCaptureCheck("x11").run(_ctx(tmp_path))
    assert (result.status, result.message_id) == (Status.PASS, "check.screen.ok")
    assert "test window" in result.details["grab"]


@pytest.mark.x11
def test_a_grab_that_shows_something_else_fails(xserver: Xvfb, tmp_path: Path) -> None:
    # What the grab compares against is really on the screen: another display's pixels
    # (an Xvfb of its own, never showing our window) do not pass for it.
    other = Xvfb().start()
    try:
        import mss

        with x11_test_window(xserver.display) as window:
            with mss.MSS(display=other.display) as grabber:
                shot = grabber.grab(
                    {"left": window.x, "top": window.y, "width": window.width, "height": 4}
                )
            assert shot.pixel(1, 1) not in TEST_COLOURS
            with mss.MSS(display=xserver.display) as grabber:  # positive control
                shot = grabber.grab(
                    {"left": window.x, "top": window.y, "width": window.width, "height": 4}
                )
            assert shot.pixel(1, 1) == TEST_COLOURS[0]
    finally:
        other.stop()


@pytest.mark.x11
def test_the_screens_step_counts_the_x_servers_screens(xserver: Xvfb, tmp_path: Path) -> None:
    result = DisplaysCheck().run(_ctx(tmp_path))
    assert (result.status, result.measured["screens"]) == (Status.PASS, 1)


def test_a_full_disk_fails_the_free_disk_step_with_the_remedy(
    tmpfs: Callable[[str], Path],
) -> None:
    small = tmpfs("2m")
    disk.fill(small)
    result = FreeDiskCheck().run(_ctx(small / "data" / "spool"))  # not there yet: its disk
    assert (result.status, result.message_id, result.remedy_id) == (
        Status.FAIL,
        "check.disk.low",
        "check.disk.remedy",
    )
    assert result.measured["free_mb"] == 0
    assert result.measured["needed_mb"] == 1024
    assert result.values["folder"] == str(small)


def test_the_virtual_machine_step_meets_the_guards_verdict_with_the_policy(tmp_path: Path) -> None:
    detected = (
        subprocess.run(["grep", "-qw", "hypervisor", "/proc/cpuinfo"], check=False).returncode == 0
    )
    by_policy = {}
    for policy in ("deny", "warn", "allow"):
        settings = layer(
            Organisation(),
            {"guards.virtual_machine": convert("guards.virtual_machine", policy, origin="t")},
        )
        by_policy[policy] = VirtualMachineCheck().run(_ctx(tmp_path, settings))
    if not detected:
        assert {r.status for r in by_policy.values()} == {Status.PASS}
        return
    assert by_policy["deny"].status is Status.FAIL
    assert by_policy["deny"].remedy_id == "check.vm.remedy"
    assert "hypervisor flag" in by_policy["deny"].values["reasons"]
    assert by_policy["warn"].status is Status.WARN
    assert by_policy["allow"].status is Status.PASS
