"""macOS desktop platform: presentation options, window sharing type, window list.

:class:`CocoaApi` is the thin native adapter (Objective-C runtime and CoreGraphics via
ctypes); :class:`MacPlatform` holds the logic and is unit-tested with a ``spec_set`` fake
of the adapter. NOT RUN on a real Mac yet: written against the documented APIs
(NSApplication.presentationOptions, NSWindow.sharingType, NSWorkspace
frontmostApplication, NSPasteboard changeCount, CGWindowListCopyWindowInfo with
kCGWindowSharingState).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any, Final

from lockdown import log
from lockdown.platform.base import Capability, KeyDecider, PlatformDefaults, Support, WindowRef

# NSApplicationPresentationOptions
HIDE_DOCK: Final = 1 << 1
HIDE_MENU_BAR: Final = 1 << 3
DISABLE_PROCESS_SWITCHING: Final = 1 << 5
DISABLE_FORCE_QUIT: Final = 1 << 6
DISABLE_SESSION_TERMINATION: Final = 1 << 7
DISABLE_HIDE_APPLICATION: Final = 1 << 8
KIOSK_OPTIONS: Final = (
    HIDE_DOCK
    | HIDE_MENU_BAR
    | DISABLE_PROCESS_SWITCHING
    | DISABLE_FORCE_QUIT
    | DISABLE_SESSION_TERMINATION
    | DISABLE_HIDE_APPLICATION
)
NS_WINDOW_SHARING_NONE: Final = 0
NS_WINDOW_SHARING_READ_ONLY: Final = 1


class CocoaApi:  # pragma: no cover - needs macOS
    """Thin ctypes adapter over the Objective-C runtime, AppKit and CoreGraphics."""

    def __init__(self) -> None:
        objc = ctypes.cdll.LoadLibrary(ctypes.util.find_library("objc") or "libobjc.dylib")
        ctypes.cdll.LoadLibrary("/System/Library/Frameworks/AppKit.framework/AppKit")
        self._cg = ctypes.cdll.LoadLibrary(
            "/System/Library/Frameworks/CoreGraphics.framework/CoreGraphics"
        )
        self._cf = ctypes.cdll.LoadLibrary(
            "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation"
        )
        objc.objc_getClass.restype = ctypes.c_void_p
        objc.objc_getClass.argtypes = [ctypes.c_char_p]
        objc.sel_registerName.restype = ctypes.c_void_p
        objc.sel_registerName.argtypes = [ctypes.c_char_p]
        self._objc = objc

    def _send(
        self, receiver: Any, selector: str, *args: Any, restype: Any = ctypes.c_void_p
    ) -> Any:
        msg = self._objc.objc_msgSend
        msg.restype = restype
        msg.argtypes = [ctypes.c_void_p, ctypes.c_void_p] + [type(a) for a in args]
        return msg(receiver, self._objc.sel_registerName(selector.encode()), *args)

    def _class(self, name: str) -> Any:
        return self._objc.objc_getClass(name.encode())

    def _app(self) -> Any:
        return self._send(self._class("NSApplication"), "sharedApplication")

    def presentation_options(self) -> int:
        return int(self._send(self._app(), "presentationOptions", restype=ctypes.c_ulong))

    def set_presentation_options(self, options: int) -> None:
        self._send(self._app(), "setPresentationOptions:", ctypes.c_ulong(options), restype=None)

    def set_sharing_type(self, view: int, sharing: int) -> bool:
        window = self._send(ctypes.c_void_p(view), "window")
        if not window:
            return False
        self._send(
            ctypes.c_void_p(window), "setSharingType:", ctypes.c_ulong(sharing), restype=None
        )
        return True

    def frontmost_pid(self) -> int:
        workspace = self._send(self._class("NSWorkspace"), "sharedWorkspace")
        app = self._send(ctypes.c_void_p(workspace), "frontmostApplication")
        return (
            int(self._send(ctypes.c_void_p(app), "processIdentifier", restype=ctypes.c_int))
            if app
            else 0
        )

    def activate_self(self) -> None:
        self._send(self._app(), "activateIgnoringOtherApps:", ctypes.c_bool(True), restype=None)

    def pasteboard_change_count(self) -> int:
        board = self._send(self._class("NSPasteboard"), "generalPasteboard")
        return int(self._send(ctypes.c_void_p(board), "changeCount", restype=ctypes.c_long))

    def window_list(self) -> list[dict[str, Any]]:
        """On-screen windows: number, pid, owner, name, sharing state (CGWindowListCopyWindowInfo)."""
        cf, cg = self._cf, self._cg
        cg.CGWindowListCopyWindowInfo.restype = ctypes.c_void_p
        cg.CGWindowListCopyWindowInfo.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
        cf.CFArrayGetCount.restype = ctypes.c_long
        cf.CFArrayGetCount.argtypes = [ctypes.c_void_p]
        cf.CFArrayGetValueAtIndex.restype = ctypes.c_void_p
        cf.CFArrayGetValueAtIndex.argtypes = [ctypes.c_void_p, ctypes.c_long]
        cf.CFDictionaryGetValue.restype = ctypes.c_void_p
        cf.CFDictionaryGetValue.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        cf.CFStringCreateWithCString.restype = ctypes.c_void_p
        cf.CFStringCreateWithCString.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint32]
        cf.CFNumberGetValue.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
        cf.CFStringGetCString.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_long,
            ctypes.c_uint32,
        ]
        cf.CFRelease.argtypes = [ctypes.c_void_p]
        utf8 = 0x08000100

        def key(name: str) -> Any:
            return cf.CFStringCreateWithCString(None, name.encode(), utf8)

        def number(d: Any, k: Any) -> int:
            ref = cf.CFDictionaryGetValue(d, k)
            out = ctypes.c_long(0)
            if ref:
                cf.CFNumberGetValue(ref, 4, ctypes.byref(out))  # kCFNumberSInt64Type
            return int(out.value)

        def text(d: Any, k: Any) -> str:
            ref = cf.CFDictionaryGetValue(d, k)
            buf = ctypes.create_string_buffer(512)
            if ref and cf.CFStringGetCString(ref, buf, 512, utf8):
                return buf.value.decode("utf-8", "replace")
            return ""

        keys = {
            n: key(n)
            for n in (
                "kCGWindowNumber",
                "kCGWindowOwnerPID",
                "kCGWindowOwnerName",
                "kCGWindowName",
                "kCGWindowSharingState",
                "kCGWindowLayer",
            )
        }
        array = cg.CGWindowListCopyWindowInfo(1 | 16, 0)  # on screen only, excluding desktop
        windows = []
        try:
            for i in range(cf.CFArrayGetCount(array) if array else 0):
                d = cf.CFArrayGetValueAtIndex(array, i)
                windows.append(
                    {
                        "number": number(d, keys["kCGWindowNumber"]),
                        "pid": number(d, keys["kCGWindowOwnerPID"]),
                        "owner": text(d, keys["kCGWindowOwnerName"]),
                        "name": text(d, keys["kCGWindowName"]),
                        "sharing": number(d, keys["kCGWindowSharingState"]),
                        "layer": number(d, keys["kCGWindowLayer"]),
                    }
                )
        finally:
            if array:
                cf.CFRelease(array)
            for k in keys.values():
                cf.CFRelease(k)
        return windows


class MacPlatform(PlatformDefaults):
    """macOS logic over a :class:`CocoaApi` (or a test's spec_set fake of it)."""

    def __init__(self, api: CocoaApi) -> None:
        self._api = api
        self._saved_options: int | None = None

    @property
    def name(self) -> str:
        return "cocoa"

    def support(self, capability: Capability) -> Support:
        backends = {
            Capability.KEYBOARD_HOOK: "cocoa presentation options",
            Capability.ACTIVE_WINDOW: "cocoa NSWorkspace.frontmostApplication",
            Capability.CAPTURE_EXCLUSION: "cocoa NSWindow.sharingType = none",
            Capability.CAPTURE_EXCLUDED_WINDOWS: "quartz kCGWindowSharingState",
            Capability.CLIPBOARD_COUNTER: "cocoa NSPasteboard.changeCount",
        }
        if capability in backends:
            return Support(True, backends[capability])
        return Support(False, "cocoa", "presentation options cover the system keys")

    def hook_keyboard(self, window: int, decide: KeyDecider) -> bool:
        if self._saved_options is None:
            self._saved_options = self._api.presentation_options()
        self._api.set_presentation_options(KIOSK_OPTIONS)
        return True

    def unhook_keyboard(self) -> None:
        if self._saved_options is not None:
            self._api.set_presentation_options(self._saved_options)
            self._saved_options = None

    def active_window(self) -> WindowRef | None:
        pid = self._api.frontmost_pid()
        return WindowRef(0, pid, owner="") if pid else None

    def activate_window(self, window: int) -> None:
        self._api.activate_self()

    def set_capture_excluded(self, window: int, excluded: bool) -> bool:
        sharing = NS_WINDOW_SHARING_NONE if excluded else NS_WINDOW_SHARING_READ_ONLY
        return self._api.set_sharing_type(window, sharing)

    def capture_excluded_windows(self) -> list[WindowRef]:
        own = os.getpid()
        hidden = []
        for w in self._api.window_list():
            # layer 0 = normal windows; system overlays (menu bar, dock) live above it
            if w["sharing"] == NS_WINDOW_SHARING_NONE and w["pid"] != own and w["layer"] == 0:
                hidden.append(WindowRef(w["number"], w["pid"], w["name"], w["owner"]))
        return hidden

    def clipboard_change_count(self) -> int | None:
        try:
            return self._api.pasteboard_change_count()
        except OSError as exc:
            log.guards.warning("Cannot read the pasteboard change count: %s", exc)
            return None
