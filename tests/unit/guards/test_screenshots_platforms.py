"""Windows and macOS adapters' logic, through spec_set fakes of their thin native adapters.

These never touch a real Windows or macOS API (none exists here); they check what our
logic asks of the adapter and how it reads the answers.
"""

from __future__ import annotations

import os
from unittest.mock import create_autospec

from lockdown.platform.base import Capability, KeyStroke, WindowRef
from lockdown.platform.macos import KIOSK_OPTIONS, CocoaApi, MacPlatform
from lockdown.platform.windows import (
    LLKHF_INJECTED,
    VK_MENU,
    WDA_EXCLUDEFROMCAPTURE,
    WDA_MONITOR,
    WDA_NONE,
    WM_KEYDOWN,
    WM_KEYUP,
    WM_SYSKEYDOWN,
    Win32Api,
    WindowsPlatform,
)


def _win() -> tuple[WindowsPlatform, Win32Api]:
    api = create_autospec(Win32Api, spec_set=True, instance=True)
    return WindowsPlatform(api), api


def test_windows_excludes_the_kiosk_from_capture_and_falls_back_to_monitor() -> None:
    platform, api = _win()
    api.set_window_display_affinity.side_effect = [True, False, True, True]
    assert platform.set_capture_excluded(42, True)
    assert platform.set_capture_excluded(42, True)  # old Windows: WDA_MONITOR
    assert platform.set_capture_excluded(42, False)
    affinities = [c.args[1] for c in api.set_window_display_affinity.call_args_list]
    assert affinities == [WDA_EXCLUDEFROMCAPTURE, WDA_EXCLUDEFROMCAPTURE, WDA_MONITOR, WDA_NONE]


def test_windows_reports_other_processes_windows_hidden_from_capture() -> None:
    platform, api = _win()
    api.visible_windows.return_value = [1, 2, 3, 4]
    api.get_window_display_affinity.side_effect = {
        1: WDA_NONE,
        2: WDA_EXCLUDEFROMCAPTURE,
        3: WDA_EXCLUDEFROMCAPTURE,
        4: None,
    }.get
    api.window_pid.side_effect = {2: 777, 3: os.getpid()}.get
    api.window_title.return_value = "overlay"
    assert platform.capture_excluded_windows() == [WindowRef(2, 777, "overlay")]


def test_windows_hook_asks_the_guard_and_swallows_key_up_of_blocked_keys() -> None:
    platform, api = _win()
    api.install_keyboard_hook.return_value = True
    api.key_down.side_effect = lambda vk: vk == VK_MENU
    seen: list[KeyStroke] = []

    def decide(stroke: KeyStroke) -> bool:
        seen.append(stroke)
        return stroke.key == "Tab" or stroke.injected

    assert platform.hook_keyboard(1, decide)
    callback = api.install_keyboard_hook.call_args.args[0]
    assert callback(0x09, 0x20, WM_SYSKEYDOWN) is True  # Alt+Tab
    assert callback(0x09, 0x20, WM_KEYUP) is True
    assert callback(0x41, 0, WM_KEYDOWN) is False
    assert callback(0x41, LLKHF_INJECTED, WM_KEYDOWN) is True  # injected: rejected
    assert seen[0] == KeyStroke("Tab", frozenset({"Alt"}), False)
    assert seen[2].injected
    platform.unhook_keyboard()
    api.uninstall_keyboard_hook.assert_called_once_with()
    assert platform.support(Capability.KEYBOARD_HOOK).available


def test_windows_without_a_hook_says_so() -> None:
    platform, api = _win()
    api.install_keyboard_hook.return_value = False
    assert platform.hook_keyboard(1, lambda s: True) is False
    platform.unhook_keyboard()
    api.uninstall_keyboard_hook.assert_not_called()


def _mac() -> tuple[MacPlatform, CocoaApi]:
    api = create_autospec(CocoaApi, spec_set=True, instance=True)
    return MacPlatform(api), api


def test_macos_presentation_options_are_set_and_restored() -> None:
    platform, api = _mac()
    api.presentation_options.return_value = 0
    assert platform.hook_keyboard(5, lambda s: False)
    platform.unhook_keyboard()
    platform.unhook_keyboard()
    assert [c.args[0] for c in api.set_presentation_options.call_args_list] == [KIOSK_OPTIONS, 0]


def test_macos_sharing_type_and_hidden_windows() -> None:
    platform, api = _mac()
    api.set_sharing_type.return_value = True
    assert platform.set_capture_excluded(99, True)
    api.set_sharing_type.assert_called_with(99, 0)
    api.window_list.return_value = [
        {"number": 1, "pid": 10, "owner": "Cluely", "name": "", "sharing": 0, "layer": 0},
        {"number": 2, "pid": 11, "owner": "Dock", "name": "", "sharing": 0, "layer": 20},
        {"number": 3, "pid": 12, "owner": "Notes", "name": "n", "sharing": 1, "layer": 0},
        {
            "number": 4,
            "pid": os.getpid(),
            "owner": "Lockdown",
            "name": "",
            "sharing": 0,
            "layer": 0,
        },
    ]
    assert platform.capture_excluded_windows() == [WindowRef(1, 10, "", "Cluely")]
    api.pasteboard_change_count.return_value = 7
    assert platform.clipboard_change_count() == 7
    api.frontmost_pid.return_value = 0
    assert platform.active_window() is None
