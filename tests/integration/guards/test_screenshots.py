"""Screenshot guard: windows hidden from capture are journalled once; a failing query is a journalled gap."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QWidget

from lockdown.config.settings import Settings
from lockdown.events import Event
from lockdown.guards.screenshots import ScreenshotGuard
from lockdown.platform.base import Capability, PlatformDefaults, Support, WindowRef

pytestmark = pytest.mark.x11


class HiddenWindowsPlatform(PlatformDefaults):
    def __init__(self, answers: list[list[WindowRef] | Exception]) -> None:
        self._answers = answers

    @property
    def name(self) -> str:
        return "fake"

    def support(self, capability: Capability) -> Support:
        return Support(capability is Capability.CAPTURE_EXCLUDED_WINDOWS, "fake")

    def capture_excluded_windows(self) -> list[WindowRef]:
        answer = self._answers.pop(0) if self._answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_hidden_windows_are_journalled_once_and_a_failing_query_is_a_gap(kiosk: QWidget) -> None:
    overlay = WindowRef(id=7, pid=999, title="answers overlay")
    platform = HiddenWindowsPlatform(
        [[overlay], OSError("access denied"), OSError("access denied"), [overlay]]
    )
    events: list[Event] = []
    guard = ScreenshotGuard(Settings.defaults(), kiosk, platform, scan_ms=60_000)
    guard.start(events.append)
    for _ in range(3):
        guard.scan()
    guard.stop()
    guard.stop()
    assert [e.type for e in events] == [
        "guards.capture_hidden_window",
        "guards.capture_scan_failed",
    ]
    assert events[0].payload["title"] == "answers overlay"
    assert events[1].payload == {"error": "access denied"}
