"""When the pre-checks let the page load before the system guards' step decides."""

from __future__ import annotations

import threading
from typing import Any

import psutil
import pytest

from lockdown.config.settings import Organisation, layer
from lockdown.guards.policy import PrecheckFindings
from lockdown.guards.prefetch import PrecheckPrefetch, Prechecks
from lockdown.guards.remote import RemoteVerdict
from lockdown.guards.vm import THRESHOLD, VmVerdict
from lockdown.guards.vm import Reason as VmReason


def _prechecks(*, virtual: bool, remote: bool, running: bool) -> Prechecks:
    vm = VmVerdict(THRESHOLD if virtual else 0, ())
    session = RemoteVerdict((VmReason("rdp", 1, "x"),) if remote else ())  # type: ignore[arg-type]
    findings = PrecheckFindings(running=(object(),) if running else ())  # type: ignore[arg-type]
    return Prechecks(None, vm, session, findings, 0.0)  # type: ignore[arg-type]


def _settings(**policies: str) -> dict[str, Any]:
    base = {"vm": "deny", "remote": "deny", "apps": "ask"} | policies
    return {
        "guards.virtual_machine": base["vm"],
        "guards.remote_session": base["remote"],
        "guards.prohibited_apps": base["apps"],
    }


@pytest.mark.parametrize(
    ("found", "policies", "early"),
    [
        ({}, {}, True),
        ({"virtual": True}, {}, False),
        ({"virtual": True}, {"vm": "warn"}, True),
        ({"remote": True}, {}, False),
        ({"remote": True}, {"remote": "allow"}, True),
        ({"running": True}, {}, False),  # asked about: the page waits for the answer
        ({"running": True}, {"apps": "close"}, False),
        ({"running": True}, {"apps": "allow"}, True),
    ],
)
def test_the_page_loads_early_only_when_nothing_found_refuses_or_asks(
    found: dict[str, bool], policies: dict[str, str], early: bool
) -> None:
    flags = {"virtual": False, "remote": False, "running": False} | found
    assert _prechecks(**flags).let_start(_settings(**policies)) is early


def test_the_prechecks_walk_the_process_table_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The prohibited-apps, remote-control and virtual-machine checks share one snapshot."""
    walks: list[str] = []
    real_pids, real_iter = psutil.pids, psutil.process_iter

    def mine() -> bool:  # another test's thread left running may walk it too
        return threading.current_thread().name == "precheck-prefetch"

    def pids() -> list[int]:
        if mine():
            walks.append("pids")
        return real_pids()

    def process_iter(*args: Any, **kwargs: Any) -> Any:
        if mine():
            walks.append("process_iter")
        return real_iter(*args, **kwargs)

    monkeypatch.setattr(psutil, "pids", pids)
    monkeypatch.setattr(psutil, "process_iter", process_iter)
    found = PrecheckPrefetch(layer(Organisation(), {})).result()
    assert found is not None
    assert walks == ["pids"]
