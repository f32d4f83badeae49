"""The null desktop platform: implements nothing and says so, for unknown systems and tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lockdown.platform.base import Capability, KeyDecider, Support, WindowRef


class NullPlatform:
    """Every capability unavailable, with the reason; every action a no-op."""

    def __init__(self, reason: str = "no native desktop backend for this system") -> None:
        self._reason = reason

    @property
    def name(self) -> str:
        return "null"

    @property
    def is_null(self) -> bool:
        return True

    def support(self, capability: Capability) -> Support:
        return Support(False, "null", self._reason)

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
