"""Ending a session always works: on a full disk, through every quit path, after an
exception, during the start; and the candidate sees what happens while it ends."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QDialog

from lockdown import app as app_module
from lockdown import durable
from lockdown.app import run_session
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import Event, read_records, verify
from lockdown.lifecycle.base import Outcome
from lockdown.paths import temp_paths
from lockdown.texts import text
from lockdown.ui.kiosk import Kiosk
from tests.support.disk import fill
from tests.support.httpserver import LocalServer
from tests.support.xclients import keyboard_held
from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


def exam(start: str, **values: Any) -> LoadedExam:
    base = {
        "browser": {"start_url": start},
        "guards": {"virtual_machine": "allow", "remote_session": "allow"},
    }
    for key, table in values.items():
        base.setdefault(key, {}).update(table)
    settings = layer(Organisation(), flatten(base, origin="t"))
    return LoadedExam(settings, None, "test", "Session end test", "lockdown")


def only_journal(folder: Path) -> Path:
    (journal,) = folder.glob("*.jsonl")
    return journal


def on_loaded(kiosk: Kiosk, action: Callable[[], None], delay_ms: int = 300) -> None:
    done = {"once": False}

    def loaded(ok: bool, _url: str) -> None:
        if ok and not done["once"]:
            done["once"] = True
            QTimer.singleShot(delay_ms, action)

    kiosk.pageLoaded.connect(loaded)


def overflow(kiosk: Kiosk) -> None:
    """More records than the last page of a full disk's journal file can take."""
    for i in range(40):
        kiosk._journal(Event("test.overflow", {"i": i, "pad": "x" * 400}))


def press_quit(kiosk: Kiosk) -> None:
    kiosk.toolbar.buttons["quit"].click()

    def accept() -> None:
        assert kiosk.quit_dialog is not None
        kiosk.quit_dialog.accept()

    QTimer.singleShot(200, accept)


QUIT_PATHS: dict[str, Callable[[Kiosk, LocalServer], None]] = {
    "quit_button": lambda kiosk, _server: press_quit(kiosk),
    "quit_url": lambda kiosk, server: kiosk.page.runJavaScript(
        f"location.href = {server.url('/done')!r}"
    ),
    "signal SIGTERM": lambda _kiosk, _server: os.kill(os.getpid(), signal.SIGTERM),
}


@pytest.mark.parametrize("path", list(QUIT_PATHS))
def test_every_quit_path_ends_and_reverts_with_the_journal_on_a_full_disk(
    qapp: Any,
    path: str,
    tmp_path: Path,
    tmpfs: Callable[[str], Path],
    xserver: Xvfb,
    http_server: LocalServer,
) -> None:
    disk = tmpfs("512k")
    paths = temp_paths(tmp_path)
    paths = type(paths)(data=disk, state=paths.state, runtime=paths.runtime)
    start = http_server.page("/", "<p>exam</p>")
    http_server.page("/done", "<p>done</p>")
    held: list[bool] = []
    filler: list[Path] = []

    def journey(kiosk: Kiosk) -> None:
        def fill_then_quit() -> None:
            held.append(keyboard_held(xserver))
            filler.append(fill(disk))
            overflow(kiosk)
            QTimer.singleShot(300, lambda: QUIT_PATHS[path](kiosk, http_server))

        on_loaded(kiosk, fill_then_quit)

    started = time.monotonic()
    code = run_session(
        exam(start, quit={"url": http_server.url("/done"), "allow": True}),
        paths,
        single_instance=False,
        journey=journey,
        show_message=pytest.fail,
    )
    took = time.monotonic() - started
    assert code == 0
    assert held == [True]  # the lock was on before the disk filled
    assert not keyboard_held(xserver)  # and is off after: every guard reverted
    assert took < 30
    journal = only_journal(paths.journals)
    kept = verify(journal)  # whole records only, the chain intact
    types = [r["type"] for r in read_records(journal)]
    assert types[0] == "session.started"
    # the disk was full: the records after it filled were lost, whole, never half written
    assert types.count("test.overflow") < 40 and "session.ended" not in types
    # once the disk has room again, the next session's journal there works as before
    filler[0].unlink()
    assert kept.records >= 3


def test_the_journal_says_what_it_lost_once_the_disk_has_room(
    qapp: Any, tmp_path: Path, tmpfs: Callable[[str], Path], http_server: LocalServer
) -> None:
    disk = tmpfs("512k")
    paths = type(temp_paths(tmp_path))(data=disk, state=tmp_path / "s", runtime=tmp_path / "r")
    start = http_server.page("/", "<p>exam</p>")

    def journey(kiosk: Kiosk) -> None:
        def fill_then_quit() -> None:
            filler = fill(disk)
            overflow(kiosk)
            # room again a moment after the candidate quits, while the session ends
            timers.append(threading.Timer(0.8, lambda: filler.unlink(missing_ok=True)))
            timers[-1].start()
            QTimer.singleShot(300, lambda: kiosk.end("quit_button"))

        on_loaded(kiosk, fill_then_quit)

    timers: list[threading.Timer] = []
    assert run_session(exam(start), paths, single_instance=False, journey=journey) == 0
    for timer in timers:
        timer.join()
    records = read_records(only_journal(paths.journals))
    types = [r["type"] for r in records]
    assert "journal.degraded" in types
    gap = records[types.index("journal.degraded")]["payload"]
    assert gap["reason"] == "No space left on device" and gap["held"] >= 1
    assert types[-2:] == ["session.ended", "journal.closed"]
    assert records[-2]["payload"]["reason"] == "quit_button"


def test_an_exception_in_the_journey_still_winds_down_and_reverts(
    qapp: Any, tmp_path: Path, xserver: Xvfb, http_server: LocalServer
) -> None:
    paths = temp_paths(tmp_path)

    def journey(kiosk: Kiosk) -> None:
        raise RuntimeError("the demo journey broke")

    code = run_session(
        exam(http_server.page("/", "<p>exam</p>")),
        paths,
        single_instance=False,
        journey=journey,
        show_message=pytest.fail,
    )
    assert code == 1
    assert not keyboard_held(xserver)
    records = read_records(only_journal(paths.journals))
    types = [r["type"] for r in records]
    assert "guards.started" in types and "guards.stopped" in types and "kiosk.closed" in types
    assert records[-2]["type"] == "session.ended"
    assert records[-2]["payload"]["reason"] == "error RuntimeError"


class SlowRecording:
    """An operation whose wind-down takes a while (the recording's last segments)."""

    name = "proctoring"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.wound_down_on: str | None = None

    def perform(self) -> Outcome:
        return Outcome.SUCCESS

    def wind_down(self) -> Outcome:
        self.wound_down_on = threading.current_thread().name
        time.sleep(self.seconds)
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        return Outcome.SUCCESS


def test_the_end_shows_its_progress_and_the_gui_stays_responsive(
    qapp: Any,
    tmp_path: Path,
    http_server: LocalServer,
    monkeypatch: pytest.MonkeyPatch,
    xserver: Xvfb,
) -> None:
    slow = SlowRecording(2.0)
    monkeypatch.setattr(app_module, "ProctoringStep", lambda *a, **k: slow)
    paths = temp_paths(tmp_path)
    shots: dict[str, Any] = {}
    gaps: list[float] = []

    def journey(kiosk: Kiosk) -> None:
        def during_the_end() -> None:
            shots["page"] = kiosk.window.stack.currentWidget() is kiosk.progress
            shots["text"] = kiosk.progress.step.text()
            shots["png"] = tmp_path / "ending.png"
            kiosk.window.grab().save(str(shots["png"]))

        def tick() -> None:
            now = time.monotonic()
            if "last" in shots:
                gaps.append(now - shots["last"])
            shots["last"] = now

        def end() -> None:
            timer = QTimer(kiosk)
            timer.timeout.connect(tick)
            timer.start(20)
            QTimer.singleShot(1000, during_the_end)
            kiosk.end("quit_button")

        on_loaded(kiosk, end)

    assert (
        run_session(
            exam(http_server.page("/", "<p>exam</p>")),
            paths,
            single_instance=False,
            journey=journey,
        )
        == 0
    )
    assert shots["page"] is True
    assert shots["text"] == text("session.saving_recording", seconds=20)
    assert slow.wound_down_on == "wind-down-proctoring"  # not the GUI thread
    assert shots["png"].stat().st_size > 1000
    # the GUI thread went on ticking while the recording was saved (a 20 ms timer)
    assert len(gaps) > 30 and max(gaps) < 0.5, max(gaps)
    print(f"progress screenshot: {shots['png']}; GUI tick gaps max {max(gaps) * 1000:.0f} ms")


def test_a_wind_down_past_its_deadline_is_journalled_and_the_revert_goes_on(
    qapp: Any, tmp_path: Path, http_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(app_module, "WIND_DOWN_DEADLINE_S", 0.5)
    monkeypatch.setattr(app_module, "ProctoringStep", lambda *a, **k: SlowRecording(3.0))
    paths = temp_paths(tmp_path)

    def journey(kiosk: Kiosk) -> None:
        on_loaded(kiosk, lambda: kiosk.end("quit_button"))

    code = run_session(
        exam(http_server.page("/", "<p>exam</p>")), paths, single_instance=False, journey=journey
    )
    assert code == 1
    records = read_records(only_journal(paths.journals))
    timeout = [r for r in records if r["type"] == "session.wind_down_timeout"]
    assert timeout and timeout[0]["payload"] == {"operation": "proctoring", "seconds": 0.5}
    assert records[-2]["payload"]["revert"] == "failed"


def test_sigterm_during_the_start_closes_the_dialog_and_starts_nothing(
    qapp: Any, tmp_path: Path, http_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []

    def prompt(*_: Any, **__: Any) -> Any:
        dialog = QDialog()
        QTimer.singleShot(300, lambda: os.kill(os.getpid(), signal.SIGTERM))
        seen.append("dialog open")
        dialog.exec()
        seen.append("dialog closed")
        return None

    class AskFirst:
        name = "system_guards"
        warnings: tuple[str, ...] = ()

        def __init__(self, *_: Any, **__: Any) -> None:
            pass

        def perform(self) -> Outcome:
            prompt()
            return Outcome.SUCCESS

        def revert(self) -> Outcome:
            return Outcome.SUCCESS

    monkeypatch.setattr("lockdown.guards.policy.SystemGuardsOperation", AskFirst)
    # the pre-checks found what the dialog asks about: the page waits for the answer
    monkeypatch.setattr("lockdown.guards.prefetch.Prechecks.let_start", lambda *_: False)
    paths = temp_paths(tmp_path)
    start = http_server.page("/", "<p>exam</p>")
    code = run_session(exam(start), paths, single_instance=False, show_message=pytest.fail)
    assert code == 1
    assert seen == ["dialog open", "dialog closed"]
    assert http_server.seen("/") == []  # the kiosk never loaded the exam
    records = read_records(only_journal(paths.journals))
    types = [r["type"] for r in records]
    assert "kiosk.started" not in types
    assert records[-2]["payload"]["reason"] == "start cancelled (signal SIGTERM)"
    assert QApplication.activeModalWidget() is None
    assert durable  # the module under the journal


def test_the_kiosk_stays_responsive_behind_a_slow_disk(
    qapp: Any, tmp_path: Path, http_server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync = durable.AppendLog.sync

    def slow_sync(self: durable.AppendLog) -> None:
        time.sleep(0.4)  # every fsync of the journal takes 0.4 s
        real_sync(self)

    monkeypatch.setattr(durable.AppendLog, "sync", slow_sync)
    paths = temp_paths(tmp_path)
    # the page tries a blocked address 20 times: 20 journal records while the candidate works
    start = http_server.page(
        "/",
        "<p>exam</p><script>for (let i = 0; i < 20; i++) "
        "setTimeout(() => { const f = document.createElement('iframe'); "
        "f.src = 'https://blocked.example.org/' + i; document.body.appendChild(f); }, i * 50)"
        "</script>",
    )
    gaps: list[float] = []
    last: list[float] = []

    def journey(kiosk: Kiosk) -> None:
        def tick() -> None:
            if not kiosk.window.isVisible():  # the kiosk is closed: the session is over
                timer.stop()
                return
            now = time.monotonic()
            if last:
                gaps.append(now - last[-1])
            last.append(now)

        timer = QTimer(kiosk)
        timer.timeout.connect(tick)
        timer.start(20)
        on_loaded(kiosk, lambda: kiosk.end("quit_button"), delay_ms=2000)

    code = run_session(
        exam(start, browser={"url_filter": True}), paths, single_instance=False, journey=journey
    )
    assert code == 0
    blocked = [r for r in read_records(only_journal(paths.journals)) if "block" in r["type"]]
    assert len(blocked) >= 5
    assert len(gaps) > 50
    worst = max(gaps)
    print(f"GUI tick gaps behind a 0.4 s fsync: max {worst * 1000:.0f} ms over {len(gaps)}")
    assert worst < 0.3  # never one 0.4 s fsync, let alone twenty
