"""Choose the desktop platform of this OS, importing only that OS's module."""

from __future__ import annotations

import os
import sys

from lockdown import log
from lockdown.platform.base import DesktopPlatform
from lockdown.platform.null import NullPlatform


def desktop_platform() -> DesktopPlatform:
    """The desktop backend for this machine; :class:`NullPlatform` when none fits.

    The backend logs why it fell back, so ``lockdown environment`` and the journal can
    say which guard runs with a gap.
    """
    if sys.platform == "win32":
        from lockdown.platform.windows import Win32Api, WindowsPlatform

        return WindowsPlatform(Win32Api())
    if sys.platform == "darwin":
        from lockdown.platform.macos import CocoaApi, MacPlatform

        return MacPlatform(CocoaApi())
    # XDG_SESSION_TYPE is the candidate's to set: it never switches the X11 guards off
    # (telling XWayland apart by the X server's own extensions is the Wayland work's).
    if sys.platform.startswith("linux") and os.environ.get("DISPLAY"):
        from lockdown.platform.linux import X11Platform

        return X11Platform()
    reason = "no X11 display (DISPLAY is not set)" if sys.platform.startswith("linux") else ""
    log.guards.warning("No desktop platform backend: %s", reason or sys.platform)
    return NullPlatform(reason or f"no desktop backend for {sys.platform}")
