"""``lockdown session``'s check of the display it was given (a fresh Xvfb of the test's):
no client but ours, or refused; under the development switch a client found at start is
left to the client watch, which journals and disconnects it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil
import pytest

from lockdown.events import Event
from lockdown.guards.display_isolation import (
    Allowed,
    DisplayChoice,
    DisplayIsolationOperation,
    SessionDisplayNotEmpty,
    session_display,
)
from lockdown.lifecycle.base import Outcome
from tests.support.processes import Detached, alive
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11]

#: A client outside our process tree: writes READY once its window is up, GONE when the
#: server closes its connection.
SITTER = """
import sys, time
from pathlib import Path
from Xlib import display
status = Path(sys.argv[1])
d = display.Display()
d.screen().root.create_window(0, 0, 10, 10, 0, d.screen().root_depth).map()
d.sync()
status.write_text("READY")
try:
    for _ in range(600):
        d.get_input_focus()
        time.sleep(0.05)
except Exception:
    status.write_text("GONE")
"""


def _wait_said(status: Path, word: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not (status.exists() and status.read_text() == word):
        assert time.monotonic() < deadline, f"the client never said {word}"
        time.sleep(0.05)


@pytest.fixture
def sitter(fresh_xserver: Xvfb, detached: Detached, tmp_path: Path) -> tuple[int, Path]:
    """The detached client's pid and its status file, once its window is up."""
    status = tmp_path / "sitter-status"
    pid = detached.start(
        Path(sys.executable), "-c", SITTER, str(status), env=dict(fresh_xserver.env)
    )
    _wait_said(status, "READY")
    return pid, status


def test_an_empty_display_is_the_session_display(fresh_xserver: Xvfb) -> None:
    shown = session_display(fresh_xserver.display, Allowed(os.getpid(), False))
    assert shown.describe()["kind"] == "session"
    assert shown.foreign_at_start == []


def test_a_display_with_another_client_is_refused(
    fresh_xserver: Xvfb, sitter: tuple[int, Path]
) -> None:
    with pytest.raises(SessionDisplayNotEmpty) as refused:
        session_display(fresh_xserver.display, Allowed(os.getpid(), False))
    assert refused.value.exit_code == 2
    assert "\n" not in str(refused.value) and "1 other program(s)" in str(refused.value)
    assert alive(sitter[0])  # refused, not disconnected: it is the candidate's desktop
    # the control: the same display without it passes
    psutil.Process(sitter[0]).kill()
    deadline = time.monotonic() + 10
    while alive(sitter[0]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    shown = session_display(fresh_xserver.display, Allowed(os.getpid(), False))
    assert shown.foreign_at_start == []


def test_under_the_switch_a_client_at_start_is_journalled_and_disconnected(
    fresh_xserver: Xvfb, sitter: tuple[int, Path]
) -> None:
    pid, status = sitter
    switch = {"LOCKDOWN_DEV_SESSION_CLIENTS": "disconnect"}
    shown = session_display(fresh_xserver.display, Allowed(os.getpid(), False), environ=switch)
    assert [c["pid"] for c in shown.foreign_at_start] == [pid]
    events: list[Event] = []
    op = DisplayIsolationOperation(
        DisplayChoice("isolated", "", "preferred", shown), {}, events.append
    )
    assert op.perform() is Outcome.SUCCESS
    try:
        _wait_said(status, "GONE")
        deadline = time.monotonic() + 5
        while not any(e.type == "display.intruder" for e in events):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        op.revert()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["display.isolated", "session.dev_switch"]
    assert events[0].payload["kind"] == "session"
    caught = next(e for e in events if e.type == "display.intruder")
    assert caught.payload["pid"] == pid
    assert caught.payload["action"] == "disconnected"
