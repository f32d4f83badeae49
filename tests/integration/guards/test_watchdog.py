"""Suspension watchdog: ``kill -STOP``, a program started meanwhile, ``kill -CONT`` on a real
process running the system guards is journalled with the gap's length, and the process
watcher rescans; without the watchdog the stop leaves no trace (the positive control)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lockdown.events import Event
from lockdown.guards.watchdog import SuspendWatchdog
from tests.support.processes import Detached, renamed_copy

pytestmark = pytest.mark.slow

#: The system guards as the session starts them (journal only), in a process of its own;
#: every event as a JSON line on stdout.
CHILD = r"""
import json, sys
from lockdown.config.settings import Organisation, flatten, layer
from lockdown.guards.appslist import AppList
from lockdown.guards.policy import SystemGuardsOperation
settings = layer(Organisation(), flatten({"guards": {"virtual_machine": "allow",
    "remote_session": "allow", "prohibited_apps": "ask"}}, origin="test"))
def sink(event):
    print(json.dumps({"type": event.type, "payload": event.payload}, default=str), flush=True)
op = SystemGuardsOperation(settings, sink, apps=AppList.load(os_name="linux").restricted_to(["obs"]),
    tcc=lambda: (), prompt=lambda check, findings: True)
assert op.perform().value == "success"
if sys.argv[1] == "off":
    op.watchdog.stop()
print(json.dumps({"type": "ready"}), flush=True)
sys.stdin.readline()
op.revert()
"""


class Child:
    def __init__(self, watchdog: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, watchdog],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        )
        self.events: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self._lines.put(json.loads(line))

    def read_until(self, predicate: Any, timeout: float) -> dict[str, Any] | None:
        """Read events until one matches (returned) or ``timeout`` passes (None)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._lines.get(timeout=left)
            except queue.Empty:
                return None
            self.events.append(event)
            if predicate(event):
                return event
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            assert self.proc.stdin is not None
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reader.join(10)
        self.proc.communicate(timeout=10)


@pytest.fixture
def child() -> Iterator[Any]:
    made: list[Child] = []

    def make(watchdog: str) -> Child:
        c = Child(watchdog)
        made.append(c)
        assert c.read_until(lambda e: e["type"] == "ready", 30) is not None
        return c

    yield make
    for c in made:
        c.stop()


@pytest.mark.parametrize("watchdog", ["on", "off"])
def test_a_stopped_process_journals_the_gap_and_rescans(
    child: Any, detached: Detached, tmp_path: Path, watchdog: str
) -> None:
    guards = child(watchdog)
    program = renamed_copy(tmp_path, "obs")
    os.kill(guards.proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:
        pid = detached.start(program, "30")  # the candidate's program, while we stand still
        time.sleep(1.5)
    finally:
        os.kill(guards.proc.pid, signal.SIGCONT)
    gap = time.monotonic() - stopped
    resumed = time.monotonic()
    suspended = guards.read_until(lambda e: e["type"] == "guards.suspended", 1.5)
    if watchdog == "off":  # the positive control: the stop leaves no trace
        assert suspended is None
        assert not any(e["type"] == "guards.processes_rescanned" for e in guards.events)
        return
    assert suspended is not None
    assert time.monotonic() - resumed < 1.0
    assert gap - 0.6 <= suspended["payload"]["seconds"] <= gap + 0.6
    rescanned = guards.read_until(lambda e: e["type"] == "guards.processes_rescanned", 5)
    assert rescanned is not None
    assert rescanned["payload"]["gap"] == suspended["payload"]["seconds"]
    found = guards.read_until(
        lambda e: e["type"] == "guards.prohibited_app" and e["payload"].get("pid") == pid, 5
    ) or next(
        (e for e in guards.events if e["type"] == "guards.prohibited_app"),
        None,
    )
    assert found is not None


def test_the_watchdog_sees_a_gap_in_its_clock_and_not_an_ordinary_tick() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 0.25
        if len(seen_ticks) == 3:
            now[0] += 4.0  # the process stood still here
        seen_ticks.append(now[0])
        return now[0]

    seen_ticks: list[float] = []
    events: list[Event] = []
    gaps: list[float] = []
    dog = SuspendWatchdog(gaps.append, tick=0.01, gap=1.0, clock=clock)
    dog.start(events.append)
    deadline = time.monotonic() + 5
    while not gaps and time.monotonic() < deadline:
        time.sleep(0.01)
    dog.stop()
    dog.stop()
    assert gaps == [pytest.approx(4.25, abs=0.01)]
    assert [e.type for e in events] == ["guards.suspended"]
