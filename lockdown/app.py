"""The composition root: builds the objects of a session, runs them in order, runs Qt.

``lockdown open TARGET`` reads like this:

1. Build the web engine's environment and flags from an allow-list and start the
   network gate every engine connection goes through (``lockdown.ui.hardening``; what
   was removed is journalled once the journal is open), then make the Qt application
   (the web engine is imported first).
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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lockdown import __version__, log
from lockdown.config.settings import Organisation, load_organisation
from lockdown.errors import UserError
from lockdown.events import Event, EventSink, Journal
from lockdown.lifecycle.base import Operation, Outcome, Progress
from lockdown.lifecycle.operations import KioskOperation
from lockdown.lifecycle.sequence import OperationSequence
from lockdown.paths import Paths, organisation_file
from lockdown.ui.hardening import EnginePlan, prepare_engine, sandbox_state

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
    app = QApplication(sys.argv[:1])  # never the candidate's flags
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
    engine: EnginePlan | None = None,
    journey: Callable[[Kiosk], None] | None = None,
    single_instance: bool = True,
    show_message: Callable[[str], None] | None = None,
) -> int:
    """Run one exam session in the Qt loop; returns the exit code.

    When the exam cannot start (a guard refused: a virtual machine, too many screens, a
    prohibited app left running…) the reason is journalled, printed as one line and shown
    to the candidate through ``show_message`` (a message box by default); exit code 1.
    """
    from PySide6.QtCore import QEvent, QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from lockdown.guards.clipboard import install_clipboard_isolation
    from lockdown.guards.desktop import DesktopGuardsOperation, build_desktop_guards
    from lockdown.guards.policy import SystemGuardsOperation
    from lockdown.guards.restore import RestoreLog, undo_leftovers
    from lockdown.launch import InstanceServer, check_startable
    from lockdown.platform.factory import desktop_platform
    from lockdown.texts import text
    from lockdown.ui import netgate
    from lockdown.ui.bridge import Bridge
    from lockdown.ui.kiosk import Kiosk
    from lockdown.ui.prohibited_dialog import prompt_prohibited_apps

    check_startable(exam.settings, exam.origin)
    sandbox = sandbox_state(os.environ, euid=getattr(os, "geteuid", lambda: 1)())
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
    if sandbox == "off":
        log.init.warning("The web engine sandbox is off (running as root: tests or CI only)")
        journal.append(Event("kiosk.sandbox_off", {"reason": "running as root"}))
    for kind, payload in engine.journal_payloads() if engine is not None else ():
        journal.append(Event(kind, payload))
    if engine is not None and engine.refused:
        log.init.warning("Removed from the web engine's environment: %s", ", ".join(engine.refused))
    gate = netgate.current()
    if gate is not None:
        gate.set_report(journal.append)
        gate.webrtc = bool(exam.settings["browser.webrtc"])
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
    platform = desktop_platform()
    undo_leftovers(paths.restore, journal.append, platform)
    if exam.settings["guards.clipboard"] == "isolated":
        install_clipboard_isolation(kiosk.profile)
    system_guards = SystemGuardsOperation(
        exam.settings,
        journal.append,
        prompt=prompt_prohibited_apps,
        restore=RestoreLog(paths.restore),
    )
    desktop_guards = DesktopGuardsOperation(
        exam.settings,
        build_desktop_guards(exam.settings, kiosk.window, platform, RestoreLog(paths.restore)),
        journal.append,
    )
    proctoring = ProctoringStep(exam.settings, journal.append, paths, journal.path.stem)
    operations: list[Operation] = [
        system_guards,
        proctoring,
        KioskOperation(kiosk, journal.append),
        desktop_guards,
    ]
    sequence = OperationSequence(operations, _progress)
    result = {"code": 0}
    # The exam runs in a loop of its own, not in QApplication.exec(): quitting the
    # application for good would also stop every later timer in this process.
    loop = QEventLoop()

    def finish(reason: str) -> None:
        log.init.info("Ending the session (%s); reverting", reason)
        # The recording ends first, on the locked exam; then the lock comes off.
        recording = proctoring.stop_recording()
        outcome = sequence.revert()
        if recording is not Outcome.SUCCESS and outcome is Outcome.SUCCESS:
            outcome = recording
        journal.append(Event("session.ended", {"reason": reason, "revert": outcome.value}))
        if outcome is not Outcome.SUCCESS:
            result["code"] = 1
        loop.quit()

    kiosk.ended.connect(lambda reason: QTimer.singleShot(0, lambda: finish(reason)))

    running = {"exam": False, "terminating": False}

    def on_signal(signum: int, _frame: object) -> None:
        reason = f"signal {signal.Signals(signum).name}"

        def act() -> None:
            running["terminating"] = True
            if running["exam"]:
                kiosk.end(reason)
            else:  # still starting (a dialog may be open) or already refused
                QApplication.closeAllWindows()

        bridge.call(act)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    ticker = QTimer()
    ticker.timeout.connect(lambda: None)  # lets Python run its signal handlers
    ticker.start(200)
    try:
        outcome = sequence.perform()
        if outcome is not Outcome.SUCCESS:
            sequence.revert()
            message = _why_not_started(operations)
            journal.append(
                Event(
                    "session.ended",
                    {
                        "reason": f"start {outcome.value}",
                        "message_id": message[0] if message else None,
                    },
                )
            )
            shown = text(message[0], **message[1]) if message else text("session.not_started")
            print(f"lockdown: {shown}", file=sys.stderr)
            if not running["terminating"]:
                (show_message or _message_box)(shown)
            return 1
        running["exam"] = True
        for warning in system_guards.warnings:
            kiosk.show_notice(warning)
        if journey is not None:
            journey(kiosk)
        loop.exec()
    finally:
        ticker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if server is not None:
            server.close()
        close_platform = getattr(platform, "close", None)  # the X11 connection
        if close_platform is not None:
            close_platform()
        if gate is not None:
            gate.set_report(None)
        journal.close()
        app.processEvents()
        # the kiosk's widgets were deleteLater()'d inside the exam's own loop: free them now
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    log.init.info("Session finished")
    return result["code"]


class ProctoringStep:
    """Records the streams the exam switches on into an encrypted spool of the session.

    The capture libraries are imported only when the exam records something, so an exam
    without proctoring starts as fast as the browser alone. The spool key lives outside
    the spool folder (``state/spool-keys``), readable by this user only.
    """

    name = "proctoring"

    def __init__(
        self, settings: Mapping[str, Any], report: EventSink, paths: Paths, session: str
    ) -> None:
        self._settings = settings
        self._report = report
        self._folder = paths.spool / session
        self._key_dir = paths.state / "spool-keys"
        self._operation: Any = None
        self._spool: Any = None

    def _enabled(self) -> bool:
        return any(
            self._settings[key]
            for key in ("proctoring.camera", "proctoring.microphone", "proctoring.screen")
        )

    def perform(self) -> Outcome:
        if not self._enabled():
            log.capture.info("This exam records nothing")
            return Outcome.SUCCESS
        from lockdown.capture.operation import ProctoringOperation
        from lockdown.upload.base import SpoolError
        from lockdown.upload.spool import Spool, key_file_for

        try:
            self._spool = Spool.open(
                self._folder,
                report=self._report,
                max_bytes=self._settings["proctoring.spool_max_mb"] << 20,
                key_file=key_file_for(self._key_dir, self._folder),
            )
        except SpoolError:
            return Outcome.FAILED
        self._operation = ProctoringOperation(self._settings, self._report, self._spool)
        outcome: Outcome = self._operation.perform()
        return outcome

    def stop_recording(self) -> Outcome:
        """Stop the recorders and store their last segments (idempotent).

        Called when the exam ends, before the sequence reverts: the kiosk and every guard
        are still up, so the recording ends on the locked exam, never on a desktop.
        """
        operation, self._operation = self._operation, None
        if operation is None:
            return Outcome.SUCCESS
        try:
            outcome: Outcome = operation.revert()
        except Exception:  # a journal that cannot be written (full disk) must not keep
            # the candidate locked in: the rest of the session still reverts
            log.capture.exception("Stopping the recording")
            return Outcome.FAILED
        return outcome

    def revert(self) -> Outcome:
        outcome = self.stop_recording()
        if self._spool is not None:
            self._spool.close()
            log.capture.info("Recording kept in %s", self._folder)
            self._spool = None
        return outcome


def _why_not_started(operations: list[Operation]) -> tuple[str, dict[str, Any]] | None:
    """The text id (and values) of the first operation that says why the start stopped."""
    for op in operations:
        message = getattr(op, "message", None)
        if message is not None:
            return message  # type: ignore[no-any-return]
        message_id = getattr(op, "message_id", None)
        if message_id is not None:
            return message_id, dict(getattr(op, "message_values", {}))
    return None


def _message_box(message: str) -> None:
    """Tell the candidate why the exam did not start (closes itself after a minute)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QMessageBox

    from lockdown.texts import text

    box = QMessageBox(QMessageBox.Icon.Warning, text("session.not_started_title"), message)
    QTimer.singleShot(60_000, box.accept)
    box.exec()


def main_open(args: argparse.Namespace) -> int:
    """``lockdown open TARGET``."""
    from lockdown.launch import hand_over, load_exam
    from lockdown.texts import text
    from lockdown.ui.dialogs import seb_password_prompt

    engine = prepare_engine(os.environ, euid=_euid())
    app = qt_application()
    answer = hand_over(args.target)
    if answer is not None:
        log.init.warning("Another session is running: %s", answer)
        raise SecondInstance(text("instance.refused"))
    organisation = _organisation(args)
    exam = load_exam(args.target, organisation, password=seb_password_prompt())
    del app
    return run_session(exam, args.paths, engine=engine)


def main_demo(args: argparse.Namespace) -> int:
    """``lockdown demo``: the bundled demo exam, headless with screenshots when no display."""
    from lockdown.ui import headless

    xvfb: headless.Xvfb | None = None
    if not headless.has_display():
        xvfb = headless.Xvfb().start()
        os.environ.update(xvfb.env)
        os.environ["QT_QPA_PLATFORM"] = "xcb"
        log.init.info("No display: running the demo on its own Xvfb %s", xvfb.display)
        if getattr(os, "geteuid", lambda: 1)() == 0:
            # WORKAROUND(PLATFORM.md "Qt WebEngine"): Chromium refuses to run as root
            # with its sandbox; only the throw-away headless demo runs like this.
            os.environ.setdefault("QTWEBENGINE_DISABLE_SANDBOX", "1")
    try:
        engine = prepare_engine(os.environ, euid=_euid())
        return _demo(args, engine, automatic=xvfb is not None or bool(args.screenshots))
    finally:
        if xvfb is not None:
            xvfb.stop()


def _euid() -> int:
    euid: int = getattr(os, "geteuid", lambda: 1)()
    return euid


def _demo(args: argparse.Namespace, engine: EnginePlan, *, automatic: bool) -> int:
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
        code = run_session(exam, args.paths, engine=engine, journey=journey)
        if folder is not None:
            shots = sorted(folder.glob("*.png"))
            print(f"Demo screenshots ({len(shots)}) in {folder}")
        for spool in sorted(p for p in args.paths.spool.glob("session-*") if p.is_dir()):
            print(f"Demo recording in {spool} (check it with: lockdown spool verify {spool})")
        return code
    finally:
        site.stop()
