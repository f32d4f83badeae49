"""The composition root: builds the objects of a session, runs them in order, runs Qt.

``lockdown open TARGET`` reads like this:

0. Choose the display before Qt connects to one for good: the exam's own X server where
   ``guards.display_isolation`` and this machine allow (``lockdown.guards.display_isolation``),
   else the shared one. Without a usable display, stop with one line before Qt starts
   (``lockdown.ui.display``).
1. Build the web engine's environment and flags from an allow-list and start the
   network gate every engine connection goes through (``lockdown.ui.hardening``; what
   was removed is journalled once the journal is open), then make the Qt application
   (the web engine is imported first).
2. Refuse to start when another session runs: hand the target over to it and exit.
3. Load and verify the exam configuration (``lockdown.launch``): Lockdown TOML or a
   Safe Exam Browser ``.seb`` (its password asked in a dialog, three tries); layer it
   over the organisation file; frozen from here on. From a link: a small window while
   it downloads, a dialog when it cannot be opened (``lockdown.ui.launchwindow``).
4. Open the session journal, listen for a second instance, build the kiosk.
5. Perform the operation sequence (system guards, recording, kiosk, desktop guards).
   The kiosk window shows a "starting" state from before the web engine starts; the
   exam page loads underneath and shows only once every guard is on. The exam runs in
   the Qt loop.
6. The exam ends (quit URL, quit button / password, SIGTERM): the sequence is reverted
   in reverse order, the journal closed, the process exits 0.

``lockdown demo`` serves the bundled demo exam on 127.0.0.1 and runs the same session
on it; without a display it starts its own Xvfb and drives a short journey, saving
screenshots into a folder it prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from lockdown import __version__, log
from lockdown.config.settings import choose_organisation
from lockdown.errors import UserError
from lockdown.events import Event, EventSink, Journal, record_refusal
from lockdown.lifecycle.base import Operation, Outcome, Phase, Progress
from lockdown.lifecycle.operations import KioskOperation
from lockdown.lifecycle.sequence import OperationSequence
from lockdown.paths import Paths
from lockdown.platform.trust import DebugState, system_trust
from lockdown.ui.hardening import EnginePlan, accessibility, prepare_engine, sandbox_state

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from lockdown.config.loaded import LoadedExam
    from lockdown.guards.display_isolation import DisplayChoice
    from lockdown.guards.prefetch import PrecheckPrefetch
    from lockdown.session.link import ServiceLink
    from lockdown.ui.kiosk import Kiosk


class SecondInstance(UserError):
    """Another exam session runs on this computer."""


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


def _progress(progress: Progress) -> None:
    outcome = f" -> {progress.outcome.value}" if progress.outcome else ""
    log.init.debug("%s %s%s", progress.phase.value, progress.name, outcome)
    if progress.phase is Phase.PERFORMED:
        # the start page loads underneath the starting state meanwhile: the web engine's
        # browser side runs on this (the GUI) thread and moves on only between steps
        from PySide6.QtCore import QCoreApplication

        QCoreApplication.processEvents()


#: The steps before the system guards after whose success clear pre-checks let the start
#: page load early (:meth:`Session._prechecks_let_start`).
EARLY_PAGE_AFTER: Final = ("display_isolation", "system_check")
#: The exit code when the X display connection died (``xkill`` of the kiosk).
DISPLAY_LOST_EXIT: Final = 1
#: How long each operation may take to wind down before the revert goes on regardless.
WIND_DOWN_DEADLINE_S: Final = 20.0
#: What the candidate reads while an operation winds down (text id by operation name).
WIND_DOWN_TEXTS: Final = {"proctoring": "session.saving_recording"}
#: How long the kiosk shows what stays for later before it unlocks.
LEFT_FOR_LATER_S: Final = 3.0


def run_session(
    exam: LoadedExam,
    paths: Paths,
    *,
    engine: EnginePlan | None = None,
    facts: Mapping[str, Any] | None = None,
    journey: Callable[[Kiosk], None] | None = None,
    single_instance: bool = True,
    show_message: Callable[[str], None] | None = None,
    display: DisplayChoice | None = None,
    prefetch: PrecheckPrefetch | None = None,
) -> int:
    """Run one exam session in the Qt loop; returns the exit code (see :class:`Session`).

    ``prefetch``: the pre-exam checks already running for this exam (started as soon as
    its configuration was loaded); else they start with the kiosk.
    """
    session = Session(
        exam,
        paths,
        engine=engine,
        facts=facts or {},
        single_instance=single_instance,
        show_message=show_message or _message_box,
    )
    session.display = display
    session.prefetch = prefetch
    return session.run(journey)


class Session:
    """One exam session, in four phases that read as a list:

    1. **start** — open the journal, build the kiosk and the operations, perform the
       sequence (system guards, recording, kiosk, desktop guards). A refused start
       (a virtual machine, too many screens, a prohibited app left running…) is journalled,
       printed as one line and shown to the candidate; exit code 1. A SIGTERM during the
       start (a dialog may be open) cancels it: no further operation starts.
    2. **run** — the exam in its own ``QEventLoop`` until the kiosk ends (quit URL, quit
       button or password, SIGTERM).
    3. **wind down** — with every lock still on, each operation finishes its work off the
       GUI thread (the recording's last segments), while the kiosk says what happens, each
       within :data:`WIND_DOWN_DEADLINE_S`.
    4. **revert** — the sequence reverts in reverse order, the journal closes.

    An exception anywhere after the start still winds down and reverts.
    """

    def __init__(
        self,
        exam: LoadedExam,
        paths: Paths,
        *,
        engine: EnginePlan | None,
        facts: Mapping[str, Any],
        single_instance: bool,
        show_message: Callable[[str], None],
    ) -> None:
        self.exam = exam
        self.paths = paths
        self._engine = engine
        self._facts = facts
        self._single_instance = single_instance
        self._show_message = show_message
        self._reason = ""
        #: the display the session runs on (chosen before Qt; None: the shared one)
        self.display: DisplayChoice | None = None
        #: the pre-exam checks, when they were started before the session
        self.prefetch: PrecheckPrefetch | None = None
        self._terminating = False
        self._running = False
        self._told_offline = False
        self.link: ServiceLink | None = None
        self._early_page = False
        self.code = 0

    # -- 1. start -----------------------------------------------------------------------

    def _open(self) -> None:
        """The journal, the kiosk and the operations (nothing performed yet).

        The kiosk window is painted in its starting state before the web engine starts;
        the pre-checks then run on a worker thread while the rest is built. The start
        page loads underneath as soon as nothing may refuse the start any more: after the
        display step when the pre-checks are back clear and neither a check screen nor a
        service may refuse, else once the system guards (or the service) let this machine
        take the exam (:meth:`_progress`). The exam shows once every operation performed
        (:meth:`run`). (Loading it before the steps were built measured no faster:
        ``bench/bench_kiosk.py``, 2 cores.)
        """
        from lockdown.guards.prefetch import PrecheckPrefetch
        from lockdown.launch import InstanceServer, check_startable
        from lockdown.ui import netgate
        from lockdown.ui.bridge import Bridge
        from lockdown.ui.kiosk import Kiosk, starting_window

        exam = self.exam
        check_startable(exam.settings, exam.origin)
        sandbox = sandbox_state(os.environ, euid=getattr(os, "geteuid", lambda: 1)())
        self.app = qt_application()
        # the first paint, before any file is written and before the web engine starts
        window = starting_window(lambda event: self.journal.append(event))  # noqa: PLW0108 (opened next)
        self.paths.ensure()
        self.journal = journal = _open_journal(self.paths, exam.settings)
        log.init.info("Journal at %s", journal.path)
        log.phase("journal")
        journal.append(Event("session.started", _started_record(exam, self._facts)))
        for name, values in exam.notes:
            journal.append(Event(name, values))
        if sandbox == "off":
            log.init.warning("The web engine sandbox is off (running as root: tests or CI only)")
            journal.append(Event("kiosk.sandbox_off", {"reason": "running as root"}))
        engine = self._engine
        for kind, payload in engine.journal_payloads() if engine is not None else ():
            journal.append(Event(kind, payload))
        if engine is not None and engine.refused:
            log.init.warning(
                "Removed from the web engine's environment: %s", ", ".join(engine.refused)
            )
        self.gate = netgate.current()
        if self.gate is not None:
            self.gate.set_report(journal.append)
            self.gate.webrtc = bool(exam.settings["browser.webrtc"])
        self.bridge = Bridge()
        self.server: InstanceServer | None = None
        if self._single_instance:
            self.server = InstanceServer()
            self.server.listen()
        downloads = self.paths.data / "downloads" / journal.path.stem
        self.kiosk = kiosk = Kiosk(
            exam.settings,
            journal.append,
            keys=exam.keys,
            downloads=downloads,
            early=True,
            window=window,
        )
        from lockdown.guards.clipboard import install_clipboard_isolation

        if exam.settings["guards.clipboard"] == "isolated":
            install_clipboard_isolation(kiosk.profile)
        # beside the web engine's processes, when not started already
        self.prefetch = prefetch = self.prefetch or PrecheckPrefetch(exam.settings)
        from lockdown.guards.desktop import DesktopGuardsOperation, build_desktop_guards
        from lockdown.guards.display_isolation import DisplayIsolationOperation
        from lockdown.guards.policy import SystemGuardsOperation
        from lockdown.guards.restore import RestoreLog, undo_leftovers
        from lockdown.platform.factory import desktop_platform

        if self.server is not None:
            self.server.refused.connect(self._second_instance)
        self.platform = desktop_platform()
        undo_leftovers(self.paths.restore, journal.append, self.platform)
        self.system_guards = SystemGuardsOperation(
            exam.settings,
            journal.append,
            prompt=self._prompt_prohibited_apps,
            restore=RestoreLog(self.paths.restore),
            prefetched=prefetch,
        )
        self.desktop_guards = desktop_guards = DesktopGuardsOperation(
            exam.settings,
            build_desktop_guards(
                exam.settings,
                kiosk.window,
                self.platform,
                RestoreLog(self.paths.restore),
                on_capture=getattr(self.system_guards, "capture_seen", None),
            ),
            journal.append,
        )
        self.link = _service_link(exam, journal, self.paths)
        proctoring = ProctoringStep(
            exam.settings,
            journal.append,
            self.paths,
            journal.path.stem,
            link=self.link,
            request=_session_request(exam),
        )
        from lockdown.ui.checkscreen import SystemCheckOperation

        system_check = SystemCheckOperation(
            exam.settings,
            self.paths.spool,
            journal.append,
            title=exam.title,
            demo=exam.demo,
            automatic=self._automatic,
            aside=kiosk.window.stepped_aside,
        )
        # the start page may load before the system guards' step decides (below)
        self._early_page = self.link is None and system_check.passes_without_asking()
        self.operations: list[Operation] = [
            DisplayIsolationOperation(self.display, exam.settings, journal.append),
            system_check,
            self.system_guards,
            *_service_steps(self.link, journal.append),
            proctoring,
            KioskOperation(kiosk, journal.append),
            desktop_guards,
        ]
        self.sequence = OperationSequence(self.operations, self._progress)
        self._watch_display()

    def _prompt_prohibited_apps(self, check: Any, findings: Any) -> bool:
        """The pre-exam dialog, the kiosk's starting state stepped aside (it stays on top)."""
        from lockdown.ui.prohibited_dialog import prompt_prohibited_apps

        with self.kiosk.window.stepped_aside():
            return prompt_prohibited_apps(check, findings)

    def _progress(self, progress: Progress) -> None:
        # the last step that may still refuse the start: the machine's policy, or with a
        # proctoring service the session it grants (a second live session is refused there)
        allowed_after = "proctoring" if self.link is not None else "system_guards"
        performed = progress.phase is Phase.PERFORMED and progress.outcome is Outcome.SUCCESS
        if not self.sequence.cancelled and (
            (performed and progress.name == allowed_after)
            or (performed and progress.name in EARLY_PAGE_AFTER and self._prechecks_let_start())
        ):
            # this session may take the exam: the start page loads underneath the
            # starting state while the rest starts (never for a refused start)
            self.kiosk.preload()
        _progress(progress)

    def _prechecks_let_start(self) -> bool:
        """Without a service and without a check screen, the machine's policy is all that
        may refuse the start once the display step succeeded: when the pre-checks are back
        and find nothing it would refuse or ask about, the page need not wait for the
        system guards' step (which then decides on the same findings). A later failure of
        our own machinery (a process watcher that cannot start, which has a polling
        fallback; the recorders; the desktop guards) may still stop a start whose page
        loaded, as it always could after the system guards' step."""
        if not self._early_page or self.prefetch is None:
            return False
        found = self.prefetch.ready()
        return found is not None and found.let_start(self.exam.settings)

    # -- the display lost (``xkill`` of the kiosk) --------------------------------------

    def _watch_display(self) -> None:
        """End the exam through :meth:`_display_lost` when the X connection dies.

        Qt's xcb plugin only warns and quits the event loops; the first Xlib call on its
        dead connection (Qt's GL integration uses Xlib) then runs Xlib's I/O error
        handler, which calls ``exit(1)``. That handler is replaced for the session.
        (Qt's message handler is not used: PySide6 6.12 miscounts the references of the
        handler it hands back.)
        """
        import threading

        from lockdown import build

        self._lost = threading.Event()
        self._uninstall_xio: Callable[[], None] | None = None
        exam_display = self.display.display if self.display is not None else None
        if exam_display is not None:
            # the exam's own server died: Qt's xcb plugin may not notice; its helper does
            exam_display.on_server_exit = lambda _status: self._display_lost("exam_server_exited")
        if self.platform.name != "x11":
            return
        if build.dev_switch("KEEP_XIO_EXIT"):
            # development builds only: the positive control of the tests (Xlib exits)
            self.journal.append(Event("session.dev_switch", {"name": "KEEP_XIO_EXIT"}))
            return
        from lockdown.platform.x11_shared import install_io_error_handler

        self._uninstall_xio = install_io_error_handler(lambda: self._display_lost("xlib_io_error"))

    def _unwatch_display(self) -> None:
        """Put Xlib's handler back (later sessions of this process install their own)."""
        if self._uninstall_xio is not None:
            self._uninstall_xio()
            self._uninstall_xio = None

    def _display_lost(self, how: str) -> None:
        """The X display connection died: journal, revert what lies outside this process,
        close the journal and exit with :data:`DISPLAY_LOST_EXIT`. Never returns.

        The kiosk and the desktop guards cannot be reverted through a dead connection;
        the XKB server keys they changed are put back from this run's restore records
        (a record whose undo fails stays for the next start). The recording winds down
        and the system guards stop, each within :data:`WIND_DOWN_DEADLINE_S`.
        """
        import threading

        from lockdown.guards.restore import undo_own

        if self._lost.is_set():
            threading.Event().wait()  # the first caller exits the process
        self._lost.set()
        log.init.error("The X display connection was lost (%s); ending the exam", how)
        journal = self.journal
        journal.append(Event("session.display_lost", {"how": how}))
        journal.append(Event("kiosk.ended", {"reason": "display_lost"}))
        outcome = Outcome.SUCCESS
        try:
            undo_own(self.paths.restore, journal.append, self.platform)
        except Exception:
            log.init.exception("Cannot undo this run's system changes")
            outcome = Outcome.FAILED
        for op in reversed(self.operations):
            if op.name not in ("proctoring", "system_guards"):
                continue
            for step in (getattr(op, "wind_down", None), op.revert):
                if not callable(step):
                    continue
                done = _in_a_thread(step, f"display-lost-{op.name}", WIND_DOWN_DEADLINE_S)
                if done is not Outcome.SUCCESS:
                    outcome = Outcome.FAILED
        journal.append(
            Event(
                "session.ended",
                {"reason": "display_lost", "revert": outcome.value, "partial": True},
            )
        )
        journal.close()
        log.init.info("Session finished (display lost)")
        os._exit(DISPLAY_LOST_EXIT)

    def _second_instance(self, target: str) -> None:
        self.journal.append(Event("kiosk.second_instance_refused", {"target": target[:2048]}))
        self.kiosk.show_notice("notice.second_instance")

    def _refused(self, outcome: Outcome) -> int:
        """The start did not succeed: revert, journal, say why; exit code 1."""
        from lockdown.texts import text

        self.sequence.revert()
        # the starting window is up from the start: gone before the candidate is told why
        self.kiosk.close()
        message = _why_not_started(self.operations)
        if self._terminating:
            reason = f"start cancelled ({self._reason})"
        else:
            reason = f"start {outcome.value}"
        self.journal.append(
            Event(
                "session.ended",
                {"reason": reason, "message_id": message[0] if message else None},
            )
        )
        shown = text(message[0], **message[1]) if message else text("session.not_started")
        print(f"lockdown: {shown}", file=sys.stderr)
        if not self._terminating:
            self._show_message(shown)
        return 1

    # -- 2. run -------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: object) -> None:
        reason = f"signal {signal.Signals(signum).name}"

        def act() -> None:
            self._terminating = True
            self._reason = self._reason or reason
            if self._running:
                self.kiosk.end(reason)
                return
            # still starting: no further operation starts, and an open dialog closes
            from PySide6.QtWidgets import QApplication, QDialog

            self.sequence.cancel()
            while isinstance(modal := QApplication.activeModalWidget(), QDialog):
                modal.reject()
                if QApplication.activeModalWidget() is modal:
                    break

        self.bridge.call(act)

    def _watch_upload(self) -> None:
        """Tell the candidate once when the recording cannot be sent (the uploader is offline)."""
        from lockdown.upload.uploader import Health

        health = self.link.health if self.link is not None else Health.OK
        if health is Health.OFFLINE and not self._told_offline:
            self.kiosk.show_notice("upload.offline")
        self._told_offline = health is Health.OFFLINE

    def _ended(self, reason: str) -> None:
        self._reason = self._reason or reason
        self._loop.quit()

    # -- 3. wind down -------------------------------------------------------------------

    def _wind_down(self) -> Outcome:
        """Each operation finishes its work off the GUI thread, the candidate told what
        happens; past its deadline the revert goes on regardless (journalled)."""
        from lockdown.texts import text

        result = Outcome.SUCCESS
        ops = {op.name: op for op in self.operations}
        for name, step in self.sequence.wind_down_steps():
            op = ops.get(name)
            deadline = float(getattr(op, "wind_down_deadline_s", WIND_DOWN_DEADLINE_S))
            message = text(WIND_DOWN_TEXTS.get(name, "session.finishing"), seconds=int(deadline))
            self.kiosk.show_progress(message)
            progress_text = getattr(op, "progress_text", None)
            tick = functools.partial(self._show_progress, progress_text) if progress_text else None
            finished, outcome = _off_the_gui_thread(step, f"wind-down-{name}", deadline, tick)
            if not finished:
                log.init.error("%s did not wind down within %.0f s", name, deadline)
                self.journal.append(
                    Event("session.wind_down_timeout", {"operation": name, "seconds": deadline})
                )
                result = Outcome.FAILED
            elif outcome is not Outcome.SUCCESS and result is Outcome.SUCCESS:
                result = outcome
            left_text = getattr(op, "left_text", None)
            if finished and left_text is not None and (left := left_text()):
                self.kiosk.show_progress(left)  # what stays for later, read before unlocking
                _pause_on_gui_thread(LEFT_FOR_LATER_S)
        return result

    def _show_progress(self, progress_text: Callable[[], str]) -> None:
        self.kiosk.show_progress(progress_text())

    # -- 4. revert, and the whole -------------------------------------------------------

    def _finish(self) -> None:
        from lockdown.texts import text

        log.init.info("Ending the session (%s); reverting", self._reason)
        wound_down = self._wind_down()
        self.kiosk.show_progress(text("session.unlocking"))
        outcome = self.sequence.revert()
        if wound_down is not Outcome.SUCCESS and outcome is Outcome.SUCCESS:
            outcome = wound_down
        self.journal.append(
            Event("session.ended", {"reason": self._reason, "revert": outcome.value})
        )
        if outcome is not Outcome.SUCCESS:
            self.code = 1

    def run(self, journey: Callable[[Kiosk], None] | None = None) -> int:
        from PySide6.QtCore import QEvent, QEventLoop, QTimer

        self._automatic = journey is not None  # the headless demo: no one to press Continue
        self._open()
        # The exam runs in a loop of its own, not in QApplication.exec(): quitting the
        # application for good would also stop every later timer in this process.
        self._loop = QEventLoop()
        self.kiosk.ended.connect(self._ended)
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        ticker = QTimer()
        ticker.timeout.connect(lambda: None)  # lets Python run its signal handlers
        ticker.start(200)
        upload_watch = QTimer()
        if self.link is not None:
            upload_watch.timeout.connect(self._watch_upload)
            upload_watch.start(1000)
        performed = False
        try:
            outcome = self.sequence.perform()
            if outcome is not Outcome.SUCCESS or self._terminating:
                return self._refused(outcome)
            performed = True
            log.phase("guards")
            self.kiosk.reveal()  # every guard is on: the exam shows and takes input
            self._running = True
            for warning in [*self.system_guards.warnings, *self.desktop_guards.warnings]:
                self.kiosk.show_notice(warning)
            if journey is not None:
                journey(self.kiosk)
            if not self.kiosk.has_ended:
                self._loop.exec()
        except Exception as exc:
            if not performed:
                raise
            # a failing journey or notice must never keep the candidate locked in
            log.init.exception("The session failed; ending it")
            self._reason = self._reason or f"error {type(exc).__name__}"
            self.code = 1
        finally:
            if performed:
                try:
                    self._finish()
                except Exception:
                    log.init.exception("Ending the session failed; reverting regardless")
                    self.sequence.revert()
                    self.code = 1
            self.kiosk.close()  # whatever happened: the starting window is gone too
            ticker.stop()
            upload_watch.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self.server is not None:
                self.server.close()
            self._unwatch_display()
            close_platform = getattr(self.platform, "close", None)  # the X11 connection
            if close_platform is not None:
                close_platform()
            if self.gate is not None:
                self.gate.set_report(None)
            self.journal.close()
            self.app.processEvents()
            # the kiosk's widgets were deleteLater()'d inside the exam's loop: free them now
            self.app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        log.init.info("Session finished")
        return self.code


def _in_a_thread(step: Callable[[], Outcome], name: str, deadline: float) -> Outcome:
    """Run ``step`` in a plain thread (no Qt); FAILED past ``deadline`` or on an error."""
    import threading

    result: list[Outcome] = []

    def run() -> None:
        try:
            result.append(step())
        except Exception:
            log.init.exception("%s failed", name)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(deadline)
    return result[0] if result else Outcome.FAILED


def _pause_on_gui_thread(seconds: float) -> None:
    """Let the Qt loop run for ``seconds`` (a message stays readable)."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def _off_the_gui_thread(
    step: Callable[[], Outcome],
    name: str,
    deadline_s: float,
    tick: Callable[[], None] | None = None,
) -> tuple[bool, Outcome]:
    """Run ``step`` in a thread while the Qt loop goes on; (finished, outcome).

    ``tick`` runs on the GUI thread every half second meanwhile (progress). After
    ``deadline_s`` the caller goes on without it (the thread is a daemon).
    """
    import threading

    from PySide6.QtCore import QEventLoop, QTimer

    outcome: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcome.append(step()), name=name, daemon=True)
    worker.start()
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: None if worker.is_alive() else loop.quit())
    poll.start(50)
    ticker = QTimer()
    if tick is not None:
        ticker.timeout.connect(tick)
        ticker.start(500)
    deadline = QTimer()
    deadline.setSingleShot(True)
    deadline.timeout.connect(loop.quit)
    deadline.start(int(deadline_s * 1000))
    if worker.is_alive():
        loop.exec()
    poll.stop()
    ticker.stop()
    deadline.stop()
    if worker.is_alive():
        return False, Outcome.FAILED
    return True, outcome[0] if outcome else Outcome.FAILED


def _previous_head(journals: Path, current: Path) -> dict[str, Any] | None:
    """The head of the most recent earlier journal: the chain the new one continues."""
    from lockdown.events import CLOSED_RECORD

    earlier = sorted(p for p in journals.glob("session-*.jsonl") if p != current)
    if not earlier:
        return None
    last_line = b""
    try:
        with earlier[-1].open("rb") as fh:
            for line in fh:
                if line.strip():
                    last_line = line
        last = json.loads(last_line) if last_line else None
    except (OSError, ValueError):
        return {"file": earlier[-1].name, "unreadable": True}
    if not isinstance(last, dict):
        return {"file": earlier[-1].name, "records": 0}
    return {
        "file": earlier[-1].name,
        "records": int(last.get("seq", -1)) + 1,
        "hash": last.get("hash"),
        "mac": last.get("mac"),
        "closed": last.get("type") == CLOSED_RECORD,
    }


def _open_journal(paths: Paths, settings: Mapping[str, Any]) -> Journal:
    """The session's journal, keyed when the organisation names a recipient.

    Keyed: a MAC key made in memory HMAC-chains every record; it is stored only wrapped
    for the recipient in the first record, which also names the head of the previous
    journal, so the history stays linked across a crash (whose keys are gone).
    """
    import uuid

    from lockdown.upload import crypto

    path = paths.new_journal()
    recipient_text = _recipient_text(settings)
    if not recipient_text:
        return Journal.open(path)
    recipient = crypto.parse_recipient(recipient_text)
    mac_key = crypto.new_key()
    chain = uuid.uuid4().hex
    keys = {
        "chain": chain,
        "recipient": crypto.recipient_id(recipient),
        "mac_key": crypto.wrap(mac_key, recipient, label=f"lockdown-journal/{chain}").to_json(),
        "previous": _previous_head(paths.journals, path),
    }
    return Journal.open(path, mac_key=mac_key, keys=keys)


def _started_record(exam: LoadedExam, facts: Mapping[str, Any]) -> dict[str, Any]:
    """What ``session.started`` says: the exam, the build, where every setting came from."""
    from lockdown import build
    from lockdown.config import examkeys

    keys = exam.keys
    return {
        "origin": exam.origin,
        "kind": exam.kind,
        "title": exam.title,
        "version": __version__,
        **build.current().as_record(),
        "organisation": exam.organisation.as_record(),
        "settings_hash": keys.settings_hash if keys else examkeys.settings_hash(exam.settings),
        "isolation": keys.mode if keys else examkeys.ISOLATION_MODES[0],
        "accessibility": bool(exam.settings["accessibility.assistive_technology"]),
        **facts,
    }


def _start_facts(args: argparse.Namespace, debugging: DebugState) -> dict[str, Any]:
    """Facts of the start that the journal keeps: overrides honoured, debugging denied."""
    found = getattr(args, "overrides", [])
    return {
        "overrides": [o.describe() for o in found],
        "debugging": debugging.as_record(),
    }


class ProctoringStep:
    """Records the streams the exam switches on into an encrypted spool of the session.

    The capture libraries are imported only when the exam records something, so an exam
    without proctoring starts as fast as the browser alone. The session key is made in
    memory and stored only wrapped for the recipient (``proctoring.recipient_key``): no
    recipient, no recording.
    """

    name = "proctoring"

    def __init__(
        self,
        settings: Mapping[str, Any],
        report: EventSink,
        paths: Paths,
        session: str,
        *,
        link: ServiceLink | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._report = report
        self._folder = paths.spool / session
        self._link = link
        self._request = dict(request or {})
        self._operation: Any = None
        self._spool: Any = None
        #: earlier sessions' spools, reopened (repaired, journalled) and kept for upload
        self.earlier: list[Any] = []
        #: why the start stopped, for the candidate (a text id)
        self.message_id: str | None = None

    def _enabled(self) -> bool:
        return any(
            self._settings[key]
            for key in ("proctoring.camera", "proctoring.microphone", "proctoring.screen")
        )

    def _reopen_earlier(self) -> None:
        """Reopen the spools earlier sessions left (a crash never closed them), keyless.

        Each is repaired and journalled (``spool.recovered``) in this session's journal
        and kept open (locked) for the uploader; one that cannot be opened is journalled
        (``spool.error``) and left as it is.
        """
        root = self._folder.parent
        if not any(root.glob("*/spool.json")):  # the usual start: no spool code imported
            return
        from lockdown.upload.base import SpoolError
        from lockdown.upload.spool import Spool, earlier_spools

        for folder in earlier_spools(root, current=self._folder):
            try:
                self.earlier.append(Spool.open_earlier(folder, self._report))
            except SpoolError:
                continue  # journalled as spool.error
            except Exception as exc:  # an earlier session's leftovers never stop this exam
                log.upload.exception("Reopening the earlier spool %s", folder)
                self._report(Event("spool.error", {"folder": str(folder), "error": repr(exc)}))

    def perform(self) -> Outcome:
        self._reopen_earlier()
        if self._link is not None:
            self._link.drain_earlier(self.earlier)
        if not self._enabled():
            log.capture.info("This exam records nothing")
            return Outcome.SUCCESS
        from lockdown.capture.operation import ProctoringOperation
        from lockdown.upload import crypto
        from lockdown.upload.base import SpoolError
        from lockdown.upload.spool import Spool

        recipient_text = _recipient_text(self._settings)
        if not recipient_text:
            # No recipient, no recording: never a fallback to a key kept in clear.
            log.capture.error("This exam records, but no recipient key is set")
            self._report(Event("proctoring.refused", {"reason": "no recipient key"}))
            self.message_id = "proctoring.no_recipient"
            return Outcome.FAILED
        try:
            self._spool = Spool.open(
                self._folder,
                report=self._report,
                max_bytes=self._settings["proctoring.spool_max_mb"] << 20,
                recipient=crypto.parse_recipient(recipient_text),
            )
        except SpoolError:
            return Outcome.FAILED
        if self._link is not None:
            from lockdown.session.state import Connection

            connected = self._link.create_session(self._folder, self._request)
            if connected.state is not Connection.CONNECTED:
                self.message_id = connected.text_id
                self._spool.close()
                self._spool = None
                return Outcome.FAILED
        self._operation = ProctoringOperation(self._settings, self._report, self._spool)
        outcome: Outcome = self._operation.perform()
        if outcome is Outcome.SUCCESS and self._link is not None:
            self._link.start_uploading(self._spool)
        return outcome

    def wind_down(self) -> Outcome:
        """Stop the recorders and store their last segments (idempotent).

        Called when the exam ends, before the sequence reverts (off the GUI thread): the
        kiosk and every guard are still up, so the recording ends on the locked exam,
        never on a desktop.
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
        outcome = self.wind_down()
        if self._spool is not None:
            self._spool.close()
            log.capture.info("Recording kept in %s", self._folder)
            self._spool = None
        earlier, self.earlier = self.earlier, []
        for spool in earlier:
            spool.close()
        return outcome


def _recipient_text(settings: Mapping[str, Any]) -> str:
    """Who the session's keys are wrapped for: the proctoring service's recipient when the
    exam names a service (it decrypts and verifies), else the organisation's."""
    service: str = settings.get("service.recipient_key", "") if settings["service.url"] else ""
    recipient: str = settings["proctoring.recipient_key"]
    return service or recipient


def _service_link(exam: LoadedExam, journal: Journal, paths: Paths) -> ServiceLink | None:
    """The link to the proctoring service when the exam names one (``service.url``)."""
    if not exam.settings["service.url"]:
        return None
    from lockdown.session.link import ServiceLink

    return ServiceLink(
        exam.settings,
        journal.append,
        spool_root=paths.spool,
        journal=journal.path,
        organisation_values=exam.organisation.values,
    )


def _service_steps(link: ServiceLink | None, report: EventSink) -> list[Operation]:
    if link is None:
        return []
    from lockdown.session.link import ServiceStep

    return [ServiceStep(link, report)]


def _session_request(exam: LoadedExam) -> dict[str, Any]:
    """What ``POST /sessions`` says about this run: build, settings hash, isolation mode."""
    from lockdown import build
    from lockdown.config import examkeys

    current = build.current()
    keys = exam.keys
    return {
        "client_version": __version__,
        "build": current.kind,
        "build_identity": current.identity,
        "settings_hash": keys.settings_hash if keys else examkeys.settings_hash(exam.settings),
        "isolation_mode": keys.mode if keys else examkeys.ISOLATION_MODES[0],
    }


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
    from functools import partial

    from lockdown.guards.display_isolation import check_exam, choose_display
    from lockdown.guards.prefetch import PrecheckPrefetch
    from lockdown.launch import hand_over, load_exam
    from lockdown.texts import text
    from lockdown.ui.dialogs import seb_password_prompt
    from lockdown.ui.display import require_display
    from lockdown.ui.launchwindow import load_with_feedback

    log.phase("imports")
    debugging = system_trust().deny_debugging()  # before the exam display's cookie exists
    try:
        organisation = choose_organisation(getattr(args, "organisation", None))
        display = choose_display(
            str(organisation.values.get("guards.display_isolation", "preferred"))
        )
        require_display()  # before Qt: without a display its xcb plugin aborts the process
        assistive = bool(organisation.values.get("accessibility.assistive_technology", False))
        engine = prepare_engine(os.environ, euid=_euid(), assistive=assistive)
        accessibility(organisation.values, os.environ)
        app = qt_application()
        answer = hand_over(args.target)
        if answer is not None:
            log.init.warning("Another session is running: %s", answer)
            raise SecondInstance(text("instance.refused"))
        exam = load_with_feedback(
            args.target,
            organisation,
            password=seb_password_prompt(),
            load=partial(load_exam, mode=display.mode),
        )
        check_exam(display, exam.settings)
        log.phase("configuration")
    except SecondInstance:
        raise
    except UserError as exc:
        record_refusal(args.paths, args.target, exc)
        raise
    del app
    # the pre-exam checks run from here on, beside the window and the web engine's start
    prefetch = PrecheckPrefetch(exam.settings)
    facts = _start_facts(args, debugging)
    return run_session(
        exam, args.paths, engine=engine, facts=facts, display=display, prefetch=prefetch
    )


def main_demo(args: argparse.Namespace) -> int:
    """``lockdown demo``: the bundled demo exam, headless with screenshots when no display."""
    from lockdown.ui import headless

    args.debugging = system_trust().deny_debugging()
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
        accessibility({}, os.environ)
        return _demo(args, engine, automatic=xvfb is not None or bool(args.screenshots))
    finally:
        if xvfb is not None:
            xvfb.stop()


def _euid() -> int:
    euid: int = getattr(os, "geteuid", lambda: 1)()
    return euid


def _demo(args: argparse.Namespace, engine: EnginePlan, *, automatic: bool) -> int:
    from lockdown.session import embedded
    from lockdown.ui.demo import DemoSite, Journey

    site = DemoSite().start()
    service: embedded.EmbeddedService | None = None
    try:
        folder = (
            Path(args.screenshots)
            if args.screenshots
            else Path(tempfile.mkdtemp(prefix="lockdown-demo-"))
        )
        folder.mkdir(parents=True, exist_ok=True)
        if embedded.available():
            # the loop of the real thing: the demo exam is the service's, proctored through it
            service = embedded.EmbeddedService(folder / "service-data").start()
            exam = _service_demo_exam(site, service)
            private = None
        else:
            log.init.info("No proctoring service installed: the demo records locally only")
            exam, private = _local_demo_exam(site, folder)
        journey: Callable[[Any], None] | None = None
        if automatic:
            journey = Journey(site, folder).attach
        before = set(args.paths.spool.glob("session-*"))
        qt_application()
        code = run_session(
            exam,
            args.paths,
            engine=engine,
            facts=_start_facts(args, args.debugging),
            journey=journey,
        )
        shots = sorted(folder.glob("*.png"))
        if shots:
            print(f"Demo screenshots ({len(shots)}) in {folder}")
        for spool in sorted(set(args.paths.spool.glob("session-*")) - before):
            _print_demo_recording(spool, folder, private, service)
        return code
    finally:
        if service is not None:
            service.stop()
        site.stop()


def _local_demo_exam(site: Any, folder: Path) -> tuple[LoadedExam, Path]:
    """The demo exam built in code, sealed for a recipient key of the demo's own."""
    from lockdown.ui.demo import demo_exam
    from lockdown.upload import crypto

    recipient = folder / "demo-recipient"
    for old in (recipient.with_suffix(".key"), recipient.with_suffix(".pub")):
        old.unlink(missing_ok=True)
    private, _, public = crypto.generate_recipient(recipient)
    return demo_exam(site, recipient_key=public), private


def _service_demo_exam(site: Any, service: Any) -> LoadedExam:
    """The demo exam created at the embedded service, opened from a candidate's link.

    The service signs the exam configuration; the demo trusts the service's key (read from
    the service's own data folder), downloads the configuration through the launch link
    like a candidate's browser would, and layers the demo's site rules under it.
    """
    from lockdown.config.settings import Organisation, convert
    from lockdown.launch import load_exam
    from lockdown.ui.demo import demo_values

    service.run(
        "exam",
        "create",
        "--id",
        "demo",
        "--title",
        "Lockdown demo exam",
        "--streams",
        "camera,screen",
        "--start-url",
        site.exam_url + "/",
        "--url",
        service.url,
    )
    link = service.run(
        "candidates",
        "add",
        "--exam",
        "demo",
        "--id",
        "demo-candidate",
        "--name",
        "Demo Candidate",
        "--group",
        "demo",
        "--url",
        service.url,
    ).strip()
    log.init.info("Demo candidate's launch link: %s", link.split("?")[0])
    trusted = convert("config.trusted_keys", [service.token_key()], origin="the demo")
    organisation = Organisation(values={**demo_values(site), "config.trusted_keys": trusted})
    exam = load_exam(link, organisation, password=lambda _tries: None)
    return dataclasses.replace(exam, demo=True)


def _print_demo_recording(spool: Path, folder: Path, private: Path | None, service: Any) -> None:
    """Where the demo's recording went and the one command that turns it into WebM files."""
    from lockdown.session.state import SessionRecord

    record = SessionRecord.load(spool) if service is not None else None
    if record is not None and record.session_id:
        print(
            f"Demo recording in {spool}, sent to the demo's service as session {record.session_id}"
        )
        print(
            "Watch it: lockdown-server export "
            f"{shlex.quote(record.session_id)} --out {shlex.quote(str(folder / 'export'))} "
            f"--data {shlex.quote(str(service.data))}"
        )
        return
    print(f"Demo recording in {spool}, sealed for {private}")
    print(
        "Watch it: lockdown spool export "
        f"{shlex.quote(str(spool))} --key {shlex.quote(str(private))} "
        f"--out {shlex.quote(str(folder / 'export'))}"
    )
