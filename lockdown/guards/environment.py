"""``lockdown environment``: what the guards see on this machine, for support staff.

Prints each guard's backend and whether it fully works here, the display server (a
shared Wayland desktop, recognised by the X server's own XWAYLAND extension, marks the
guards it limits as partial), the screens, the virtual-machine score with its reasons, the remote-session verdict, the prohibited apps
running now and (macOS) the apps holding Screen Recording permission, then the verdict:
whether the organisation's policy (the system organisation file, or ``--organisation``)
would let an exam start here. ``--json`` prints one JSON object for machines, with the
Lockdown version and build, the time (UTC) and the operating system. Exit code 0 when an
exam may start here, 1 when the policy would refuse this machine. Nothing is changed on
the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lockdown import __version__, build, log
from lockdown.guards import remote, vm
from lockdown.guards.appslist import AppList, Match, current_os
from lockdown.guards.base import Availability, GuardInfo
from lockdown.guards.processes import probe, scan_running, snapshot
from lockdown.guards.wayland import wayland_verdict
from lockdown.platform.x11_server import DisplayServer, display_server

_XRANDR_OUTPUT = re.compile(
    r"^(?P<name>\S+) connected(?: primary)? (?P<w>\d+)x(?P<h>\d+)\+(?P<x>\d+)\+(?P<y>\d+)"
)


def screens() -> dict[str, Any]:
    """Attached screens: xrandr on X11, Qt elsewhere; never needs a display to answer."""
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY", "")
        if not display:
            return {
                "available": False,
                "backend": "xrandr",
                "reason": "no X display (DISPLAY unset)",
                "screens": [],
            }
        if shutil.which("xrandr") is None:
            return {
                "available": False,
                "backend": "xrandr",
                "reason": "xrandr not installed",
                "screens": [],
            }
        try:
            done = subprocess.run(
                ["xrandr", "--query"], capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return {"available": False, "backend": "xrandr", "reason": str(exc), "screens": []}
        if done.returncode != 0:
            reason = done.stderr.strip().splitlines()[0] if done.stderr.strip() else "failed"
            return {"available": False, "backend": "xrandr", "reason": reason, "screens": []}
        found = [
            {
                "name": m["name"],
                "width": int(m["w"]),
                "height": int(m["h"]),
                "x": int(m["x"]),
                "y": int(m["y"]),
            }
            for line in done.stdout.splitlines()
            if (m := _XRANDR_OUTPUT.match(line))
        ]
        return {
            "available": True,
            "backend": "xrandr",
            "display": display,
            "count": len(found),
            "screens": found,
        }
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication([])
    found = [
        {
            "name": s.name(),
            "width": s.geometry().width(),
            "height": s.geometry().height(),
            "x": s.geometry().x(),
            "y": s.geometry().y(),
        }
        for s in QGuiApplication.screens()
    ]
    del app
    return {"available": True, "backend": "qt", "count": len(found), "screens": found}


def _qt_application() -> object:
    """The QApplication the desktop guards need; offscreen when there is no display."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        no_display = not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
        if sys.platform.startswith("linux") and no_display:
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        app = QApplication([])
    return app


def _desktop_infos(server: DisplayServer | None) -> list[GuardInfo]:
    try:
        from lockdown.guards.desktop import desktop_guard_infos
    except ImportError:
        return []
    app = _qt_application()
    try:
        infos: list[GuardInfo] = desktop_guard_infos(server=lambda: server)
    except Exception as exc:
        log.guards.exception("Desktop guards could not describe themselves")
        return [GuardInfo("desktop", "unknown", Availability.UNAVAILABLE, str(exc))]
    finally:
        del app
    return infos


def guard_infos(server: DisplayServer | None = None) -> list[GuardInfo]:
    infos = [*_desktop_infos(server), probe()]
    os_name = current_os()
    vm_backend = {"linux": "sysfs+cpuinfo", "windows": "registry+mac", "macos": "sysctl+mac"}[
        os_name
    ]
    infos.append(GuardInfo("virtual_machine", vm_backend, Availability.FULL))
    remote_backend = {
        "linux": "logind+env+processes",
        "windows": "GetSystemMetrics+processes",
        "macos": "processes",
    }[os_name]
    infos.append(GuardInfo("remote_session", remote_backend, Availability.FULL))
    if os_name == "macos":
        infos.append(
            GuardInfo(
                "screen_recording_permission",
                "tcc-sqlite",
                Availability.PARTIAL,
                "needs Full Disk Access; unverified on real macOS",
            )
        )
    return infos


def _display_isolation(os_name: str) -> dict[str, Any] | None:
    """The exam display mode this machine can give (Linux), and why."""
    if os_name != "linux":
        return None
    from lockdown.platform.exam_display import availability

    return availability()


def _os_details() -> dict[str, str]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
    }


def verdict(data: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Would the organisation's policy let an exam start on this machine, and why not.

    The exam start refuses a virtual machine or a remote session under ``deny`` and more
    screens than ``guards.max_displays`` (an exam configuration may still tighten these).
    """
    refusals: list[str] = []
    if data["virtual_machine"]["virtual_machine"] and settings["guards.virtual_machine"] == "deny":
        refusals.append("a virtual machine (guards.virtual_machine = deny)")
    if data["remote_session"]["remote_session"] and settings["guards.remote_session"] == "deny":
        refusals.append("a remote session (guards.remote_session = deny)")
    server = data.get("display_server")
    if server and server["xwayland"] and settings["guards.wayland"] == "refuse":
        refusals.append("a shared Wayland desktop, XWayland (guards.wayland = refuse)")
    isolation = data.get("display_isolation")
    if (
        isolation is not None
        and settings.get("guards.display_isolation") == "required"
        and isolation["mode"] != "isolated"
    ):
        refusals.append(
            f"no display of its own ({isolation['reason']}; guards.display_isolation = required)"
        )
    screens_seen = data["screens"]
    allowed = int(settings["guards.max_displays"])
    if screens_seen["available"] and screens_seen["count"] > allowed:
        refusals.append(
            f"{screens_seen['count']} screens attached, {allowed} allowed (guards.max_displays)"
        )
    return {"exam_can_start": not refusals, "refusals": refusals}


def report(
    settings: Mapping[str, Any] | None = None,
    organisation: str | None = None,
    server: Callable[[], DisplayServer | None] = display_server,
) -> dict[str, Any]:
    """Everything the command prints, as one JSON-able object.

    Args:
        settings: the organisation's effective settings (defaults when None).
        organisation: the organisation file they came from, named in the report.
        server: asks the X server what it is (a fake in tests).
    """
    if settings is None:
        from lockdown.config.settings import Organisation, layer

        settings = layer(Organisation(), {})
    os_name = current_os()
    apps = AppList.load(os_name=os_name)
    elsewhere: list[tuple[Match, str]] = []
    processes = snapshot(os_name)
    running = scan_running(apps.matcher(), processes=processes, elsewhere=elsewhere)
    current = build.current()
    facts = server() if sys.platform.startswith("linux") else None
    out: dict[str, Any] = {
        "version": __version__,
        "build": current.as_record(),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "os": os_name,
        "os_details": _os_details(),
        "organisation": organisation,
        "guards": [
            {
                "name": i.name,
                "backend": i.backend,
                "availability": i.availability.value,
                "reason": i.reason,
            }
            for i in guard_infos(facts)
        ],
        "display_server": _server_report(facts, settings),
        "screens": screens(),
        "display_isolation": _display_isolation(os_name),
        "virtual_machine": vm.detect([p.name for p in processes]).as_dict(),
        "remote_session": remote.detect(apps, os_name, processes).as_dict(),
        "prohibited_apps_running": [m.as_payload() for m in running],
        # other users' and sessions' matching processes: never the candidate's to close
        "prohibited_apps_elsewhere": [
            {**m.as_payload(), "uid": m.process.uid, "scope": why} for m, why in elsewhere
        ],
    }
    if os_name == "macos":
        from lockdown.guards.tcc import screen_capture_grants

        out["screen_recording_permission"] = screen_capture_grants().as_dict()
    out["policy"] = verdict(out, settings)
    return out


def _server_report(
    facts: DisplayServer | None, settings: Mapping[str, Any]
) -> dict[str, Any] | None:
    if facts is None:
        return None
    verdict = wayland_verdict(facts, settings["guards.wayland"])
    return {**facts.as_dict(), **verdict.as_payload(facts)}


def _text(data: dict[str, Any]) -> str:
    details = data["os_details"]
    lines = [
        f"Lockdown {data['version']} environment ({data['os']}: {details['system']} "
        f"{details['release']} {details['machine']}) at {data['time']}",
        f"Organisation file: {data['organisation'] or 'none (defaults)'}",
        "",
        "Guards:",
    ]
    for g in data["guards"]:
        why = f" — {g['reason']}" if g["reason"] else ""
        lines.append(f"  {g['name']:<28} {g['availability']:<11} {g['backend']}{why}")
    server = data.get("display_server")
    if server:
        lines += ["", f"Display server: {server['server']} ({server['vendor']})"]
        if server["xwayland"]:
            lines.append(
                "  a shared Wayland desktop: these guards cannot do their whole job "
                f"(guards.wayland = {server['policy']}):"
            )
            lines += [f"  - {x['guard']}: {x['reason']}" for x in server["limited"]]
    s = data["screens"]
    lines += ["", "Screens:"]
    if s["available"]:
        lines.append(f"  {s['count']} screen(s) via {s['backend']}")
        lines += [
            f"  {x['name']}: {x['width']}x{x['height']} at +{x['x']}+{x['y']}" for x in s["screens"]
        ]
    else:
        lines.append(f"  unknown: {s['reason']}")
    iso = data.get("display_isolation")
    if iso is not None:
        lines += ["", f"Exam display: {iso['mode']} ({iso['reason']})"]
    v = data["virtual_machine"]
    verdict = "YES" if v["virtual_machine"] else "no"
    lines += [
        "",
        f"Virtual machine: {verdict} (score {v['score']}/100, threshold {v['threshold']})",
    ]
    lines += [f"  + {r['weight']:>3} {r['detail']}" for r in v["reasons"]]
    lines += [f"  note: {n}" for n in v["notes"]]
    r = data["remote_session"]
    lines += ["", f"Remote session: {'YES' if r['remote_session'] else 'no'}"]
    lines += [f"  - {x['detail']}" for x in r["reasons"]]
    lines += [f"  note: {n}" for n in r["notes"]]
    apps = data["prohibited_apps_running"]
    lines += ["", f"Prohibited apps running: {len(apps) or 'none'}"]
    lines += [
        f"  {a['app_name']} (pid {a['pid']}, {a['matched_on']} {a['matched_name']!r})" for a in apps
    ]
    if "screen_recording_permission" in data:
        tcc = data["screen_recording_permission"]
        lines += ["", "Screen Recording permission:"]
        lines += [f"  {a['client']}" for a in tcc["apps"]] or ["  none"]
        lines += [f"  note: {n}" for n in tcc["notes"]]
    policy = data["policy"]
    if policy["exam_can_start"]:
        lines += ["", "Verdict: the organisation's policy lets an exam start here"]
    else:
        lines += ["", "Verdict: the organisation's policy would refuse this machine:"]
        lines += [f"  - {r}" for r in policy["refusals"]]
    return "\n".join(lines)


def _organisation_settings(args: argparse.Namespace) -> tuple[Mapping[str, Any], str | None]:
    """The organisation's effective settings (``--organisation`` or the system file)."""
    from lockdown.config.settings import layer, load_organisation
    from lockdown.paths import organisation_file

    given = getattr(args, "organisation", None)
    path = Path(given) if given else organisation_file()
    org = load_organisation(path, required=bool(given))
    return layer(org, {}), str(org.path) if org.path is not None else None


def main(args: argparse.Namespace) -> int:
    """``lockdown environment [--json]``: 0 when an exam may start here, 1 when not."""
    settings, organisation = _organisation_settings(args)
    log.guards.info("Collecting the environment report")
    # Native libraries and tools may write to stdout; keep it clean for the report.
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        data = report(settings, organisation)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    if getattr(args, "json", False):
        ok = data["policy"]["exam_can_start"]
        print(json.dumps({"ok": ok, **data}, indent=2, ensure_ascii=False))
    else:
        print(_text(data))
    return 0 if data["policy"]["exam_can_start"] else 1
