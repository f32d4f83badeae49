"""Screen-capture permission, per system: the native calls behind the system check's step.

- **X11**: no permission exists; what can fail is the grab itself (an untrusted client,
  a server that hands out black pixels). :func:`x11_test_window` shows a small window of
  our own with a known picture so the check can grab it the way the screen recorder
  does and compare.
- **macOS** (10.15+): the Screen Recording permission (TCC), asked of CoreGraphics
  (``CGPreflightScreenCaptureAccess``) through a thin adapter (:class:`CoreGraphicsApi`).
  Unverified on a real Mac: tested through a fake of the adapter.
- **Wayland**: screen capture goes through the desktop portal
  (``org.freedesktop.portal.ScreenCast``), which asks the person when a recording
  starts; the check asks the portal, through a thin adapter (:class:`PortalApi`, real:
  ``gdbus``), whether it can share a monitor at all. Tested through a fake of the adapter.
- **Windows**: no permission is asked of desktop applications.
"""

from __future__ import annotations

import enum
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Protocol


class Access(enum.Enum):
    GRANTED = "granted"
    DENIED = "denied"
    #: the system asks the person when the recording starts (Wayland portal)
    ASKED_AT_START = "asked_at_start"


@dataclass(frozen=True)
class CaptureAccess:
    """Whether Lockdown may capture the screen here, through which backend, and why."""

    backend: str
    access: Access
    detail: str = ""


# -- macOS ----------------------------------------------------------------------------------


class CoreGraphicsApi(Protocol):
    """The one CoreGraphics call the check needs."""

    def preflight_screen_capture(self) -> bool | None:
        """``CGPreflightScreenCaptureAccess()``; None when the system has no such call."""
        ...


class CtypesCoreGraphics:
    """CoreGraphics through ctypes (macOS only; unverified on a real Mac)."""

    PATH: Final = "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"

    def preflight_screen_capture(self) -> bool | None:
        import ctypes

        library = ctypes.CDLL(self.PATH)
        function = getattr(library, "CGPreflightScreenCaptureAccess", None)
        if function is None:  # before macOS 10.15: no permission to hold
            return None
        function.restype = ctypes.c_bool
        function.argtypes = []
        return bool(function())


def macos_access(api: CoreGraphicsApi) -> CaptureAccess:
    granted = api.preflight_screen_capture()
    if granted is None:
        return CaptureAccess(
            "coregraphics", Access.GRANTED, "macOS before 10.15 asks no permission"
        )
    if granted:
        return CaptureAccess("coregraphics", Access.GRANTED)
    return CaptureAccess(
        "coregraphics", Access.DENIED, "Lockdown does not hold the Screen Recording permission"
    )


# -- Wayland --------------------------------------------------------------------------------

#: ``AvailableSourceTypes`` bits of the ScreenCast portal
PORTAL_MONITOR: Final = 1
PORTAL_WINDOW: Final = 2


class PortalApi(Protocol):
    """The one portal property the check needs."""

    def screencast_source_types(self) -> int | None:
        """``org.freedesktop.portal.ScreenCast.AvailableSourceTypes``; None: no portal."""
        ...


class GdbusPortal:
    """The desktop portal asked through ``gdbus`` on the session bus."""

    _UINT: Final = re.compile(r"uint32 (\d+)")

    def __init__(self, timeout: float = 5.0) -> None:
        self._timeout = timeout

    def screencast_source_types(self) -> int | None:
        command = [
            "gdbus",
            "call",
            "--session",
            "--dest",
            "org.freedesktop.portal.Desktop",
            "--object-path",
            "/org/freedesktop/portal/desktop",
            "--method",
            "org.freedesktop.DBus.Properties.Get",
            "org.freedesktop.portal.ScreenCast",
            "AvailableSourceTypes",
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=self._timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        found = self._UINT.search(done.stdout) if done.returncode == 0 else None
        return int(found.group(1)) if found else None


def wayland_access(api: PortalApi) -> CaptureAccess:
    types = api.screencast_source_types()
    if types is None:
        return CaptureAccess(
            "xdg-desktop-portal",
            Access.DENIED,
            "no screen-cast portal answers on the session bus (xdg-desktop-portal missing)",
        )
    if not types & PORTAL_MONITOR:
        return CaptureAccess(
            "xdg-desktop-portal",
            Access.DENIED,
            "the screen-cast portal cannot share a whole screen",
        )
    return CaptureAccess(
        "xdg-desktop-portal",
        Access.ASKED_AT_START,
        "the desktop asks to share the screen when the recording starts",
    )


# -- X11 ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeWindow:
    """Our test window on the screen: where it is and which colour each probe point has."""

    x: int
    y: int
    width: int
    height: int
    #: (x, y) relative to the window -> the (r, g, b) drawn there
    expected: Mapping[tuple[int, int], tuple[int, int, int]]


#: two colours unlikely to be on a desktop by chance, left and right half
TEST_COLOURS: Final = ((0x3C, 0xB4, 0x4B), (0xB4, 0x3C, 0x9F))
TEST_SIZE: Final = 24


def _pixel(rgb: tuple[int, int, int]) -> int:
    return (rgb[0] << 16) | (rgb[1] << 8) | rgb[2]


@contextmanager
def x11_test_window(display_name: str | None = None, timeout: float = 3.0) -> Iterator[ProbeWindow]:
    """Show a small override-redirect window of ours with two colour halves, on top.

    Assumes a 24-bit TrueColor root visual (every X server we run on); the window is
    gone when the block ends.

    Raises:
        OSError: no X display can be reached.
        TimeoutError: the window was not shown within ``timeout``.
    """
    from Xlib import X, error

    from lockdown.platform.xconnect import open_display

    try:
        dpy = open_display(display_name or os.environ.get("DISPLAY"))
    except (error.DisplayError, error.ConnectionClosedError) as exc:
        raise OSError(f"cannot connect to the X display ({exc})") from None
    try:
        screen = dpy.screen()
        x, y, size = 0, 0, TEST_SIZE
        left, right = TEST_COLOURS
        window: Any = screen.root.create_window(
            x,
            y,
            size,
            size,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=_pixel(left),
            override_redirect=True,
            event_mask=X.ExposureMask | X.StructureNotifyMask,
        )
        window.set_wm_name("lockdown-capture-test")
        half = window.create_window(
            size // 2,
            0,
            size - size // 2,
            size,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=_pixel(right),
        )
        half.map()
        window.map()
        window.configure(stack_mode=X.Above)
        dpy.sync()
        deadline = time.monotonic() + timeout
        exposed = False
        while not exposed:
            while dpy.pending_events():
                if dpy.next_event().type == X.Expose:
                    exposed = True
            if not exposed:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the test window was not shown within {timeout:g} s")
                time.sleep(0.01)
        dpy.sync()
        quarter = size // 4
        yield ProbeWindow(
            x,
            y,
            size,
            size,
            {
                (quarter, quarter): left,
                (quarter, size - quarter): left,
                (size - quarter, quarter): right,
                (size - quarter, size - quarter): right,
            },
        )
        window.destroy()
        dpy.sync()
    finally:
        dpy.close()


def backend() -> str:
    """Which way this machine's screen-capture permission is checked."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform == "win32":
        return "windows"
    if os.environ.get("DISPLAY"):
        return "x11"
    if os.environ.get("WAYLAND_DISPLAY"):
        return "wayland"
    return "none"
