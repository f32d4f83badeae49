"""``xkill`` of the kiosk of a real `lockdown open` on Xvfb + openbox: the exam ends through
the revert path (journalled, XKB server keys put back, exit code 1); with Xlib's own
handler kept (the positive control) XKB stays changed until the next start undoes it."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lockdown.events import Event, read_records, verify
from lockdown.guards.restore import RestoreLog, undo_leftovers
from lockdown.platform.linux import X11Platform
from tests.end2end.test_open import _reap, config, journal_of, lockdown, wait_for_line
from tests.support.httpserver import LocalServer
from tests.support.xclients import private_xdotool
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.wm, pytest.mark.webengine, pytest.mark.slow]

__all__ = ["_reap"]  # the autouse fixture that kills what a failed test left running

ORG = 'guards.prohibited_apps = "allow"\n'


def _xkb_options(x: Xvfb) -> str:
    out = x.run("setxkbmap", "-query").stdout
    return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if "options" in ln), "")


@pytest.mark.parametrize("handler", ["ours", "xlib_default"])
def test_xkill_of_the_kiosk_ends_the_exam_through_the_revert_path(
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    record_property: Any,
    handler: str,
) -> None:
    x = fresh_xserver
    x.start_wm()
    http_server.page("/", "<p>exam</p>")
    cfg = config(tmp_path, http_server.url("/"))
    env = {"LOCKDOWN_DEV_KEEP_XIO_EXIT": "1"} if handler == "xlib_default" else {}
    proc = lockdown(
        tmp_path,
        x,
        "open",
        str(cfg),
        instance=f"e2e-{uuid.uuid4().hex}",
        env_extra=env,
        org_extra=ORG,
    )
    lines = wait_for_line(proc, "Shared-display guard started", timeout=60)
    assert "srvrkeys:none" in _xkb_options(x)
    kiosk = x.run(private_xdotool(), "search", "--name", "^Lockdown$").stdout.split()[0]
    started = time.monotonic()
    x.run("xkill", "-id", kiosk)
    code = proc.wait(30)
    took = time.monotonic() - started
    assert code == 1
    path = journal_of(lines)
    records = read_records(path)
    types = [r["type"] for r in records]
    restore_dir = path.parents[2] / "state" / "restore"
    if handler == "xlib_default":
        # The positive control: Xlib's exit(1) leaves no end record and XKB changed…
        assert "session.dev_switch" in types
        assert "session.display_lost" not in types and "session.ended" not in types
        assert "srvrkeys:none" in _xkb_options(x)
        # …until the next start undoes what the run that died left.
        assert [r.kind for r in RestoreLog(restore_dir).pending()] == ["system_keys"]
        events: list[Event] = []
        platform = X11Platform(x.display)
        try:
            assert undo_leftovers(restore_dir, events.append, platform) == 1
        finally:
            platform.close()
        assert "srvrkeys:none" not in _xkb_options(x)
        assert [e.type for e in events] == ["guards.restore_undone"]
        return
    record_property("xkill_to_exit_s", round(took, 3))
    assert took < 10  # the revert includes stopping the watcher and closing the journal
    assert verify(path).records == len(records)
    lost = types.index("session.display_lost")
    assert records[lost]["payload"]["how"] == "xlib_io_error"
    assert types[lost + 1] == "kiosk.ended"
    assert records[lost + 1]["payload"]["reason"] == "display_lost"
    undone = next(r for r in records if r["type"] == "guards.restore_undone")
    assert undone["payload"] == {"kind": "system_keys", "pid": proc.pid, "own": True}
    started = [r["payload"]["guard"] for r in records if r["type"] == "guards.started"]
    assert "shared_display" in started
    # a kiosk shown as it must be journals no disturbance of its own
    assert "guards.kiosk_disturbed" not in types and "guards.window_above" not in types
    assert types[-2:] == ["session.ended", "journal.closed"]
    assert records[-2]["payload"]["reason"] == "display_lost"
    assert "srvrkeys:none" not in _xkb_options(x)
    assert RestoreLog(restore_dir).pending() == []
