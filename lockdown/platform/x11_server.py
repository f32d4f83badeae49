"""Which X server the display is, told by the server itself (its extensions and vendor).

XWayland (an X server a Wayland compositor runs for X clients) announces the
``XWAYLAND`` extension. That is the only sign Lockdown trusts: ``WAYLAND_DISPLAY`` and
``XDG_SESSION_TYPE`` are the candidate's to set or unset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Final

from Xlib import error

from lockdown.platform.xconnect import open_display

XWAYLAND_EXTENSION: Final = "XWAYLAND"


@dataclass(frozen=True)
class DisplayServer:
    """The X server as it describes itself."""

    vendor: str
    extensions: tuple[str, ...]

    @property
    def xwayland(self) -> bool:
        return XWAYLAND_EXTENSION in self.extensions

    @property
    def kind(self) -> str:
        return "XWayland" if self.xwayland else "X11"

    def as_dict(self) -> dict[str, Any]:
        return {
            "server": self.kind,
            "vendor": self.vendor,
            "xwayland": self.xwayland,
            "extensions": list(self.extensions),
        }


def display_server(display_name: str | None = None) -> DisplayServer | None:
    """Ask the X server ``display_name`` (default ``DISPLAY``) what it is; None when it
    cannot be reached."""
    name = display_name or os.environ.get("DISPLAY", "")
    if not name:
        return None
    try:
        dpy = open_display(name)
    except (error.DisplayError, error.ConnectionClosedError, OSError):
        return None
    try:
        vendor = str(dpy.display.info.vendor)
        extensions = tuple(sorted(str(e) for e in dpy.list_extensions()))
    except (error.XError, error.ConnectionClosedError, OSError):
        return None
    finally:
        dpy.close()
    return DisplayServer(vendor, extensions)
