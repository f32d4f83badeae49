"""The composition root: builds the objects of a session, runs them in order, runs Qt.

``lockdown open TARGET`` reads like this:

1. Strip remote-debugging switches from the environment (journalled once the journal
   is open) and make the Qt application (the web engine is imported first).
2. Refuse to start when another session runs: hand the target over to it and exit.
3. Load and verify the exam configuration (``lockdown.launch``): Lockdown TOML or a
   Safe Exam Browser ``.seb`` (its password asked in a dialog, three tries); layer it
   over the organisation file; frozen from here on.
4. Open the session journal, listen for a second instance, build the kiosk.
5. Perform the operation sequence (today: the kiosk; the guards, recorders and the
   proctoring session go in front of it as they land). The exam runs in the Qt loop.
6. The exam ends (quit URL, quit button / password, SIGTERM): the sequence is reverted
   in reverse order, the journal closed, the process exits 0.

``lockdown demo`` serves the bundled demo exam on 127.0.0.1 and runs the same session
on it; without a display it starts its own Xvfb and drives a short journey, saving
screenshots into a folder it prints.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockdown import __version__, log
from lockdown.config.settings import Organisation, load_organisation
from lockdown.errors import UserError
from lockdown.events import Event, Journal
from lockdown.lifecycle.base import Outcome, Progress
from lockdown.lifecycle.operations import KioskOperation
from lockdown.lifecycle.sequence import OperationSequence
from lockdown.paths import Paths, organisation_file
from lockdown.ui.hardening import scrub_argv, scrub_environment

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from lockdown.launch import LoadedExam
    from lockdown.ui.kiosk import Kiosk


class SecondInstance(UserError):
    """Another exam session runs on this computer."""


def _organisation(args: argparse.Namespace) -> Organisation:
    if getattr(args, "organisation", None):
        return load_organisation(Path(args.organisation), required=True)
    return load_organisation(organisation_file())


def qt_application() -> QApplication:
    """The one QApplication, made after the web engine module (it must come first)."""
    from PySide6.QtWebEngineWidgets import QWebEngineView  # noqa: F401  (before QApplication)
    from PySide6.QtWidgets import QApplication

    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        return existing
    argv, _ = scrub_argv(sys.argv[:1])
    app = QApplication(argv)
    app.setApplicationName("Lockdown")
    app.setApplicationVersion(__version__)
    app.setQuitOnLastWindowClosed(False)
    return app


def _journal_path(paths: Paths) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return paths.journals / f"session-{stamp}-{os.getpid()}.jsonl"


def _progress(progress: Progress) -> None:
    outcome = f" -> {progress.outcome.value}" if progress.outcome else ""
    log.init.debug("%s %s%s", progress.phase.value, progress.name, outcome)


def run_session(
    exam: LoadedExam,
    paths: Paths,
    *,
    removed_debugging: list[str] | None = None,
    journey: Callable[[Kiosk], None] | None = None,
    single_instance: bool = True,
) -> int:
    """Run one exam session in the Qt loop; returns the exit code."""
    from PySide6.QtCore import QTimer

    from lockdown.launch import InstanceServer, check_startable
    from lockdown.ui.bridge import Bridge
    from lockdown.ui.kiosk import Kiosk

    check_startable(exam.settings, exam.origin)
    app = qt_application()
    paths.ensure()
    journal = Journal.open(_journal_path(paths))
    log.init.info("Journal at %s", journal.path)
    journal.append(
        Event(
            "session.started",
            {"origin": exam.origin, "kind": exam.kind, "title": exam.title, "version": __version__},
        )
    )
    for item in removed_debugging or ():
        journal.append(Event("kiosk.remote_debugging_refused", {"removed": item}))
        log.init.warning("Remote debugging refused: removed %s", item)
    bridge = Bridge()
    server: InstanceServer | None = None
    if single_instance:
        server = InstanceServer()
        server.listen()
    downloads = paths.data / "downloads" / journal.path.stem
    kiosk = Kiosk(exam.settings, journal.append, keys=exam.keys, downloads=downloads)
    if server is not None:

        def refused(target: str) -> None:
            journal.append(Event("kiosk.second_instance_refused", {"target": target[:2048]}))
            kiosk.show_notice("notice.second_instance")

        server.refused.connect(refused)
    sequence = OperationSequence([KioskOperation(kiosk, journal.append)], _progress)
    result = {"code": 0}

    def finish(reason: str) -> None:
        log.init.info("Ending the session (%s); reverting", reason)
        outcome = sequence.revert()
        journal.append(Event("session.ended", {"reason": reason, "revert": outcome.value}))
        if outcome is not Outcome.SUCCESS:
            result["code"] = 1
        app.quit()

    kiosk.ended.connect(lambda reason: QTimer.singleShot(0, lambda: finish(reason)))

    def on_signal(signum: int, _frame: object) -> None:
        bridge.call(lambda: kiosk.end(f"signal {signal.Signals(signum).name}"))

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)  # lets Python run its signal handlers
    ticker.start(200)
    try:
        outcome = sequence.perform()
        if outcome is not Outcome.SUCCESS:
            sequence.revert()
            journal.append(Event("session.ended", {"reason": f"start {outcome.value}"}))
            return 1
        if journey is not None:
            journey(kiosk)
        app.exec()
    finally:
        ticker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        journal.close()
        app.processEvents()
    log.init.info("Session finished")
    return result["code"]


def main_open(args: argparse.Namespace) -> int:
    """``lockdown open TARGET``."""
    from lockdown.launch import hand_over, load_exam
    from lockdown.texts import text
    from lockdown.ui.dialogs import seb_password_prompt

    removed = scrub_environment(os.environ)
    app = qt_application()
    answer = hand_over(args.target)
    if answer is not None:
        log.init.warning("Another session is running: %s", answer)
        raise SecondInstance(text("instance.refused"))
    organisation = _organisation(args)
    exam = load_exam(args.target, organisation, password=seb_password_prompt())
    del app
    return run_session(exam, args.paths, removed_debugging=removed)


def main_demo(args: argparse.Namespace) -> int:
    """``lockdown demo``: the bundled demo exam, headless with screenshots when no display."""
    from lockdown.ui import headless

    removed = scrub_environment(os.environ)
    xvfb: headless.Xvfb | None = None
    if not headless.has_display():
        xvfb = headless.Xvfb().start()
        os.environ.update(xvfb.env)
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        log.init.info("No display: running the demo on its own Xvfb %s", xvfb.display)
        if os.geteuid() == 0:
            # WORKAROUND(PLATFORM.md "Qt WebEngine"): Chromium refuses to run as root
            # with its sandbox; only the throw-away headless demo runs like this.
            os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    try:
        return _demo(args, removed, automatic=xvfb is not None or bool(args.screenshots))
    finally:
        if xvfb is not None:
            xvfb.stop()


def _demo(args: argparse.Namespace, removed: list[str], *, automatic: bool) -> int:
    from lockdown.ui.demo import DemoSite, Journey, demo_exam

    site = DemoSite().start()
    try:
        exam = demo_exam(site)
        journey: Callable[[Any], None] | None = None
        folder: Path | None = None
        if automatic:
            folder = (
                Path(args.screenshots)
                if args.screenshots
                else Path(tempfile.mkdtemp(prefix="lockdown-demo-"))
            )
            folder.mkdir(parents=True, exist_ok=True)
            journey = Journey(site, folder).attach
        qt_application()
        code = run_session(exam, args.paths, removed_debugging=removed, journey=journey)
        if folder is not None:
            shots = sorted(folder.glob("*.png"))
            print(f"Demo screenshots ({len(shots)}) in {folder}")
        return code
    finally:
        site.stop()
