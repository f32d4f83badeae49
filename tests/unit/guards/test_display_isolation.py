"""Choosing the display mode as the organisation allows, and who may stay on it (the
helper start is faked here; the real one is in the integration and end-to-end tests)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from lockdown.errors import UserError
from lockdown.events import Event
from lockdown.guards import display_isolation
from lockdown.guards.display_isolation import (
    Allowed,
    DisplayChoice,
    DisplayIsolationOperation,
    IsolationRequired,
    check_exam,
    choose_display,
)
from lockdown.lifecycle.base import Outcome
from lockdown.platform.exam_display import ExamDisplay, ExamDisplayUnavailable, HelperCommand
from lockdown.platform.xres import KillOutcome, XClient

DEV = {"LOCKDOWN_DEV_DISPLAY_HELPER": "1"}


def _refuse(command: HelperCommand) -> ExamDisplay:
    raise ExamDisplayUnavailable("the exam's X server did not start (no screens found)")


def _fake_display(command: HelperCommand) -> ExamDisplay:
    helper = subprocess.Popen(["true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    helper.wait()
    return ExamDisplay(
        display=":42",
        vt=2,
        previous_vt=1,
        vt_kind="fake",
        server_pid=4242,
        server="Xorg",
        restored=[],
        helper=helper,
        how=command.how,
        authority_fd=os.open("/dev/null", os.O_RDONLY),
    )


@pytest.fixture(autouse=True)
def _root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)


def test_off_never_starts_a_server() -> None:
    def never(command: HelperCommand) -> ExamDisplay:
        raise AssertionError("started")

    choice = choose_display("off", environ=dict(DEV), start=never)
    assert (choice.mode, choice.display) == ("shared", None)
    assert choice.record() == (
        "display.shared",
        {"reason": choice.reason, "policy": "off"},
    )


def test_preferred_falls_back_with_the_reason() -> None:
    choice = choose_display("preferred", environ=dict(DEV), start=_refuse)
    assert choice.mode == "shared" and "did not start" in choice.reason


def test_required_refuses_with_one_line_and_exit_1() -> None:
    with pytest.raises(IsolationRequired) as caught:
        choose_display("required", environ=dict(DEV), start=_refuse)
    assert isinstance(caught.value, UserError) and caught.value.exit_code == 1
    assert "\n" not in str(caught.value) and "no screens found" in str(caught.value)


def test_isolated_points_this_process_at_the_exam_display() -> None:
    env = {**DEV, "WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}
    choice = choose_display("required", environ=env, start=_fake_display)
    assert choice.display is not None
    try:
        assert env["DISPLAY"] == ":42" and "WAYLAND_DISPLAY" not in env
        assert env["XAUTHORITY"] == f"/proc/self/fd/{choice.display.authority_fd}"
        assert env["QT_QPA_PLATFORM"] == "xcb"
        kind, payload = choice.record()
        assert kind == "display.isolated"
        assert (
            payload["vt"] == 2 and payload["previous_vt"] == 1 and payload["policy"] == "required"
        )
    finally:
        choice.display.stop(timeout=1)


def test_an_exam_that_requires_isolation_is_refused_on_a_shared_display() -> None:
    shared = DisplayChoice("shared", "no helper", "preferred")
    with pytest.raises(IsolationRequired):
        check_exam(shared, {"guards.display_isolation": "required"})
    check_exam(shared, {"guards.display_isolation": "preferred"})


def test_the_operation_journals_the_shared_mode() -> None:
    events: list[Event] = []
    op = DisplayIsolationOperation(
        DisplayChoice("shared", "no helper", "preferred"), {}, events.append
    )
    assert op.perform() is Outcome.SUCCESS and op.revert() is Outcome.SUCCESS
    assert [(e.type, dict(e.payload)) for e in events] == [
        ("display.shared", {"reason": "no helper", "policy": "preferred"})
    ]


def _client(pid: int | None, executable: str = "/usr/bin/xterm", base: int = 0x400000) -> XClient:
    return XClient(base=base, mask=0x1FFFFF, pid=pid, executable=executable)


def test_our_process_tree_and_the_server_may_stay() -> None:
    allowed = Allowed(our_pid=os.getpid(), assistive=False)
    assert allowed.why(_client(os.getpid())) == "ours"
    assert allowed.why(_client(None, base=0)) == "server"
    child = subprocess.Popen(["sleep", "5"])
    try:
        assert allowed.why(_client(child.pid)) == "ours"
    finally:
        child.kill()
        child.wait()
    assert allowed.why(_client(1)) is None
    assert allowed.why(_client(None)) is None


def test_assistive_clients_stay_only_when_the_organisation_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    orca = _client(1, executable="/usr/bin/orca")
    monkeypatch.setattr(display_isolation, "_root_owned_system_file", lambda path: True)
    assert Allowed(our_pid=os.getpid(), assistive=True).why(orca) == "assistive: orca"
    assert Allowed(our_pid=os.getpid(), assistive=False).why(orca) is None
    # a renamed copy outside the system folders is not the screen reader
    monkeypatch.setattr(
        display_isolation, "_root_owned_system_file", lambda path: path.startswith("/usr/")
    )
    fake = _client(1, executable="/home/candidate/orca")
    assert Allowed(our_pid=os.getpid(), assistive=True).why(fake) is None


def test_the_assistive_list_is_documented(repo_root: Any) -> None:
    doc = (repo_root / "docs" / "display-isolation.md").read_text(encoding="utf-8")
    for name in display_isolation.ASSISTIVE_CLIENTS:
        assert f"`{name}`" in doc


def _environment(mode: str) -> dict[str, Any]:
    return {
        "virtual_machine": {"virtual_machine": False},
        "remote_session": {"remote_session": False},
        "screens": {"available": True, "count": 1},
        "display_isolation": {"mode": mode, "reason": "no display helper installed"},
    }


@pytest.mark.parametrize("policy", ["required", "preferred", "off"])
def test_lockdown_environment_says_whether_the_policy_needs_a_display_of_its_own(
    policy: str,
) -> None:
    from lockdown.guards.environment import verdict

    settings = {
        "guards.virtual_machine": "deny",
        "guards.remote_session": "deny",
        "guards.max_displays": 1,
        "guards.display_isolation": policy,
    }
    shared = verdict(_environment("shared"), settings)
    assert shared["exam_can_start"] is (policy != "required")
    if policy == "required":
        assert shared["refusals"] == [
            "no display of its own (no display helper installed; "
            "guards.display_isolation = required)"
        ]
    assert verdict(_environment("isolated"), settings)["exam_can_start"]


def test_lockdown_environment_reports_the_mode_available_here() -> None:
    from lockdown.platform.exam_display import availability

    found = availability({})
    assert found["mode"] == "shared"
    assert found["reason"] == "a development build starts the display helper only in tests"
    ready = availability(DEV)  # as root (the autouse fixture), Xorg installed or not
    assert ready["mode"] in ("isolated", "shared") and ready["reason"]
    assert set(ready) >= {"helper", "xorg", "video_driver", "xsession", "wayland"}


class _FakeXRes:
    """The listing the watch reads (the real one is in the end-to-end tests)."""

    def __init__(self) -> None:
        self.listed: list[XClient] = []
        self.killed: list[int] = []
        self.outcome = KillOutcome.DISCONNECTED

    def clients(self) -> tuple[XClient, ...]:
        return tuple(self.listed)

    def kill(self, base: int) -> KillOutcome:
        self.killed.append(base)
        return self.outcome


def _watch(
    monkeypatch: pytest.MonkeyPatch, alive: set[int]
) -> tuple[display_isolation.ClientWatch, list[Event], list[float], list[int]]:
    """A watch over a fake listing; ``alive`` is which pids run; the signals it sent."""
    clock = [100.0]
    signalled: list[int] = []
    monkeypatch.setattr(display_isolation.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(display_isolation, "descends_from", lambda pid, ours: False)
    monkeypatch.setattr(display_isolation, "_alive", lambda pid: pid in alive)
    monkeypatch.setattr(display_isolation, "_start_time", lambda pid: 7 if pid in alive else None)

    def end(pid: int) -> bool:
        signalled.append(pid)
        alive.discard(pid)
        return True

    monkeypatch.setattr(display_isolation, "_end_process", end)
    events: list[Event] = []
    watch = display_isolation.ClientWatch(":9", Allowed(os.getpid(), False), events.append)
    return watch, events, clock, signalled


def test_the_watch_lets_a_leaving_connection_go_and_takes_a_reconnection_anew(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch, events, clock, _ = _watch(monkeypatch, alive={4242})
    xres = _FakeXRes()
    # a program that has just ended is still listed for a moment: not an intruder
    xres.listed = [_client(4100, base=0x600000), _client(None, base=0x800000)]
    watch._scan(xres)  # type: ignore[arg-type]
    clock[0] += 0.5
    watch._scan(xres)  # type: ignore[arg-type]
    assert (events, xres.killed) == ([], [])
    # still there after the grace (a descriptor handed on, a pid we cannot see): taken
    clock[0] += display_isolation.LEAVING_GRACE_S
    watch._scan(xres)  # type: ignore[arg-type]
    assert sorted(xres.killed) == [0x600000, 0x800000]
    assert len(events) == 2
    # a live intruder gets the freed base at once, and reconnects at once after each
    # disconnection: each connection is disconnected and journalled
    for _ in range(2):
        xres.listed = [_client(4242, base=0x600000)]
        watch._scan(xres)  # type: ignore[arg-type]
        assert xres.killed[-1] == 0x600000
        assert (events[-1].payload["pid"], events[-1].payload["action"]) == (4242, "disconnected")
    assert len(events) == 4


def test_a_client_without_resources_has_its_process_ended_once_and_is_watched_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch, events, clock, signalled = _watch(monkeypatch, alive={4242})
    xres = _FakeXRes()
    xres.outcome = KillOutcome.NO_RESOURCE
    xres.listed = [_client(4242, base=0xA00000)]
    watch._scan(xres)  # type: ignore[arg-type]
    assert signalled == [4242]
    assert [e.payload["action"] for e in events] == ["terminated"]
    watch._scan(xres)  # type: ignore[arg-type]
    assert len(xres.killed) == 1  # given the grace to go
    # its connection lives on in a child it forked: tried at every grace, journalled once
    for _ in range(3):
        clock[0] += display_isolation.LEAVING_GRACE_S
        watch._scan(xres)  # type: ignore[arg-type]
    assert len(xres.killed) == 4
    assert signalled == [4242]  # the pid is not signalled again: it may be someone else's
    assert [e.payload["action"] for e in events] == ["terminated", "not_ended"]


def test_a_reused_pid_is_not_signalled(monkeypatch: pytest.MonkeyPatch) -> None:
    watch, events, _, signalled = _watch(monkeypatch, alive={4242})
    xres = _FakeXRes()
    xres.outcome = KillOutcome.NO_RESOURCE
    xres.listed = [_client(4242, base=0xA00000)]
    watch._started[(0xA00000, 4242)] = 3  # first seen as another process
    watch._scan(xres)  # type: ignore[arg-type]
    assert signalled == []
    assert [e.payload["action"] for e in events] == ["not_ended"]
