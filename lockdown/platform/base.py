"""The desktop platform contract: keyboard lock, active window, capture exclusion, system keys.

Guards hold the policy and the Qt side; a :class:`DesktopPlatform` only answers the
questions a toolkit cannot (which window is active system-wide, is a window excluded
from screen capture) and performs the native changes (a low-level keyboard hook, macOS
presentation options, X11 server key options). Each OS has one module behind this
protocol; :mod:`lockdown.platform.null` is the fallback that says what is missing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class Capability(enum.Enum):
    """Features a guard may ask a platform about."""

    #: the platform itself holds the keyboard (hook, presentation options)
    KEYBOARD_HOOK = "keyboard_hook"
    #: which window is active system-wide, and bringing ours back
    ACTIVE_WINDOW = "active_window"
    #: hide our own windows from screen capture
    CAPTURE_EXCLUSION = "capture_exclusion"
    #: list other processes' windows that hide themselves from capture
    CAPTURE_EXCLUDED_WINDOWS = "capture_excluded_windows"
    #: switch off keys the window system handles before any grab (VT switch, zap)
    SYSTEM_KEYS = "system_keys"
    #: a change counter for the clipboard where the toolkit cannot watch it
    CLIPBOARD_COUNTER = "clipboard_counter"


@dataclass(frozen=True)
class Support:
    """Whether a capability works here, through which backend, and why not."""

    available: bool
    backend: str
    reason: str = ""


@dataclass(frozen=True)
class WindowRef:
    """A top-level window of any process."""

    id: int
    pid: int | None = None
    title: str = ""
    owner: str = ""

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for the journal."""
        return {"id": self.id, "pid": self.pid, "title": self.title, "owner": self.owner}


@dataclass(frozen=True)
class KeyStroke:
    """A key press seen by a native keyboard hook (Windows), in Qt's portable key names."""

    key: str
    modifiers: frozenset[str] = field(default_factory=frozenset)
    #: synthesised by another program (``LLKHF_INJECTED``), not typed on a keyboard
    injected: bool = False


#: Decides about one native key press: True swallows it. Called on the GUI thread.
KeyDecider = Callable[[KeyStroke], bool]


class DesktopPlatform(Protocol):
    """Native desktop services for the guards. Every method is cheap and never blocks long."""

    @property
    def name(self) -> str:
        """Backend name, e.g. ``x11``, ``win32``, ``cocoa``, ``null``."""
        ...

    @property
    def is_null(self) -> bool:
        """True for the fallback that implements nothing."""
        ...

    def support(self, capability: Capability) -> Support:
        """Whether ``capability`` works on this machine (no side effects)."""
        ...

    def hook_keyboard(self, window: int, decide: KeyDecider) -> bool:
        """Hold the keyboard natively for ``window`` (Windows hook, macOS options).

        Returns:
            True when the platform now holds the keyboard; False when it has no native
            hook and the caller must rely on the toolkit's grab (X11).
        """
        ...

    def unhook_keyboard(self) -> None:
        """Undo :meth:`hook_keyboard`; safe to call twice."""
        ...

    def active_window(self) -> WindowRef | None:
        """The window that has the input focus system-wide, or None when unknown."""
        ...

    def activate_window(self, window: int) -> None:
        """Raise ``window`` (a native id of ours) and give it the input focus."""
        ...

    def set_capture_excluded(self, window: int, excluded: bool) -> bool:
        """Hide (or show again) ``window`` from screen capture; True when it took effect."""
        ...

    def capture_excluded_windows(self) -> list[WindowRef]:
        """Other processes' visible windows that hide themselves from screen capture."""
        ...

    def system_keys_state(self) -> Mapping[str, Any] | None:
        """The current system-key settings (JSON-able) to restore later; None if n/a."""
        ...

    def disable_system_keys(self) -> None:
        """Switch off system keys that no grab can stop (record the state first)."""
        ...

    def restore_system_keys(self, state: Mapping[str, Any]) -> None:
        """Put back a state returned by :meth:`system_keys_state`."""
        ...

    def clipboard_change_count(self) -> int | None:
        """A counter that grows on every clipboard change, where the toolkit cannot signal it."""
        ...


class PlatformDefaults:
    """What a backend does for a capability it lacks: nothing, and it says so in ``support``.

    Each backend inherits this and overrides only what its system offers, so "not
    available here" has one meaning on every platform.
    """

    @property
    def is_null(self) -> bool:
        return False

    def hook_keyboard(self, window: int, decide: KeyDecider) -> bool:
        return False

    def unhook_keyboard(self) -> None:
        return None

    def active_window(self) -> WindowRef | None:
        return None

    def activate_window(self, window: int) -> None:
        return None

    def set_capture_excluded(self, window: int, excluded: bool) -> bool:
        return False

    def capture_excluded_windows(self) -> list[WindowRef]:
        return []

    def system_keys_state(self) -> Mapping[str, Any] | None:
        return None

    def disable_system_keys(self) -> None:
        return None

    def restore_system_keys(self, state: Mapping[str, Any]) -> None:
        return None

    def clipboard_change_count(self) -> int | None:
        return None
