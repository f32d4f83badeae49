"""The null desktop platform: implements nothing and says so, for unknown systems and tests."""

from __future__ import annotations

from lockdown.platform.base import Capability, PlatformDefaults, Support


class NullPlatform(PlatformDefaults):
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
