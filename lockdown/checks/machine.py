"""The checks of this computer: app and system, screens, virtual machine, remote session,
isolation, prohibited apps, free disk and screen-capture permission.

Each reuses the guards' own verdicts (``lockdown environment`` reports the same things)
and meets them with the exam's policy, so the check fails exactly where the exam start
would refuse: a virtual machine under ``guards.virtual_machine = deny`` fails, under
``warn`` warns; more screens than ``guards.max_displays`` fail.
"""

from __future__ import annotations

import platform
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from lockdown import __version__, build
from lockdown.checks import needs
from lockdown.checks.base import CheckContext, CheckDefaults, CheckResult, Status

#: Oldest systems Lockdown supports: Windows 10, macOS 12 (its TCC schema).
MIN_WINDOWS: Final = 10
MIN_MACOS: Final = (12, 0)


def os_supported(system: str, release: str, mac_version: str = "") -> tuple[bool, str]:
    """Whether Lockdown supports this system, and its name for the report."""
    if system == "Linux":
        return True, f"Linux {release}"
    if system == "Windows":
        try:
            major = int(release.split(".", maxsplit=1)[0])
        except ValueError:
            return False, f"Windows {release}"
        return major >= MIN_WINDOWS, f"Windows {release}"
    if system == "Darwin":
        parts = [int(p) for p in mac_version.split(".")[:2] if p.isdigit()]
        version = ([*parts, 0, 0])[:2]
        return tuple(version) >= MIN_MACOS, f"macOS {mac_version or '?'}"
    return False, system or "an unknown system"


class AppCheck(CheckDefaults):
    """Lockdown's version and build, and whether this operating system is supported."""

    id = "app"
    title_id = "check.app.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        current = build.current()
        supported, name = os_supported(platform.system(), platform.release(), platform.mac_ver()[0])
        values = {"version": __version__, "os": name, "build": current.kind}
        details = {**current.as_record(), "os": name, "machine": platform.machine()}
        if not supported:
            return CheckResult(
                Status.FAIL,
                "check.app.unsupported",
                values,
                "check.app.unsupported_remedy",
                details=details,
            )
        if not current.installed:
            return CheckResult(
                Status.WARN,
                "check.app.development",
                values,
                "check.app.development_remedy",
                details=details,
            )
        return CheckResult(Status.PASS, "check.app.ok", values, details=details)


class DisplaysCheck(CheckDefaults):
    """The screens attached, against ``guards.max_displays``."""

    id = "displays"
    title_id = "check.displays.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.guards.environment import screens

        seen = screens()
        allowed = int(ctx.settings["guards.max_displays"])
        if not seen["available"]:
            return CheckResult(
                Status.FAIL,
                "check.displays.unknown",
                {"reason": seen["reason"]},
                "check.displays.unknown_remedy",
                details=seen,
            )
        count = int(seen["count"])
        measured = {"screens": count, "allowed": allowed}
        if count > allowed:
            return CheckResult(
                Status.FAIL,
                "check.displays.too_many",
                {"count": count, "allowed": allowed},
                "check.displays.too_many_remedy",
                measured,
                seen,
            )
        return CheckResult(Status.PASS, "check.displays.ok", {"count": count}, None, measured, seen)


def _policy_result(
    kind: str, policy: str, detected: bool, verdict: Mapping[str, Any]
) -> CheckResult:
    reasons = "; ".join(r["detail"] for r in verdict["reasons"]) or "-"
    values = {"reasons": reasons}
    if not detected:
        return CheckResult(Status.PASS, f"check.{kind}.none", values, details=verdict)
    if policy == "allow":
        return CheckResult(Status.PASS, f"check.{kind}.allowed", values, details=verdict)
    if policy == "warn":
        return CheckResult(
            Status.WARN, f"check.{kind}.found", values, f"check.{kind}.warned", details=verdict
        )
    return CheckResult(
        Status.FAIL, f"check.{kind}.found", values, f"check.{kind}.remedy", details=verdict
    )


class VirtualMachineCheck(CheckDefaults):
    """The virtual-machine guard's score and reasons, met with ``guards.virtual_machine``."""

    id = "virtual_machine"
    title_id = "check.vm.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.guards import vm

        verdict = vm.detect()
        result = _policy_result(
            "vm", ctx.settings["guards.virtual_machine"], verdict.virtual, verdict.as_dict()
        )
        return _with_measured(result, {"score": verdict.score, "threshold": vm.THRESHOLD})


class RemoteSessionCheck(CheckDefaults):
    """The remote-session guard's verdict and reasons, met with ``guards.remote_session``."""

    id = "remote_session"
    title_id = "check.remote.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.guards import remote
        from lockdown.guards.appslist import AppList

        verdict = remote.detect(AppList.load().for_settings(ctx.settings))
        return _policy_result(
            "remote", ctx.settings["guards.remote_session"], verdict.remote, verdict.as_dict()
        )


def _with_measured(result: CheckResult, measured: Mapping[str, Any]) -> CheckResult:
    from dataclasses import replace

    return replace(result, measured={**result.measured, **measured})


class IsolationCheck(CheckDefaults):
    """The isolation modes the exam may run in, and whether the guards can hold them here.

    A thin call to what ``lockdown environment`` reports (each guard's backend and
    availability); it asks the toolkit, so it runs on the runner's thread.
    """

    id = "isolation"
    title_id = "check.isolation.title"
    main_thread = True
    #: guards reported by their own steps
    _ELSEWHERE: Final = frozenset({"virtual_machine", "remote_session"})

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.config.examkeys import isolation_modes
        from lockdown.guards.environment import guard_infos

        modes = isolation_modes(ctx.settings)
        infos = [i for i in guard_infos() if i.name not in self._ELSEWHERE]
        guards = [
            {
                "name": i.name,
                "backend": i.backend,
                "availability": i.availability.value,
                "reason": i.reason,
            }
            for i in infos
        ]
        details = {"modes": list(modes), "guards": guards}
        values = {"modes": ", ".join(modes)}
        missing = [g for g in guards if g["availability"] == "unavailable"]
        partial = [g for g in guards if g["availability"] == "partial"]
        if missing:
            listed = "; ".join(f"{g['name']}: {g['reason']}" for g in missing)
            refuse = ctx.settings["guards.unavailable"] == "refuse"
            return CheckResult(
                Status.FAIL if refuse else Status.WARN,
                "check.isolation.unavailable",
                {**values, "guards": listed},
                "check.isolation.remedy",
                details=details,
            )
        if partial:
            listed = "; ".join(f"{g['name']}: {g['reason']}" for g in partial)
            return CheckResult(
                Status.WARN,
                "check.isolation.partial",
                {**values, "guards": listed},
                "check.isolation.remedy",
                details=details,
            )
        return CheckResult(Status.PASS, "check.isolation.ok", values, details=details)


class ProhibitedAppsCheck(CheckDefaults):
    """The candidate's prohibited applications running now (the guard's own scan)."""

    id = "prohibited_apps"
    title_id = "check.apps.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.guards.appslist import AppList, Match
        from lockdown.guards.processes import scan_running

        policy = ctx.settings["guards.prohibited_apps"]
        if policy == "allow":
            return CheckResult(Status.SKIP, "check.apps.allowed")
        apps = AppList.load().for_settings(ctx.settings)
        elsewhere: list[tuple[Match, str]] = []
        running = scan_running(apps.matcher(), elsewhere=elsewhere)
        details: dict[str, Any] = {
            "running": [m.as_payload() for m in running],
            "elsewhere": [{**m.as_payload(), "scope": why} for m, why in elsewhere],
        }
        measured = {"running": len(running)}
        if not running:
            return CheckResult(Status.PASS, "check.apps.none", {}, None, measured, details)
        names = ", ".join(sorted({m.app.name for m in running}))
        remedy = "check.apps.remedy_close" if policy == "close" else "check.apps.remedy"
        return CheckResult(
            Status.FAIL, "check.apps.running", {"apps": names}, remedy, measured, details
        )


def existing_folder(folder: Path) -> Path:
    """``folder`` or the nearest folder above it that exists (what the disk will hold)."""
    current = folder
    while not current.exists() and current.parent != current:
        current = current.parent
    return current


class FreeDiskCheck(CheckDefaults):
    """Free disk where the recording is kept: the exam's recording with a margin, >= 1 GiB."""

    id = "free_disk"
    title_id = "check.disk.title"

    def run(self, ctx: CheckContext) -> CheckResult:
        folder = existing_folder(ctx.spool_folder)
        free_mb = shutil.disk_usage(folder).free / 2**20
        needed_mb = needs.disk_needed_mb(ctx.settings, ctx.streams)
        values = {"free": f"{free_mb:,.0f}", "needed": f"{needed_mb:,.0f}", "folder": str(folder)}
        measured = {"free_mb": round(free_mb, 1), "needed_mb": round(needed_mb, 1)}
        details = {
            "folder": str(folder),
            "exam_hours": needs.exam_hours(ctx.settings),
            "recording_kbps": needs.recording_kbps(ctx.settings, ctx.streams),
        }
        if free_mb < needed_mb:
            return CheckResult(
                Status.FAIL, "check.disk.low", values, "check.disk.remedy", measured, details
            )
        return CheckResult(Status.PASS, "check.disk.ok", values, None, measured, details)


#: colour channels may differ this much between what was drawn and what was grabbed
_COLOUR_TOLERANCE: Final = 8


def x11_test_grab(display_name: str | None = None) -> tuple[bool, str]:
    """Grab our own test window the way the screen recorder does (mss); did it come out?"""
    import mss

    from lockdown.platform.screencap import x11_test_window

    with x11_test_window(display_name) as window:
        region = {"left": window.x, "top": window.y, "width": window.width, "height": window.height}
        with mss.MSS(display=display_name or None) as grabber:
            shot = grabber.grab(region)
        wrong = []
        for (x, y), want in window.expected.items():
            got = shot.pixel(x, y)
            if any(abs(a - b) > _COLOUR_TOLERANCE for a, b in zip(got, want, strict=True)):
                wrong.append(f"({x},{y}) {got} instead of {want}")
    if wrong:
        return False, "the grab did not show the test window: " + "; ".join(wrong)
    return True, f"grabbed a {window.width}x{window.height} test window through mss"


class ScreenCaptureCheck(CheckDefaults):
    """May Lockdown record the screen here: a test grab (X11), the permission (macOS,
    Wayland); on macOS also the other apps that hold the permission (the guards refuse
    them like running capture apps)."""

    id = "screen_capture"
    title_id = "check.screen.title"

    def __init__(self, backend: str | None = None, probes: Mapping[str, Any] | None = None):
        from lockdown.platform import screencap

        self._backend = backend or screencap.backend()
        #: backend -> the call that answers (tests pass fakes of the native adapters)
        self._probes = dict(probes or {})

    def run(self, ctx: CheckContext) -> CheckResult:
        from lockdown.platform import screencap

        records = "screen" in ctx.streams
        details: dict[str, Any] = {"backend": self._backend}
        others = self._other_apps(ctx) if self._backend == "macos" else []
        if others:
            details["apps"] = others
            return CheckResult(
                Status.FAIL,
                "guards.tcc.granted",
                {"apps": ", ".join(others)},
                "guards.tcc.remedy",
                details=details,
            )
        if not records:
            return CheckResult(Status.SKIP, "check.screen.not_recorded", details=details)
        if self._backend == "x11":
            grab = self._probes.get("x11", x11_test_grab)
            try:
                ok, how = grab()
            except (OSError, TimeoutError) as exc:
                ok, how = False, str(exc)
            details["grab"] = how
            if not ok:
                return CheckResult(
                    Status.FAIL,
                    "check.screen.grab_failed",
                    {"reason": how},
                    "check.screen.grab_remedy",
                    details=details,
                )
            return CheckResult(Status.PASS, "check.screen.ok", details=details)
        if self._backend == "windows":
            return CheckResult(Status.PASS, "check.screen.no_permission_needed", details=details)
        if self._backend == "none":
            return CheckResult(
                Status.FAIL,
                "check.screen.no_display",
                {},
                "check.displays.unknown_remedy",
                details=details,
            )
        if self._backend == "macos":
            api = self._probes.get("macos") or screencap.CtypesCoreGraphics()
            access = screencap.macos_access(api)
            remedy = "check.screen.macos_remedy"
        else:
            api = self._probes.get("wayland") or screencap.GdbusPortal()
            access = screencap.wayland_access(api)
            remedy = "check.screen.wayland_remedy"
        details.update(access=access.access.value, detail=access.detail)
        if access.access is screencap.Access.DENIED:
            return CheckResult(
                Status.FAIL,
                "check.screen.denied",
                {"reason": access.detail},
                remedy,
                details=details,
            )
        if access.access is screencap.Access.ASKED_AT_START:
            return CheckResult(Status.PASS, "check.screen.asked_at_start", details=details)
        return CheckResult(Status.PASS, "check.screen.ok", details=details)

    def _other_apps(self, ctx: CheckContext) -> list[str]:
        if ctx.settings["guards.prohibited_apps"] == "allow":
            return []
        grants = self._probes.get("tcc")
        if grants is None:
            from lockdown.guards.tcc import screen_capture_grants

            found = screen_capture_grants(exclude=("org.lockdown.Lockdown",)).grants
        else:
            found = grants()
        return [g.display_name for g in found]
