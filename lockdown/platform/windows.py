"""Windows desktop platform: low-level keyboard hook, foreground window, capture affinity.

:class:`Win32Api` is the thin native adapter (one method per user32 call, via ctypes);
:class:`WindowsPlatform` holds the logic and is unit-tested with a ``spec_set`` fake of
the adapter. NOT RUN on a real Windows machine yet: written against the documented
APIs (SetWindowsHookExW/WH_KEYBOARD_LL, KBDLLHOOKSTRUCT, SetWindowDisplayAffinity,
GetWindowDisplayAffinity, EnumWindows, GetForegroundWindow, SetForegroundWindow).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from typing import Any, Final

from lockdown import log
from lockdown.platform.base import (
    Capability,
    KeyDecider,
    KeyStroke,
    PlatformDefaults,
    Support,
    WindowRef,
)

WDA_NONE: Final = 0x00
WDA_MONITOR: Final = 0x01
WDA_EXCLUDEFROMCAPTURE: Final = 0x11
WH_KEYBOARD_LL: Final = 13
HC_ACTION: Final = 0
WM_KEYDOWN: Final = 0x0100
WM_KEYUP: Final = 0x0101
WM_SYSKEYDOWN: Final = 0x0104
WM_SYSKEYUP: Final = 0x0105
LLKHF_INJECTED: Final = 0x10
LLKHF_ALTDOWN: Final = 0x20
VK_SHIFT, VK_CONTROL, VK_MENU, VK_LWIN, VK_RWIN = 0x10, 0x11, 0x12, 0x5B, 0x5C

#: Virtual-key codes -> Qt portable key names (only what shortcuts need; letters/digits below).
VK_NAMES: Final = {
    0x08: "Backspace",
    0x09: "Tab",
    0x0D: "Return",
    0x1B: "Esc",
    0x20: "Space",
    0x25: "Left",
    0x26: "Up",
    0x27: "Right",
    0x28: "Down",
    0x2C: "Print",
    0x2D: "Ins",
    0x2E: "Del",
    0x5D: "Menu",
    VK_LWIN: "Meta",
    VK_RWIN: "Meta",
    VK_SHIFT: "Shift",
    0xA0: "Shift",
    0xA1: "Shift",
    VK_CONTROL: "Ctrl",
    0xA2: "Ctrl",
    0xA3: "Ctrl",
    VK_MENU: "Alt",
    0xA4: "Alt",
    0xA5: "Alt",
    **{0x70 + n: f"F{n + 1}" for n in range(24)},
    **{c: chr(c) for c in range(0x30, 0x3A)},
    **{c: chr(c) for c in range(0x41, 0x5B)},
}

#: (vk, flags, message) -> True to swallow the key
RawKeyCallback = Callable[[int, int, int], bool]


class Win32Api:  # pragma: no cover - needs Windows
    """Thin ctypes adapter over user32; every method is one documented call."""

    def __init__(self) -> None:
        from ctypes import wintypes

        self._wt = wintypes
        self._user32 = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined]
        self._kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        self._hook: Any = None
        self._proc: Any = None

    def set_window_display_affinity(self, hwnd: int, affinity: int) -> bool:
        return bool(
            self._user32.SetWindowDisplayAffinity(self._wt.HWND(hwnd), self._wt.DWORD(affinity))
        )

    def get_window_display_affinity(self, hwnd: int) -> int | None:
        value = self._wt.DWORD(0)
        ok = self._user32.GetWindowDisplayAffinity(self._wt.HWND(hwnd), ctypes.byref(value))
        return int(value.value) if ok else None

    def visible_windows(self) -> list[int]:
        found: list[int] = []
        proto = ctypes.WINFUNCTYPE(self._wt.BOOL, self._wt.HWND, self._wt.LPARAM)  # type: ignore[attr-defined]

        def collect(hwnd: int, _lparam: int) -> bool:
            if self._user32.IsWindowVisible(hwnd):
                found.append(int(hwnd))
            return True

        self._user32.EnumWindows(proto(collect), 0)
        return found

    def window_pid(self, hwnd: int) -> int:
        pid = self._wt.DWORD(0)
        self._user32.GetWindowThreadProcessId(self._wt.HWND(hwnd), ctypes.byref(pid))
        return int(pid.value)

    def window_title(self, hwnd: int) -> str:
        buffer = ctypes.create_unicode_buffer(512)
        self._user32.GetWindowTextW(self._wt.HWND(hwnd), buffer, 512)
        return str(buffer.value)

    def foreground_window(self) -> int:
        return int(self._user32.GetForegroundWindow() or 0)

    def set_foreground_window(self, hwnd: int) -> bool:
        self._user32.ShowWindow(self._wt.HWND(hwnd), 9)  # SW_RESTORE
        return bool(self._user32.SetForegroundWindow(self._wt.HWND(hwnd)))

    def key_down(self, vk: int) -> bool:
        return bool(self._user32.GetAsyncKeyState(vk) & 0x8000)

    def install_keyboard_hook(self, callback: RawKeyCallback) -> bool:
        wt = self._wt

        class KBDLLHOOKSTRUCT(ctypes.Structure):
            _fields_ = (
                ("vkCode", wt.DWORD),
                ("scanCode", wt.DWORD),
                ("flags", wt.DWORD),
                ("time", wt.DWORD),
                ("dwExtraInfo", ctypes.c_size_t),
            )

        proto = ctypes.WINFUNCTYPE(ctypes.c_ssize_t, ctypes.c_int, wt.WPARAM, wt.LPARAM)  # type: ignore[attr-defined]

        def hook(code: int, wparam: int, lparam: int) -> int:
            if code == HC_ACTION:
                info = ctypes.cast(lparam, ctypes.POINTER(KBDLLHOOKSTRUCT)).contents
                if callback(int(info.vkCode), int(info.flags), int(wparam)):
                    return 1
            return int(self._user32.CallNextHookEx(None, code, wparam, lparam))

        self._proc = proto(hook)
        module = self._kernel32.GetModuleHandleW(None)
        self._hook = self._user32.SetWindowsHookExW(WH_KEYBOARD_LL, self._proc, module, 0)
        return bool(self._hook)

    def uninstall_keyboard_hook(self) -> None:
        if self._hook:
            self._user32.UnhookWindowsHookEx(self._hook)
        self._hook = None
        self._proc = None


class WindowsPlatform(PlatformDefaults):
    """Windows logic over a :class:`Win32Api` (or a test's spec_set fake of it)."""

    def __init__(self, api: Win32Api) -> None:
        self._api = api
        self._decide: KeyDecider | None = None
        self._swallowed: set[int] = set()

    @property
    def name(self) -> str:
        return "win32"

    def support(self, capability: Capability) -> Support:
        if capability is Capability.KEYBOARD_HOOK:
            return Support(True, "win32 WH_KEYBOARD_LL (rejects injected keys)")
        if capability is Capability.ACTIVE_WINDOW:
            return Support(True, "win32 GetForegroundWindow")
        if capability is Capability.CAPTURE_EXCLUSION:
            return Support(True, "win32 SetWindowDisplayAffinity(WDA_EXCLUDEFROMCAPTURE)")
        if capability is Capability.CAPTURE_EXCLUDED_WINDOWS:
            return Support(True, "win32 GetWindowDisplayAffinity")
        if capability is Capability.SYSTEM_KEYS:
            return Support(False, "win32", "Ctrl+Alt+Del is the secure attention sequence")
        return Support(False, "win32", "Qt watches the clipboard (AddClipboardFormatListener)")

    # -- keyboard ---------------------------------------------------------------------

    def on_raw_key(self, vk: int, flags: int, message: int) -> bool:
        """The hook's decision for one key event (key-ups follow their key-downs)."""
        if message in (WM_KEYUP, WM_SYSKEYUP):
            if vk in self._swallowed:
                self._swallowed.discard(vk)
                return True
            return False
        if message not in (WM_KEYDOWN, WM_SYSKEYDOWN) or self._decide is None:
            return False
        modifiers = set()
        if flags & LLKHF_ALTDOWN or self._api.key_down(VK_MENU):
            modifiers.add("Alt")
        if self._api.key_down(VK_CONTROL):
            modifiers.add("Ctrl")
        if self._api.key_down(VK_SHIFT):
            modifiers.add("Shift")
        if self._api.key_down(VK_LWIN) or self._api.key_down(VK_RWIN):
            modifiers.add("Meta")
        stroke = KeyStroke(
            VK_NAMES.get(vk, f"0x{vk:02x}"), frozenset(modifiers), bool(flags & LLKHF_INJECTED)
        )
        try:
            block = self._decide(stroke)
        except Exception:
            log.guards.exception("Keyboard decision failed; letting the key through")
            return False
        if block:
            self._swallowed.add(vk)
        return block

    def hook_keyboard(self, window: int, decide: KeyDecider) -> bool:
        self._decide = decide
        if not self._api.install_keyboard_hook(self.on_raw_key):
            self._decide = None
            return False
        return True

    def unhook_keyboard(self) -> None:
        if self._decide is not None:
            self._api.uninstall_keyboard_hook()
        self._decide = None
        self._swallowed.clear()

    # -- windows ----------------------------------------------------------------------

    def _ref(self, hwnd: int) -> WindowRef:
        return WindowRef(hwnd, self._api.window_pid(hwnd), self._api.window_title(hwnd))

    def active_window(self) -> WindowRef | None:
        hwnd = self._api.foreground_window()
        return self._ref(hwnd) if hwnd else None

    def activate_window(self, window: int) -> None:
        if not self._api.set_foreground_window(window):
            log.guards.warning("Windows refused to bring the exam window to the foreground")

    def set_capture_excluded(self, window: int, excluded: bool) -> bool:
        affinity = WDA_EXCLUDEFROMCAPTURE if excluded else WDA_NONE
        if self._api.set_window_display_affinity(window, affinity):
            return True
        # Before Windows 10 2004 only WDA_MONITOR exists: the window shows black.
        return excluded and self._api.set_window_display_affinity(window, WDA_MONITOR)

    def capture_excluded_windows(self) -> list[WindowRef]:
        own = os.getpid()
        hidden = []
        for hwnd in self._api.visible_windows():
            affinity = self._api.get_window_display_affinity(hwnd)
            if affinity in (WDA_MONITOR, WDA_EXCLUDEFROMCAPTURE):
                ref = self._ref(hwnd)
                if ref.pid != own:
                    hidden.append(ref)
        return hidden
