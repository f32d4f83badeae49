"""A program that steals the focus in a loop is rate-limited in the journal without losing the count."""

from __future__ import annotations

import itertools

import pytest
from PySide6.QtWidgets import QWidget

from lockdown.config.settings import Settings
from lockdown.events import Event
from lockdown.guards.focus import FocusGuard
from lockdown.platform.base import Capability, PlatformDefaults, Support, WindowRef

pytestmark = pytest.mark.x11


class ThievingPlatform(PlatformDefaults):
    """The active window alternates between a thief and nobody's (focus lost, regained)."""

    def __init__(self, kiosk: QWidget) -> None:
        self._kiosk = kiosk
        self._turns = itertools.cycle([True, False])

    def support(self, capability: Capability) -> Support:
        return Support(capability is Capability.ACTIVE_WINDOW, "fake")

    def active_window(self) -> WindowRef | None:
        if next(self._turns):
            return WindowRef(id=4242, pid=1, title="thief")
        return WindowRef(id=int(self._kiosk.winId()))


def test_focus_theft_in_a_loop_is_summarised_with_its_count(kiosk: QWidget) -> None:
    events: list[Event] = []
    guard = FocusGuard(Settings.defaults(), kiosk, ThievingPlatform(kiosk), poll_ms=10_000)
    guard.start(events.append)
    for _ in range(200):
        guard.check()
    guard.stop()
    lost = [e for e in events if e.type == "guards.focus_lost"]
    regained = [e for e in events if e.type == "guards.focus_regained"]
    assert guard.losses == 100
    assert len(lost) == 6, lost  # five one by one, then one summary
    assert len(regained) == 6
    # a summary stands for the ``suppressed`` repeats it holds
    assert sum(e.payload.get("suppressed", 1) for e in lost) == 100
    assert sum(e.payload.get("suppressed", 1) for e in regained) == 100
    assert lost[0].payload["window"]["title"] == "thief"
