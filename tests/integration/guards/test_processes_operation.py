"""SystemGuardsOperation: VM / remote policy, the prohibited-apps pre-check, the watcher."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from lockdown.config.settings import Organisation, Settings, flatten, layer
from lockdown.guards import remote, vm
from lockdown.guards.appslist import AppList
from lockdown.guards.base import GuardUnavailable
from lockdown.guards.policy import (
    PrecheckFindings,
    ProhibitedAppsPrecheck,
    SystemGuardsOperation,
)
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_TERMINATED_SUMMARY,
    REASON_BEFORE,
    REASON_DURING,
    ProcessWatcherGuard,
)
from lockdown.guards.restore import RestoreLog
from lockdown.lifecycle.base import Outcome
from lockdown.texts import TEXTS
from tests.support.processes import (
    RUN_APPS,
    RUN_RECORDER,
    TEST_SCOPE,
    Detached,
    Recorder,
    renamed_copy,
)

VM = vm.VmVerdict(90, (vm.Reason("cpu_hypervisor_flag", 50, "flag"), vm.Reason("dmi", 40, "x")))
NOT_REMOTE = remote.RemoteVerdict(())
REMOTE = remote.RemoteVerdict((vm.Reason("ssh", 100, "over SSH"),))


def settings(**guards: object) -> Settings:
    return layer(Organisation(), flatten({"guards": guards}, origin="test"))


def operation(s: Settings, journal: Recorder, **kw: object) -> SystemGuardsOperation:
    kw.setdefault("vm_detector", lambda: vm.VmVerdict(0, ()))
    kw.setdefault("remote_detector", lambda: NOT_REMOTE)
    kw.setdefault("scope", TEST_SCOPE)
    return SystemGuardsOperation(s, journal, apps=RUN_APPS, tcc=lambda: (), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "outcome", "message"),
    [
        ("allow", Outcome.SUCCESS, None),
        ("warn", Outcome.SUCCESS, "guards.vm.warned"),
        ("deny", Outcome.ABORTED, "guards.vm.denied"),
    ],
)
def test_vm_policy(policy: str, outcome: Outcome, message: str | None) -> None:
    journal = Recorder()
    op = operation(
        settings(virtual_machine=policy, prohibited_apps="allow"), journal, vm_detector=lambda: VM
    )
    assert op.perform() is outcome
    assert (op.message_id if outcome is Outcome.ABORTED else (op.warnings or [None])[0]) == message
    assert bool(journal.of("guards.virtual_machine")) == (policy != "allow")
    if message:
        assert message in TEXTS
    op.revert()


def test_remote_session_denied_aborts_with_a_message() -> None:
    journal = Recorder()
    op = operation(settings(prohibited_apps="allow"), journal, remote_detector=lambda: REMOTE)
    assert op.perform() is Outcome.ABORTED
    assert op.message_id == "guards.remote.denied"
    assert journal.of("guards.remote_session")[0].payload["reasons"][0]["signal"] == "ssh"


def test_running_apps_block_the_start_until_the_prompt_closes_them(
    tmp_path: Path, detached: Detached
) -> None:
    pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
    journal = Recorder()
    seen: list[PrecheckFindings] = []

    def prompt(check: ProhibitedAppsPrecheck, findings: PrecheckFindings) -> bool:
        seen.append(findings)
        assert check.can_close
        results = check.close([m for m in findings.running if m.process.pid == pid])
        assert [r.how for r in results] == ["terminated"]
        return check.scan().clear or not any(m.process.pid == pid for m in check.scan().running)

    op = operation(settings(prohibited_apps="close"), journal, prompt=prompt)
    try:
        assert op.perform() is Outcome.SUCCESS
        assert pid in {m.process.pid for m in seen[0].running}
        assert journal.of("guards.prohibited_app_closed", pid)
        assert op.watcher is not None and op.watcher.backend
    finally:
        assert op.revert() is Outcome.SUCCESS
    assert op.watcher is None


def test_a_cancelled_prompt_aborts_and_ask_policy_cannot_close(
    tmp_path: Path, detached: Detached
) -> None:
    pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
    journal = Recorder()

    def prompt(check: ProhibitedAppsPrecheck, findings: PrecheckFindings) -> bool:
        assert not check.can_close
        with pytest.raises(PermissionError):
            check.close(list(findings.running))
        return False

    op = operation(settings(prohibited_apps="ask"), journal, prompt=prompt)
    assert op.perform() is Outcome.ABORTED
    assert op.message_id == "guards.prohibited.not_closed"
    assert journal.of("guards.prohibited_apps_precheck")[0].payload["cancelled"] is True
    assert psutil.Process(pid).is_running()
    op.revert()


def test_the_watcher_runs_between_perform_and_revert(tmp_path: Path, detached: Detached) -> None:
    journal = Recorder()
    op = operation(settings(prohibited_apps="close"), journal)
    assert op.perform() is Outcome.SUCCESS
    try:
        pid = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
        journal.wait_for(EVENT_CLOSED, pid)
    finally:
        op.revert()


def test_terminations_before_and_during_the_exam_are_recorded_and_summarised(
    tmp_path: Path, detached: Detached
) -> None:
    restore = RestoreLog(tmp_path / "restore")
    before = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
    journal = Recorder()

    def prompt(check: ProhibitedAppsPrecheck, findings: PrecheckFindings) -> bool:
        mine = [m for m in findings.running if m.process.pid == before]
        assert [r.how for r in check.close(mine)] == ["terminated"]
        return True

    op = operation(settings(prohibited_apps="close"), journal, prompt=prompt, restore=restore)
    try:
        assert op.perform() is Outcome.SUCCESS
        during = detached.start(renamed_copy(tmp_path, RUN_RECORDER), "30")
        journal.wait_for(EVENT_CLOSED, during)
        recorded = {r.data["pid"]: r.data["reason"] for r in restore.pending()}
        assert recorded.get(before) == REASON_BEFORE
        assert recorded.get(during) == REASON_DURING
    finally:
        assert op.revert() is Outcome.SUCCESS
    (summary,) = journal.of(EVENT_TERMINATED_SUMMARY)
    terminated = {e["pid"]: e["reason"] for e in summary.payload["processes"]}
    assert terminated[before] == REASON_BEFORE
    assert terminated[during] == REASON_DURING
    assert summary.payload["count"] == len(terminated)
    assert restore.pending() == []


class _Broken(ProcessWatcherGuard):
    def start(self, report: object) -> None:  # type: ignore[override]
        raise GuardUnavailable("no permission to watch processes")


@pytest.mark.parametrize(
    ("choice", "outcome"), [("refuse", Outcome.ABORTED), ("continue", Outcome.SUCCESS)]
)
def test_a_watcher_that_cannot_start_meets_the_unavailable_policy(
    choice: str, outcome: Outcome
) -> None:
    journal = Recorder()
    op = operation(
        settings(prohibited_apps="close", unavailable=choice),
        journal,
        watcher_factory=lambda apps, terminate: _Broken(apps, terminate=terminate),
    )
    assert op.perform() is outcome
    event = journal.of("guards.unavailable")[0]
    assert event.payload["reason"] == "no permission to watch processes"
    assert (op.message_id == "guards.unavailable") == (choice == "refuse")
    op.revert()


def test_settings_extend_the_list_for_the_precheck(tmp_path: Path, detached: Detached) -> None:
    pid = detached.start(renamed_copy(tmp_path, "calc-helper"), "30")
    journal = Recorder()
    found: list[str] = []

    def prompt(check: ProhibitedAppsPrecheck, findings: PrecheckFindings) -> bool:
        found.extend(m.app.id for m in findings.running if m.process.pid == pid)
        return False

    op = SystemGuardsOperation(
        settings(prohibited_apps="close", prohibited_apps_extra=["calc-helper"]),
        journal,
        apps=AppList.load(os_name="linux").restricted_to(["obs"]),
        tcc=lambda: (),
        vm_detector=lambda: vm.VmVerdict(0, ()),
        remote_detector=lambda: NOT_REMOTE,
        prompt=prompt,
        scope=TEST_SCOPE,
    )
    assert op.perform() is Outcome.ABORTED
    assert found == ["extra:calc-helper"]
