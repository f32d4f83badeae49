"""The process watcher touches only the candidate's processes: our user, our login session.

A copy of a listed app run as another user (a test user made with ``useradd`` for the
module, removed after) or in another login session (the fake logind of
:mod:`tests.support.processes`) is reported (``action: report``) and still running after
the grace period. The positive controls run the same attack with the scope switched off
(any user, any session): the same process is terminated.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lockdown.guards.appslist import AppList
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_DETECTED,
    CandidateScope,
    ProcessWatcherGuard,
    scan_running,
)
from tests.support.processes import (
    RUN_RECORDER,
    SESSION_VARIABLE,
    TEST_SCOPE,
    TEST_SESSION,
    Detached,
    Recorder,
    alive,
    fake_logind,
)

#: A prohibited name of this run's own (an exam's extra): no other run's guard on this
#: machine knows it, so nothing but this module's watchers can close these copies.
RECORDER = RUN_RECORDER
APPS = AppList.load(os_name="linux").restricted_to([]).extended([RECORDER])
GRACE = 0.5


@pytest.fixture(scope="module")
def other_user() -> Iterator[tuple[int, int]]:
    """A throw-away local user (uid, gid), deleted with its processes after the module."""
    if os.geteuid() != 0:
        pytest.fail("creating a test user needs root (the test machines run as root)")
    name = f"ldt{uuid.uuid4().hex[:8]}"
    subprocess.run(
        ["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        check=True,
        capture_output=True,
    )
    try:
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run(["pkill", "-KILL", "-u", name], check=False, capture_output=True)
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.fixture
def shared_copy() -> Iterator[Path]:
    """A copy of /bin/sleep named :data:`RECORDER` that any user can run."""
    folder = Path(tempfile.mkdtemp(prefix="lockdown-scope-"))
    try:
        os.chmod(folder, 0o755)
        program = folder / RECORDER
        shutil.copy2("/bin/sleep", program)
        os.chmod(program, 0o755)
        yield program
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def watching(scope: CandidateScope) -> Iterator[Recorder]:
    guard = ProcessWatcherGuard(APPS, terminate=True, grace=GRACE, rate_interval=0.0, scope=scope)
    journal = Recorder()
    guard.start(journal)
    try:
        yield journal
    finally:
        guard.stop()


def _still_running_after_the_grace(pid: int) -> bool:
    time.sleep(GRACE + 0.5)
    return alive(pid)


#: The protection off for the positive controls: any user, still only this run's session
#: (so the control never reaches another test run's processes).
ANY_USER = CandidateScope(None, fake_logind(), TEST_SESSION)
#: Any session, still only our user.
ANY_SESSION = CandidateScope(os.getuid(), None, None)


@pytest.mark.parametrize("scope", [TEST_SCOPE, ANY_USER], ids=["scoped", "positive-control"])
def test_another_users_prohibited_app_is_reported_and_left_running(
    other_user: tuple[int, int], shared_copy: Path, detached: Detached, scope: CandidateScope
) -> None:
    uid, _ = other_user
    with watching(scope) as journal:
        pid = detached.start(shared_copy, "30", user=other_user)
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert detected.payload["uid"] == uid
        if scope is TEST_SCOPE:
            assert detected.payload["action"] == "report"
            assert detected.payload["scope"] == f"it runs as another user (uid {uid})"
            # counted apart from the candidate's own starts of the same app
            assert detected.payload["key"] == f"extra:{RECORDER} elsewhere"
            assert _still_running_after_the_grace(pid), "another user's process was touched"
            assert not journal.of(EVENT_CLOSED, pid)
        else:
            assert detected.payload["action"] == "terminate"
            assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"
            assert not alive(pid)


def test_another_users_app_is_not_in_the_candidates_precheck(
    other_user: tuple[int, int], shared_copy: Path, detached: Detached
) -> None:
    pid = detached.start(shared_copy, "30", user=other_user)
    elsewhere: list[tuple[object, str]] = []
    mine = scan_running(APPS.matcher(), scope=TEST_SCOPE, elsewhere=elsewhere)
    assert pid not in {m.process.pid for m in mine}
    reasons = {m.process.pid: why for m, why in elsewhere}  # type: ignore[attr-defined]
    assert reasons[pid].startswith("it runs as another user")
    assert alive(pid)


@pytest.mark.parametrize("scope", [TEST_SCOPE, ANY_SESSION], ids=["scoped", "positive-control"])
def test_a_prohibited_app_in_another_login_session_is_reported_and_left_running(
    shared_copy: Path, detached: Detached, scope: CandidateScope
) -> None:
    other = f"{TEST_SESSION}-other"
    with watching(scope) as journal:
        pid = detached.start(shared_copy, "30", env={SESSION_VARIABLE: other})
        detected = journal.wait_for(EVENT_DETECTED, pid)
        if scope is TEST_SCOPE:
            assert detected.payload["action"] == "report"
            assert detected.payload["scope"] == f"it runs in another login session ({other})"
            assert _still_running_after_the_grace(pid)
        else:
            assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"
            assert not alive(pid)
