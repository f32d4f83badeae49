"""Remote-session detection: is this desktop seen or driven from another machine?

Linux: logind's ``Remote`` flag for our session, SSH variables, an X display forwarded
over the network (``localhost:10``), remote-desktop servers running (x11vnc, xrdp, krfb,
gnome-remote-desktop, vino …, listed in lockdown/resources/prohibited_apps.toml). Windows:
``SM_REMOTESESSION`` / ``SM_REMOTECONTROL``. macOS: the screen-sharing agents running.
:func:`judge` is pure and tested with recorded facts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from lockdown.guards.appslist import AppList, Matcher, OsName, ProcessFacts, current_os
from lockdown.guards.vm import Reason
from lockdown.platform.sysinfo_linux import SessionFacts

_DISPLAY: Final = re.compile(r"^(?P<host>[^:/]*):(?P<number>\d+)(\.\d+)?$")


@dataclass(frozen=True)
class RemoteVerdict:
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...] = ()

    @property
    def remote(self) -> bool:
        return bool(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "remote_session": self.remote,
            "reasons": [r.as_dict() for r in self.reasons],
            "notes": list(self.notes),
        }


def display_is_forwarded(display: str) -> bool:
    """``localhost:10.0`` or ``host:0`` (X over the network); ``:0`` and unix sockets are local."""
    match = _DISPLAY.match(display.strip())
    if match is None:
        return False
    host = match.group("host")
    if host in ("", "unix"):
        return False
    return host not in ("localhost", "127.0.0.1", "::1") or int(match.group("number")) >= 10


def judge(
    env: Mapping[str, str],
    session: SessionFacts | None = None,
    servers: Iterable[str] = (),
    windows_flags: Mapping[str, bool] | None = None,
) -> RemoteVerdict:
    reasons: list[Reason] = []
    notes: list[str] = []
    if session is not None:
        if session.remote:
            host = f" from {session.remote_host}" if session.remote_host else ""
            reasons.append(Reason("logind_remote", 100, f"logind marks the session remote{host}"))
        elif session.note:
            notes.append(session.note)
    ssh = [k for k in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY") if env.get(k)]
    if ssh:
        reasons.append(Reason("ssh", 100, "started over SSH (" + ", ".join(ssh) + ")"))
    display = env.get("DISPLAY", "")
    if display and display_is_forwarded(display):
        reasons.append(Reason("x_forwarding", 100, f"X display {display!r} is forwarded"))
    running = sorted(set(servers))
    if running:
        reasons.append(
            Reason("remote_server", 100, "remote-desktop server running: " + ", ".join(running))
        )
    for flag, value in (windows_flags or {}).items():
        if value:
            reasons.append(Reason(flag.lower(), 100, f"Windows reports {flag}"))
    return RemoteVerdict(tuple(reasons), tuple(notes))


def running_servers(matcher: Matcher, processes: Iterable[ProcessFacts] | None = None) -> list[str]:
    """The remote-control servers among ``processes`` (default: the processes now)."""
    from lockdown.guards.processes import snapshot

    found = []
    for facts in processes if processes is not None else snapshot(matcher.os):
        if name := matcher.remote_server(facts):
            found.append(name)
    return found


def detect(
    apps: AppList | None = None,
    os_name: OsName | None = None,
    processes: Iterable[ProcessFacts] | None = None,
) -> RemoteVerdict:
    """Judge this session (``processes``: a process snapshot already taken)."""
    os_name = os_name or current_os()
    apps = apps or AppList.load(os_name=os_name)
    servers = running_servers(apps.matcher(), processes)
    if sys.platform == "win32":
        from lockdown.platform import sysinfo_windows

        flags = sysinfo_windows.remote_flags(sysinfo_windows.Win32SystemApi())
        return judge(os.environ, None, servers, flags)
    session = None
    if sys.platform.startswith("linux"):
        from lockdown.platform import sysinfo_linux

        session = sysinfo_linux.collect_session_facts()
    return judge(os.environ, session, servers)
