"""Restore records survive kill -9 and the next start undoes the change (real XKB on an Xvfb)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown.events import Event
from lockdown.guards.restore import RestoreLog, undo_leftovers
from lockdown.platform.linux import X11Platform
from tests.support.xserver import Xvfb

CHILD = r"""
import sys, time
from pathlib import Path
from lockdown.guards.restore import RestoreLog
from lockdown.platform.linux import X11Platform
platform = X11Platform()
restore = RestoreLog(Path(sys.argv[1]))
state = platform.system_keys_state()
restore.record("system_keys", state)   # BEFORE the change
platform.disable_system_keys()
print("changed", flush=True)
time.sleep(60)
"""


def _options(x: Xvfb) -> str:
    out = x.run("setxkbmap", "-query").stdout
    return next(
        (ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("options")), ""
    )


@pytest.mark.x11
def test_a_change_left_by_a_killed_run_is_undone_at_the_next_start(
    fresh_xserver: Xvfb, tmp_path: Path
) -> None:
    fresh_xserver.run("setxkbmap", "-option", "grp:alt_shift_toggle")
    restore_dir = tmp_path / "restore"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(restore_dir)],
        env={**os.environ, **fresh_xserver.env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    try:
        lines = iter(proc.stdout.readline, "")
        assert any(line.strip() == "changed" for line in lines)  # python-xlib may chat first
        assert "srvrkeys:none" in _options(fresh_xserver)
        # While the run is alive its record is not touched.
        alive = X11Platform(fresh_xserver.display)
        assert undo_leftovers(restore_dir, lambda e: None, alive) == 0
        alive.close()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert "srvrkeys:none" in _options(fresh_xserver)  # the crash left the change behind
    events: list[Event] = []
    platform = X11Platform(fresh_xserver.display)
    assert undo_leftovers(restore_dir, events.append, platform) == 1
    platform.close()
    assert _options(fresh_xserver) == "grp:alt_shift_toggle"
    assert events == [Event("guards.restore_undone", {"kind": "system_keys", "pid": proc.pid})]
    assert RestoreLog(restore_dir).pending() == []
    assert undo_leftovers(restore_dir, events.append) == 0


def test_record_is_durable_before_the_change_and_done_removes_it(tmp_path: Path) -> None:
    log = RestoreLog(tmp_path / "r")
    record = log.record("system_keys", {"xkb_options": ["a"]})
    assert record.path.exists()
    assert [r.kind for r in log.pending()] == ["system_keys"]
    log.done(record)
    log.done(record)
    assert log.pending() == []


def test_an_unknown_kind_is_reported_and_kept(tmp_path: Path) -> None:
    directory = tmp_path / "r"
    directory.mkdir()
    (directory / "0000000000001-abcdef12-mystery.restore.json").write_text(
        '{"kind": "mystery", "pid": 999999999, "started": 1.0, "data": {}}'
    )
    (directory / "0000000000002-abcdef12-torn.restore.json").write_text('{"kind": ')
    events: list[Event] = []
    from lockdown.platform.null import NullPlatform

    assert undo_leftovers(directory, events.append, NullPlatform()) == 0
    assert events[0].type == "guards.restore_failed"
    assert events[0].payload["kind"] == "mystery"
    assert len(list(directory.iterdir())) == 2


def test_a_leftover_terminated_process_is_journalled_with_its_data(tmp_path: Path) -> None:
    directory = tmp_path / "r"
    directory.mkdir()
    data = {"pid": 4242, "name": "obs", "exe": "/usr/bin/obs", "reason": "started"}
    body = {"kind": "process_terminated", "pid": 999999999, "started": 1.0, "data": data}
    (directory / "0000000000001-abcdef12-process_terminated.restore.json").write_text(
        json.dumps(body)
    )
    events: list[Event] = []
    from lockdown.platform.null import NullPlatform

    assert undo_leftovers(directory, events.append, NullPlatform()) == 1
    assert events == [
        Event(
            "guards.restore_undone",
            {"kind": "process_terminated", "pid": 999999999, "data": data},
        )
    ]
    assert list(directory.iterdir()) == []
