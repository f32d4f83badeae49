"""DesktopGuardsOperation: starts the desktop guards in order, applies guards.unavailable, reverts."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.guards.desktop import (
    DesktopGuardsOperation,
    build_desktop_guards,
    desktop_guard_infos,
)
from lockdown.lifecycle.base import Outcome
from lockdown.platform.linux import X11Platform
from lockdown.texts import TEXTS

pytestmark = pytest.mark.x11


class BrokenGuard:
    """A guard whose backend is missing on this machine."""

    name = "broken"

    def info(self) -> GuardInfo:
        return GuardInfo(self.name, "nothing", Availability.FULL)

    def start(self, report: EventSink) -> None:
        raise GuardUnavailable("no permission to watch the screen")

    def stop(self) -> None:
        raise AssertionError("never started, never stopped")


def test_guards_start_in_order_are_journalled_and_stop_in_reverse(
    qtbot: QtBot, kiosk: QWidget, platform: X11Platform
) -> None:
    settings = layer(Organisation(), {})
    events: list[Event] = []
    op = DesktopGuardsOperation(
        settings, build_desktop_guards(settings, kiosk, platform), events.append
    )
    assert op.perform() is Outcome.SUCCESS
    started = [e.payload for e in events if e.type == "guards.started"]
    assert [p["guard"] for p in started] == [
        "displays",
        "keyboard",
        "injected_input",
        "clipboard",
        "drops",
        "screenshots",
        "screen_capture_watch",
        "focus",
        "shared_display",
    ]
    by_name = {p["guard"]: p for p in started}
    assert by_name["screenshots"]["availability"] == "partial"
    assert "cannot be hidden" in by_name["screenshots"]["reason"]
    assert op.revert() is Outcome.SUCCESS
    stopped = [e.payload["guard"] for e in events if e.type == "guards.stopped"]
    assert stopped == [
        "shared_display",
        "focus",
        "screen_capture_watch",
        "screenshots",
        "drops",
        "clipboard",
        "injected_input",
        "keyboard",
        "displays",
    ]
    assert op.revert() is Outcome.SUCCESS  # nothing left to stop


def test_refuse_policy_aborts_with_the_reason(kiosk: QWidget, platform: X11Platform) -> None:
    settings = layer(Organisation(), {})
    events: list[Event] = []
    guards = [*build_desktop_guards(settings, kiosk, platform)[:1], BrokenGuard()]
    op = DesktopGuardsOperation(settings, guards, events.append)  # type: ignore[arg-type]
    assert op.perform() is Outcome.ABORTED
    assert op.message == (
        "guards.unavailable",
        {"guard": "broken", "reason": "no permission to watch the screen"},
    )
    assert "{guard}" in TEXTS["guards.unavailable"]
    gap = next(e for e in events if e.type == "guards.unavailable")
    assert gap.payload["policy"] == "refuse"
    assert op.revert() is Outcome.SUCCESS


def test_continue_policy_journals_the_gap_and_goes_on(
    kiosk: QWidget, platform: X11Platform
) -> None:
    org = Organisation(values=flatten({"guards": {"unavailable": "continue"}}, origin="t"))
    settings = layer(org, {})
    events: list[Event] = []
    focus = next(g for g in build_desktop_guards(settings, kiosk, platform) if g.name == "focus")
    op = DesktopGuardsOperation(settings, [BrokenGuard(), focus], events.append)  # type: ignore[list-item]
    assert op.perform() is Outcome.SUCCESS
    assert [e.type for e in events][:2] == ["guards.unavailable", "guards.started"]
    assert events[0].payload["policy"] == "continue"
    assert op.revert() is Outcome.SUCCESS


def test_environment_infos_name_every_desktop_guard(qtbot: QtBot, platform: X11Platform) -> None:
    infos = desktop_guard_infos(layer(Organisation(), {}), platform)
    assert [i.name for i in infos] == [
        "displays",
        "keyboard",
        "injected_input",
        "clipboard",
        "drops",
        "screenshots",
        "screen_capture_watch",
        "focus",
        "shared_display",
    ]
    assert {i.name: i.availability for i in infos}["keyboard"] is Availability.FULL
