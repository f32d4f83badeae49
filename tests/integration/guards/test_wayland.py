"""A shared Wayland desktop told honestly: XWayland is recognised by the X server's own
extensions (a fake server here: Xvfb is no XWayland), never by the candidate's
environment; the journal, the candidate's notice, ``lockdown environment`` and the
organisation's ``guards.wayland = refuse`` say what cannot work."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from lockdown.config.settings import Organisation, Settings, layer
from lockdown.events import Event
from lockdown.guards.base import Availability
from lockdown.guards.desktop import DesktopGuardsOperation, desktop_guard_infos
from lockdown.guards.environment import report
from lockdown.guards.focus import FocusGuard
from lockdown.guards.wayland import LIMITED, NOTICE_ID, REFUSED_ID
from lockdown.lifecycle.base import Outcome
from lockdown.platform.linux import X11Platform
from lockdown.platform.x11_server import DisplayServer, display_server
from lockdown.texts import TEXTS

pytestmark = pytest.mark.x11

XWAYLAND = DisplayServer(
    "The X.Org Foundation", ("BIG-REQUESTS", "Composite", "XInputExtension", "XWAYLAND")
)


def _settings(policy: str) -> Settings:
    return layer(Organisation(values={"guards.wayland": policy}), {})


def test_the_real_x_server_is_told_apart_whatever_the_environment_says(
    xserver: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    server = display_server()
    assert server is not None and not server.xwayland and server.kind == "X11"
    assert XWAYLAND.xwayland and XWAYLAND.kind == "XWayland"


def test_under_xwayland_the_exam_goes_on_says_so_and_journals_the_gaps(
    kiosk: QWidget, platform: X11Platform
) -> None:
    settings = _settings("warn")
    events: list[Event] = []
    op = DesktopGuardsOperation(
        settings, [FocusGuard(settings, kiosk, platform)], events.append, lambda: XWAYLAND
    )
    assert op.perform() is Outcome.SUCCESS
    try:
        session = next(e for e in events if e.type == "guards.wayland_session")
        assert session.payload["server"] == "XWayland"
        assert {x["guard"] for x in session.payload["limited"]} == set(LIMITED)
        assert op.warnings == [NOTICE_ID] and NOTICE_ID in TEXTS
    finally:
        op.revert()


def test_an_organisation_that_requires_isolation_refuses_a_shared_wayland_desktop(
    kiosk: QWidget, platform: X11Platform
) -> None:
    settings = _settings("refuse")
    events: list[Event] = []
    op = DesktopGuardsOperation(
        settings, [FocusGuard(settings, kiosk, platform)], events.append, lambda: XWAYLAND
    )
    assert op.perform() is Outcome.ABORTED
    assert op.message == (REFUSED_ID, {}) and REFUSED_ID in TEXTS
    assert [e.type for e in events] == ["guards.wayland_session", "guards.refused"]
    assert op.revert() is Outcome.SUCCESS  # no guard started


def test_on_a_plain_x_server_nothing_is_said(kiosk: QWidget, platform: X11Platform) -> None:
    settings = _settings("refuse")
    events: list[Event] = []
    op = DesktopGuardsOperation(
        settings, [FocusGuard(settings, kiosk, platform)], events.append, display_server
    )
    assert op.perform() is Outcome.SUCCESS
    op.revert()
    assert op.warnings == [] and not [e for e in events if "wayland" in e.type]


def test_environment_marks_the_limited_guards_and_the_refusal(
    qtbot: QtBot, platform: X11Platform
) -> None:
    infos = {i.name: i for i in desktop_guard_infos(_settings("warn"), platform, lambda: XWAYLAND)}
    assert infos["keyboard"].availability is Availability.PARTIAL
    assert infos["keyboard"].reason.startswith("XWayland: ")
    assert infos["clipboard"].availability is Availability.FULL
    data = report(_settings("refuse"), None, server=lambda: XWAYLAND)
    assert data["display_server"]["xwayland"] is True
    assert any("Wayland" in r for r in data["policy"]["refusals"])
    shown = {g["name"]: g["availability"] for g in data["guards"]}
    assert shown["shared_display"] == "partial"
