"""Remote-session verdict from recorded facts, and on this machine."""

from __future__ import annotations

import pytest

from lockdown.guards import remote
from lockdown.guards.appslist import AppList, ProcessFacts
from lockdown.platform.sysinfo_linux import SessionFacts


@pytest.mark.parametrize(
    ("display", "forwarded"),
    [
        (":0", False),
        (":1.0", False),
        ("unix:0", False),
        ("localhost:10.0", True),
        ("localhost:0", False),
        ("10.0.0.5:0", True),
        ("", False),
    ],
)
def test_forwarded_displays_are_recognised(display: str, forwarded: bool) -> None:
    assert remote.display_is_forwarded(display) is forwarded


def test_a_local_session_is_not_remote() -> None:
    verdict = remote.judge({"DISPLAY": ":0"}, SessionFacts(remote=False, session_type="x11"))
    assert not verdict.remote and verdict.reasons == ()


def test_each_kind_of_remote_evidence_is_a_reason() -> None:
    verdict = remote.judge(
        {"DISPLAY": "localhost:10.0", "SSH_CONNECTION": "10.0.0.9 5555 10.0.0.5 22"},
        SessionFacts(remote=True, remote_host="10.0.0.9"),
        servers=["x11vnc"],
        windows_flags={"SM_REMOTESESSION": True, "SM_REMOTECONTROL": False},
    )
    assert [r.signal for r in verdict.reasons] == [
        "logind_remote",
        "ssh",
        "x_forwarding",
        "remote_server",
        "sm_remotesession",
    ]
    assert verdict.as_dict()["remote_session"] is True


def test_absent_logind_is_a_note() -> None:
    verdict = remote.judge({}, SessionFacts(note="loginctl not available (no systemd-logind)"))
    assert not verdict.remote and verdict.notes == ("loginctl not available (no systemd-logind)",)


def test_remote_desktop_servers_come_from_the_data_file() -> None:
    m = AppList.load(os_name="linux").matcher()
    for name in ("x11vnc", "xrdp", "krfb", "gnome-remote-desktop-daemon", "vino-server"):
        assert m.remote_server(ProcessFacts(pid=9, exe=f"/usr/bin/{name}")) == name


def test_this_session_is_judged_without_crashing() -> None:
    verdict = remote.detect(os_name="linux")
    assert isinstance(verdict.remote, bool)
    assert verdict.remote == bool(verdict.reasons)
