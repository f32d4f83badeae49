"""Is there a display Qt can open? Asked before Qt starts, so the answer is one line.

Without a usable display Qt's xcb plugin aborts the process (exit 134) with a misleading
hint about ``libxcb-cursor0``, before Lockdown can say anything. :func:`require_display`
asks the display server first: an X display named by ``DISPLAY`` (its local socket, or
TCP port 6000 + n for a remote one) or a Wayland socket named by ``WAYLAND_DISPLAY``.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from lockdown.errors import UserError

CONNECT_TIMEOUT_S: Final = 2.0
X11_TCP_BASE: Final = 6000
_X_DISPLAY: Final = re.compile(r"(?P<host>[^:]*):(?P<number>\d+)(?:\.\d+)?")
#: Qt platform plugins that need a display server (others, like offscreen, do not).
_NEEDS_DISPLAY: Final = ("xcb", "wayland")


class NoUsableDisplay(UserError):
    """There is no display this process can open windows on."""


def _connects(address: str | tuple[str, int], family: int) -> str | None:
    """None when a connection to ``address`` is accepted, else the reason."""
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT_S)
        try:
            sock.connect(address)
        except OSError as exc:
            return exc.strerror or type(exc).__name__
    return None


def _x11_problem(display: str) -> str | None:
    match = _X_DISPLAY.fullmatch(display)
    if match is None:
        return f"DISPLAY={display!r} is not a display name like :0"
    host, number = match["host"], int(match["number"])
    if host in ("", "unix"):
        path = f"/tmp/.X11-unix/X{number}"
        # the X server listens on an abstract socket and on the file; either will do
        if _connects("\0" + path, socket.AF_UNIX) is None:
            return None
        reason = _connects(path, socket.AF_UNIX)
    else:
        reason = _connects((host, X11_TCP_BASE + number), socket.AF_INET)
    if reason is None:
        return None
    return f"cannot reach the X display {display} ({reason})"


def _wayland_problem(name: str, environ: Mapping[str, str]) -> str | None:
    path = Path(name) if name.startswith("/") else Path(environ.get("XDG_RUNTIME_DIR", "")) / name
    reason = _connects(str(path), socket.AF_UNIX)
    if reason is None:
        return None
    return f"cannot reach the Wayland display {name} ({reason})"


def display_problem(
    environ: Mapping[str, str] | None = None, platform: str = sys.platform
) -> str | None:
    """None when Qt can show windows here, else why not (one phrase)."""
    env = os.environ if environ is None else environ
    if not platform.startswith("linux"):
        return None  # Windows and macOS always have their desktop
    qpa = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip()
    if qpa and not qpa.startswith(_NEEDS_DISPLAY):
        return None  # a platform plugin without a display server: Qt decides
    problems = []
    if (wayland := env.get("WAYLAND_DISPLAY")) and qpa != "xcb":
        if (problem := _wayland_problem(wayland, env)) is None:
            return None
        problems.append(problem)
    if (x11 := env.get("DISPLAY")) and not qpa.startswith("wayland"):
        if (problem := _x11_problem(x11)) is None:
            return None
        problems.append(problem)
    return "; ".join(problems) or "no display: DISPLAY is not set"


def require_display(environ: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NoUsableDisplay` (one line, exit 2) when there is no usable display."""
    problem = display_problem(environ)
    if problem is not None:
        raise NoUsableDisplay(
            f"{problem}; start Lockdown from your desktop session "
            "(`lockdown demo` starts a display of its own)"
        )
