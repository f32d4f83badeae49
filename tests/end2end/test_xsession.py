"""``lockdown session`` as a display manager runs it: the whole X session on a display of
its own (a fresh Xvfb of the test's, no window manager).

The organisation's start target opens the exam, and the session exits when the exam
ends (``display.isolated`` of kind ``session``); a client that connects during the exam
is journalled and disconnected. On a display that already has another client the session
is refused with one line, exit 2 — the positive control: the same display without that
client starts, its link window asks for the exam, typed into with the keyboard (a
mistyped link is asked for again).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from lockdown.events import read_records, verify
from tests.end2end.test_display_isolation import INTRUDER, _line, clients
from tests.end2end.test_open import _reap, config, journal_of, lockdown, wait_for_line
from tests.support.httpserver import LocalServer
from tests.support.xclients import find_window, private_xdotool
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]

__all__ = ["_reap", "clients"]

#: The exam page: asks the test every 200 ms whether to end (then goes to the quit URL).
PAGE = """<!doctype html><p>exam</p><script>
setInterval(() => fetch('/state').then(r => r.text()).then(t => {
  if (t.trim() === 'end') location.href = '/done';
}), 200);
</script>"""


def _client(
    clients: list[subprocess.Popen[str]], x: Xvfb, code: str = INTRUDER
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env={**x.env}, stdout=subprocess.PIPE, text=True
    )
    clients.append(proc)
    return proc


def _session(tmp_path: Path, x: Xvfb, org_extra: str = "") -> subprocess.Popen[str]:
    return lockdown(
        tmp_path,
        x,
        "session",
        instance=f"e2e-{uuid.uuid4().hex}",
        org_extra='guards.prohibited_apps = "allow"\n' + org_extra,
    )


def _records(journal: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in read_records(journal) if r["type"] == kind]


def test_session_opens_the_start_target_and_ends_with_the_exam(
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    clients: list[subprocess.Popen[str]],
    record_property: Any,
) -> None:
    http_server.page("/", PAGE)
    http_server.page("/state", "run")
    cfg = config(tmp_path, http_server.url("/"), http_server.url("/done"))
    started = time.monotonic()
    proc = _session(tmp_path, fresh_xserver, f'session.start_target = "{cfg}"\n')
    lines = wait_for_line(proc, "Watching the clients of the exam display", timeout=90)
    lines += wait_for_line(proc, "Page loaded", timeout=60)
    record_property("session_start_s", round(time.monotonic() - started, 2))
    journal = journal_of(lines)
    isolated = _records(journal, "display.isolated")
    assert isolated[0]["payload"]["kind"] == "session"
    assert isolated[0]["payload"]["display"] == fresh_xserver.display
    assert isolated[0]["payload"]["foreign_at_start"] == []
    assert _records(journal, "session.started")[0]["payload"]["isolation"] == "isolated"

    # a client that connects during the exam: journalled with pid and executable, and
    # disconnected (or, caught before it owns a resource, its process ended)
    launched = time.monotonic()
    intruder = _client(clients, fresh_xserver)
    said = _line(intruder, "GONE")
    code = intruder.wait(10)
    record_property("intruder_gone_s", round(time.monotonic() - launched, 3))
    assert said.startswith("GONE") or code == -signal.SIGKILL, (said, code)
    deadline = time.monotonic() + 10
    while not (caught := _records(journal, "display.intruder")):
        assert time.monotonic() < deadline, "the intruder was not journalled"
        time.sleep(0.1)
    # only the intruder: our own programs that just ended are not taken for one
    assert [c["payload"]["pid"] for c in caught] == [intruder.pid]
    assert caught[0]["payload"]["action"] in ("disconnected", "terminated")
    assert caught[0]["payload"]["display"] == fresh_xserver.display

    # the exam ends (its quit URL): the session ends with it
    http_server.page("/state", "end")
    assert proc.wait(60) == 0
    records = read_records(journal)
    assert verify(journal).records == len(records)
    # nothing of ours was taken for an intruder, during the exam or at its end
    assert [r["payload"]["pid"] for r in records if r["type"] == "display.intruder"] == [
        intruder.pid
    ]
    assert [r["type"] for r in records][-2:] == ["session.ended", "journal.closed"]
    assert records[-2]["payload"]["reason"] == "quit_url"


#: An X client that sits on the display, as a desktop's programs do.
SITTER = """
import time
from Xlib import display
d = display.Display()
d.screen().root.create_window(0, 0, 10, 10, 0, d.screen().root_depth).map()
d.sync()
print("READY", flush=True)
time.sleep(60)
"""


def test_session_on_a_display_with_another_client_is_refused(
    tmp_path: Path,
    fresh_xserver: Xvfb,
    http_server: LocalServer,
    clients: list[subprocess.Popen[str]],
) -> None:
    sitter = _client(clients, fresh_xserver, SITTER)
    assert _line(sitter, "READY") == "READY"
    proc = _session(tmp_path, fresh_xserver)
    assert proc.wait(60) == 2
    assert proc.stderr is not None
    errors = [ln for ln in proc.stderr.read().splitlines() if not ln.startswith("{")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("lockdown: this display already has 1 other program(s) on it")
    assert "python" in errors[0]
    assert sitter.poll() is None  # refused, not disconnected: it is the candidate's desktop

    # the positive control: the same display without it starts; the candidate types the
    # exam's path into the link window and presses Enter
    sitter.kill()
    sitter.wait(10)
    http_server.page(
        "/", "<p>exam</p><script>setTimeout(() => location.href = '/done', 300)</script>"
    )
    cfg = config(tmp_path, http_server.url("/"), http_server.url("/done"))
    proc = _session(tmp_path, fresh_xserver)
    xdo = private_xdotool()

    def enter(link: str) -> None:
        wait_for_line(proc, "Asking the candidate for the exam link", timeout=90)
        find_window(fresh_xserver, "Lockdown exam", timeout=30, tool=xdo, visible=True)
        fresh_xserver.run(xdo, "type", "--delay", "10", link, timeout=30)
        fresh_xserver.run(xdo, "key", "Return")

    enter(str(tmp_path / "mistyped.toml"))  # cannot be opened: asked again
    lines = wait_for_line(proc, "The exam link could not be opened", timeout=30)
    enter(str(cfg))
    lines += wait_for_line(proc, "Page loaded", timeout=60)
    assert proc.wait(60) == 0
    assert _records(journal_of(lines), "display.isolated")[0]["payload"]["kind"] == "session"
