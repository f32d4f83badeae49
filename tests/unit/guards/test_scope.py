"""Whose processes the prohibited-app guard may touch: the logind session reader and the scope."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from lockdown import build
from lockdown.guards.appslist import ProcessFacts
from lockdown.guards.processes import CandidateScope
from lockdown.platform.proc_linux import EnvironmentSessions, LogindSessions


def _proc(root: Path, pid: int, cgroup: str) -> None:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "cgroup").write_text(cgroup)


@pytest.mark.parametrize(
    ("cgroup", "session"),
    [
        ("0::/user.slice/user-1000.slice/session-2.scope\n", "2"),
        ("12:pids:/\n1:name=systemd:/user.slice/user-1000.slice/session-c7.scope\n", "c7"),
        ("0::/user.slice/user-1000.slice/session-3.scope/app/inner\n", "3"),
        # a user service of the same user: in no session
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/obs.scope\n", None),
        ("0::/system.slice/sshd.service\n", None),
        ("0::/\n", None),  # no logind (this machine)
    ],
)
def test_the_session_is_read_from_the_logind_scope_cgroup(
    tmp_path: Path, cgroup: str, session: str | None
) -> None:
    _proc(tmp_path, 42, cgroup)
    assert LogindSessions(str(tmp_path)).session_of(42) == session
    assert LogindSessions(str(tmp_path)).session_of(43) is None  # gone
    owner = LogindSessions(str(tmp_path)).owner_of(42)
    assert owner == (1000 if session is not None else None)  # the session's user


class Sessions:
    def __init__(self, table: dict[int, str | None]) -> None:
        self.table = table

    def session_of(self, pid: int) -> str | None:
        return self.table.get(pid)


def test_only_our_user_and_our_session_are_in_scope() -> None:
    scope = CandidateScope(1000, Sessions({1: "2", 2: "5", 3: None}), "2")
    assert scope.outside(ProcessFacts(pid=1, uid=1000)) == ""
    assert scope.outside(ProcessFacts(pid=2, uid=1000)) == "it runs in another login session (5)"
    assert scope.outside(ProcessFacts(pid=3, uid=1000)) == ""  # a user service: the candidate's
    assert scope.outside(ProcessFacts(pid=1, uid=0)) == "it runs as another user (uid 0)"
    assert scope.outside(ProcessFacts(pid=1, uid=-1)) == "its owner cannot be read"


def test_without_a_session_of_our_own_sessions_are_not_compared() -> None:
    scope = CandidateScope(1000, Sessions({2: "5"}), None)
    assert scope.outside(ProcessFacts(pid=2, uid=1000)) == ""


def test_inside_a_logind_session_the_candidate_is_the_sessions_user(tmp_path: Path) -> None:
    # Lockdown started as root by sudo in the candidate's session closes the candidate's
    # apps (uid 1000), not root's
    _proc(tmp_path, os.getpid(), "0::/user.slice/user-1000.slice/session-4.scope\n")
    scope = CandidateScope.current(LogindSessions(str(tmp_path)))
    assert (scope.uid, scope.session, scope.origin) == (1000, "4", "logind")


def test_the_current_scope_is_this_process_user() -> None:
    scope = CandidateScope.current(Sessions({}))
    assert scope.uid == os.getuid()
    assert scope.session is None


@pytest.fixture
def fresh_build() -> Iterator[None]:
    build.current.cache_clear()
    yield
    build.current.cache_clear()


def test_the_development_switch_names_our_session_and_says_so(
    monkeypatch: pytest.MonkeyPatch, fresh_build: None
) -> None:
    monkeypatch.setenv("LOCKDOWN_DEV_PROCESS_SESSION", "run-x")
    monkeypatch.delenv("LOCKDOWN_AS_INSTALLED", raising=False)
    scope = CandidateScope.current()
    assert isinstance(scope.sessions, EnvironmentSessions)
    assert scope.session == "run-x"
    assert scope.as_payload()["sessions"] == "development switch LOCKDOWN_DEV_PROCESS_SESSION"
    ours = subprocess.Popen(["sleep", "5"], env={"LOCKDOWN_DEV_PROCESS_SESSION": "run-x"})
    theirs = subprocess.Popen(["sleep", "5"], env={"LOCKDOWN_DEV_PROCESS_SESSION": "run-y"})
    try:
        assert scope.outside(ProcessFacts(pid=ours.pid, uid=os.getuid())) == ""
        assert scope.outside(ProcessFacts(pid=theirs.pid, uid=os.getuid())) == (
            "it runs in another login session (run-y)"
        )
    finally:
        for p in (ours, theirs):
            p.kill()
            p.wait()


def test_an_installed_build_ignores_the_development_switch(
    monkeypatch: pytest.MonkeyPatch, fresh_build: None
) -> None:
    monkeypatch.setenv("LOCKDOWN_DEV_PROCESS_SESSION", "run-x")
    monkeypatch.setenv("LOCKDOWN_AS_INSTALLED", "1")
    scope = CandidateScope.current()
    assert isinstance(scope.sessions, LogindSessions)
    assert scope.as_payload()["sessions"] in {"logind", "no login session"}
