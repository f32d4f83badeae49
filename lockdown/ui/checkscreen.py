"""The check screen: the system check's steps with status icons, a live camera preview
with a brightness bar, a microphone level meter, remedies beside failures, Retry per
step, and Continue only when every blocking step passes.

It runs the same checks as ``lockdown check`` (:func:`lockdown.checks.cli.all_checks`),
one at a time: a step that must ask Qt (``main_thread``) on the GUI thread, the others on
a worker thread each, within their time limits (:func:`lockdown.checks.runner.run_check`).
Worker threads never touch a widget and never emit a Qt signal: they leave results, the
latest camera frame and the latest microphone level in a :class:`Mailbox`, which a timer
on the GUI thread empties every 50 ms.

Shown by ``lockdown check --gui`` and, before each proctored exam, by
:class:`SystemCheckOperation` (the exam starts only after Continue). Every control is a
button reachable with Tab; Enter presses Continue when it is enabled, Escape leaves.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QImage, QKeyEvent, QPixmap
from PySide6.QtWidgets import (
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from lockdown import log
from lockdown.checks.base import Check, CheckContext, Status
from lockdown.checks.devices import LEVEL, PREVIEW, physical_camera
from lockdown.checks.runner import StepOutcome, run_check
from lockdown.lifecycle.base import Outcome
from lockdown.texts import text

POLL_MS: Final = 50
PREVIEW_SIZE: Final = (320, 240)
#: status -> (symbol, colour) of the round icon
ICONS: Final = {
    "pass": ("✓", "#1e7d32"),
    "warn": ("!", "#b26a00"),
    "fail": ("✗", "#c62828"),
    "skip": ("–", "#757575"),
    "running": ("…", "#1565c0"),
    "waiting": ("·", "#9e9e9e"),
}
LEVEL_FLOOR_DBFS: Final = -60
LEVEL_FALL_PER_POLL: Final = 1.5


class Mailbox:
    """What worker threads leave for the GUI thread: step results, the latest frame, the
    latest level. Thread-safe; holds only the newest frame and level."""

    def __init__(self) -> None:
        self.results: queue.SimpleQueue[tuple[int, StepOutcome]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._frame: tuple[Any, float, bool] | None = None
        self._level: float | None = None

    def frame(self, frame: Any, mean: float, dark: bool) -> None:
        with self._lock:
            self._frame = (frame, mean, dark)

    def level(self, dbfs: float) -> None:
        with self._lock:
            self._level = dbfs

    def take(self) -> tuple[tuple[Any, float, bool] | None, float | None]:
        with self._lock:
            frame, level = self._frame, self._level
            self._frame = self._level = None
        return frame, level


class StepRow:
    """The widgets of one step in the grid."""

    def __init__(
        self, grid: QGridLayout, row: int, check: Check, retry: Callable[[], None]
    ) -> None:
        self.check = check
        self.icon = QLabel()
        self.icon.setFixedSize(24, 24)
        self.icon.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title = QLabel(f"<b>{text(check.title_id)}</b>")
        self.status = QLabel()
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.remedy = QLabel()
        self.remedy.setWordWrap(True)
        self.remedy.setStyleSheet("color: #5d4037;")
        self.retry = QPushButton(text("checkscreen.retry"))
        self.retry.setAccessibleName(f"{text('checkscreen.retry')}: {text(check.title_id)}")
        self.retry.clicked.connect(retry)
        box = QVBoxLayout()
        box.setSpacing(2)
        box.addWidget(self.message)
        box.addWidget(self.remedy)
        grid.addWidget(self.icon, row, 0, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.title, row, 1, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.status, row, 2, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(box, row, 3, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.retry, row, 4, Qt.AlignmentFlag.AlignTop)
        self.show_state("waiting")

    def show_state(self, state: str, outcome: StepOutcome | None = None) -> None:
        symbol, colour = ICONS[state]
        self.icon.setText(symbol)
        self.icon.setStyleSheet(
            f"background: {colour}; color: white; border-radius: 12px; font-weight: bold;"
        )
        self.icon.setAccessibleName(text(f"checkscreen.status.{state}"))
        self.status.setText(text(f"checkscreen.status.{state}"))
        if outcome is None:
            self.message.setText("")
            self.remedy.setVisible(False)
            self.retry.setVisible(False)
            return
        result = outcome.result
        self.message.setText(text(result.message_id, **result.values))
        remedy = (
            text(result.remedy_id, **result.values)
            if result.remedy_id and result.status in (Status.FAIL, Status.WARN)
            else ""
        )
        self.remedy.setText(remedy)
        self.remedy.setVisible(bool(remedy))
        self.retry.setVisible(result.status in (Status.FAIL, Status.WARN))


class CheckScreen(QWidget):
    """The steps, the preview and the meter; ``finished(True)`` on Continue, ``(False)``
    when the candidate leaves.

    Args:
        ctx: the check's context (its ``shared`` gets the preview and level listeners).
        checks: the steps, in order.
        title: the exam's title, if any.
        finished: called once with True (Continue) or False (leave, window closed).
    """

    def __init__(
        self,
        ctx: CheckContext,
        checks: Sequence[Check],
        *,
        title: str | None = None,
        finished: Callable[[bool], None] | None = None,
    ) -> None:
        super().__init__()
        self.ctx = ctx
        self.checks = list(checks)
        self.outcomes: list[StepOutcome | None] = [None] * len(self.checks)
        self._finished_cb = finished
        self._done = False
        self._running: int | None = None
        self._queue: list[int] = []
        self.mailbox = Mailbox()
        ctx.shared[PREVIEW] = self.mailbox.frame
        ctx.shared[LEVEL] = self.mailbox.level
        self._limit = float(ctx.settings["checks.time_limit"])
        self.setWindowTitle(text("checkscreen.title"))
        self.resize(1100, 760)

        heading = QLabel(f"<h2>{text('checkscreen.title')}</h2>")
        intro = QLabel(text("checkscreen.intro") + (f" — {title}" if title else ""))
        grid_host = QWidget()
        grid = QGridLayout(grid_host)
        grid.setColumnStretch(3, 1)
        self.rows = [
            StepRow(grid, index, check, self._retry_of(index))
            for index, check in enumerate(self.checks)
        ]
        grid.setRowStretch(len(self.checks), 1)  # rows stay at the top
        scroll = QScrollArea()
        scroll.setWidget(grid_host)
        scroll.setWidgetResizable(True)

        self.preview = QLabel(text("checkscreen.no_preview"))
        self.preview.setFixedSize(*PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet("background: #202020; color: #e0e0e0;")
        self.preview.setAccessibleName(text("checkscreen.preview"))
        spec = str(ctx.settings["proctoring.camera_source"])
        self.pattern_note = QLabel(
            text("checkscreen.pattern" if spec.strip() == "pattern" else "checkscreen.video_file")
        )
        self.pattern_note.setStyleSheet("color: #b26a00; font-weight: bold;")
        self.pattern_note.setVisible("camera" in ctx.streams and not physical_camera(spec))
        self.brightness = QProgressBar()
        self.brightness.setRange(0, 255)
        self.brightness.setValue(0)
        self.brightness.setFormat("%v")
        self.brightness.setAccessibleName(text("checkscreen.brightness"))
        self.level = QProgressBar()
        self.level.setRange(LEVEL_FLOOR_DBFS, 0)
        self.level.setValue(LEVEL_FLOOR_DBFS)
        self.level.setFormat("%v dBFS")
        self.level.setAccessibleName(text("checkscreen.level"))
        #: the loudest level seen (dBFS)
        self.level_peak = -120.0
        sentence = QLabel(text("check.microphone.sentence"))
        sentence.setWordWrap(True)
        side = QVBoxLayout()
        side.addWidget(QLabel(f"<b>{text('checkscreen.preview')}</b>"))
        side.addWidget(self.preview)
        side.addWidget(self.pattern_note)
        side.addWidget(QLabel(text("checkscreen.brightness")))
        side.addWidget(self.brightness)
        if "microphone" in ctx.streams:
            side.addSpacing(12)
            side.addWidget(QLabel(f"<b>{text('checkscreen.level')}</b>"))
            side.addWidget(self.level)
            side.addWidget(sentence)
        side.addStretch(1)
        middle = QHBoxLayout()
        middle.addWidget(scroll, 1)
        middle.addLayout(side)

        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.leave = QPushButton(text("checkscreen.cancel"))
        self.leave.clicked.connect(lambda: self._finish(False))
        self.continue_button = QPushButton(text("checkscreen.continue"))
        self.continue_button.setDefault(True)
        self.continue_button.setEnabled(False)
        self.continue_button.clicked.connect(lambda: self._finish(True))
        bottom = QHBoxLayout()
        bottom.addWidget(self.summary, 1)
        bottom.addWidget(self.leave)
        bottom.addWidget(self.continue_button)

        layout = QVBoxLayout(self)
        layout.addWidget(heading)
        layout.addWidget(intro)
        layout.addLayout(middle, 1)
        layout.addLayout(bottom)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._poll)
        self._timer.start(POLL_MS)

    # -- running the steps ----------------------------------------------------------------

    def _retry_of(self, index: int) -> Callable[[], None]:
        return lambda: self.retry(index)

    def start(self) -> None:
        """Run every step in order."""
        self._queue = list(range(len(self.checks)))
        self._next()

    def retry(self, index: int) -> None:
        """Run step ``index`` again (after the steps already queued)."""
        if index == self._running or index in self._queue:
            return
        self._queue.append(index)
        self.rows[index].show_state("waiting")
        self.outcomes[index] = None
        self._update_summary()
        if self._running is None:
            self._next()

    @property
    def busy(self) -> bool:
        return self._running is not None or bool(self._queue)

    def _next(self) -> None:
        if self._running is not None or not self._queue or self._done:
            self._update_summary()
            return
        index = self._queue.pop(0)
        self._running = index
        check = self.checks[index]
        self.rows[index].show_state("running")
        self._update_summary()
        if check.main_thread:
            # it asks Qt: run on this thread, after this row has been painted
            QTimer.singleShot(0, lambda: self.mailbox.results.put((index, self._run(check))))
            return
        threading.Thread(
            target=lambda: self.mailbox.results.put((index, self._run(check))),
            name=f"checkscreen-{check.id}",
            daemon=True,
        ).start()

    def _run(self, check: Check) -> StepOutcome:
        return run_check(check, self.ctx, self._limit)

    def _poll(self) -> None:
        frame, level = self.mailbox.take()
        if frame is not None:
            self._show_frame(*frame)
        # the meter falls back slowly (30 dB/s), so a syllable stays visible
        shown = max(float(LEVEL_FLOOR_DBFS), self.level.value() - LEVEL_FALL_PER_POLL)
        if level is not None:
            shown = max(shown, min(0.0, level))
            self.level_peak = max(self.level_peak, level)
        self.level.setValue(round(shown))
        while True:
            try:
                index, outcome = self.mailbox.results.get_nowait()
            except queue.Empty:
                break
            self._step_done(index, outcome)

    def _show_frame(self, frame: Any, mean: float, dark: bool) -> None:
        height, width = int(frame.shape[0]), int(frame.shape[1])
        image = QImage(frame.tobytes(), width, height, 3 * width, QImage.Format.Format_BGR888)
        pixmap = QPixmap.fromImage(image).scaled(
            *PREVIEW_SIZE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.preview.setPixmap(pixmap)
        self.brightness.setValue(round(mean))
        colour = "#c62828" if dark else "#1e7d32"
        self.brightness.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")

    def _step_done(self, index: int, outcome: StepOutcome) -> None:
        self.outcomes[index] = outcome
        self.ctx.shared.setdefault("outcomes", {})[outcome.check_id] = outcome
        self.rows[index].show_state(outcome.result.status.value, outcome)
        log.checks.info("Check screen: %s %s", outcome.check_id, outcome.result.status.value)
        self._running = None
        self._next()

    # -- the verdict ------------------------------------------------------------------------

    @property
    def passed(self) -> bool:
        """Every step has run and no blocking step failed."""
        return not self.busy and all(o is not None and not o.blocks for o in self.outcomes)

    def state(self) -> dict[str, str]:
        """Each step's status (``running``/``waiting`` while not done), for tests and logs."""
        found = {}
        for index, check in enumerate(self.checks):
            outcome = self.outcomes[index]
            if outcome is not None:
                found[check.id] = outcome.result.status.value
            else:
                found[check.id] = "running" if index == self._running else "waiting"
        return found

    def _update_summary(self) -> None:
        self.continue_button.setEnabled(self.passed)
        if self.busy:
            self.summary.setText(text("checkscreen.status.running"))
        elif self.passed:
            self.summary.setText(text("checkscreen.ready"))
        else:
            self.summary.setText(text("checkscreen.blocked"))

    def _finish(self, continued: bool) -> None:
        if self._done or (continued and not self.passed):
            return
        self._done = True
        self._timer.stop()
        self.ctx.cancelled.set()
        self.close()
        if self._finished_cb is not None:
            self._finished_cb(continued)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Escape leaves; Enter continues when Continue is enabled (Tab moves between
        the buttons, Space presses the focused one)."""
        if event.key() == Qt.Key.Key_Escape:
            self._finish(False)
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._finish(True)
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: Any) -> None:
        if not self._done:
            self._done = True
            self._timer.stop()
            if self._finished_cb is not None:
                self._finished_cb(False)
        super().closeEvent(event)

    def save_png(self, path: Path) -> Path:
        """A picture of the screen as it is now (docs, the demo's screenshots)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.grab().save(str(path), "PNG")
        return path


def run_screen(
    ctx: CheckContext,
    checks: Sequence[Check],
    *,
    title: str | None = None,
    automatic: bool = False,
) -> bool:
    """Show the screen until Continue (True) or leave (False), in a loop of its own.

    ``automatic`` (the headless demo) presses Retry once on each blocking failure and
    Continue once it is enabled.
    """
    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    verdict: list[bool] = []

    def finished(continued: bool) -> None:
        verdict.append(continued)
        loop.quit()

    screen = CheckScreen(ctx, checks, title=title, finished=finished)
    screen.show()
    screen.start()
    if automatic:
        watch = QTimer(screen)
        retried: set[int] = set()

        def press() -> None:
            if screen.passed:
                screen.continue_button.click()
                return
            if screen.busy:
                return
            # as a candidate would: Retry each blocking failure once, then give up
            failed = [i for i, o in enumerate(screen.outcomes) if o is not None and o.blocks]
            again = [i for i in failed if i not in retried]
            if not again:
                screen._finish(False)
            for index in again:
                retried.add(index)
                screen.retry(index)

        watch.timeout.connect(press)
        watch.start(200)
    if not verdict:
        loop.exec()
    screen.deleteLater()
    return bool(verdict and verdict[0])


class SystemCheckOperation:
    """Before a proctored exam: the check screen; the exam starts only after Continue.

    ABORTED when the candidate leaves it or a blocking step fails (journalled as
    ``check.screen``); nothing to undo in revert. Exams that record nothing skip it, and
    so do exams with ``checks.before_exam`` off — except that an installed build refuses
    a camera that is a video file or the test pattern either way (the demo excepted).
    """

    name = "system_check"

    def __init__(
        self,
        settings: Any,
        spool_folder: Path,
        report: Callable[[Any], None],
        *,
        title: str | None = None,
        demo: bool = False,
        automatic: bool = False,
        aside: Callable[[], AbstractContextManager[None]] | None = None,
    ) -> None:
        self._settings = settings
        self._spool = spool_folder
        self._report = report
        self._title = title
        self._demo = demo
        self._automatic = automatic
        #: what makes room for the screen (the kiosk's starting window steps aside)
        self._aside = aside or contextlib.nullcontext
        self.message_id: str | None = None
        self.message_values: dict[str, Any] = {}

    def _refused_camera(self, streams: Sequence[str]) -> str | None:
        """The camera source an installed build refuses (a video file, the test
        pattern), None when there is none."""
        spec = str(self._settings["proctoring.camera_source"])
        if "camera" in streams and not physical_camera(spec) and not self._demo:
            from lockdown import build

            if build.current().installed:
                return spec
        return None

    def passes_without_asking(self) -> bool:
        """True when :meth:`perform` will neither show the screen nor refuse."""
        from lockdown.checks import needs

        streams = needs.exam_streams(self._settings)
        if self._refused_camera(streams) is not None:
            return False
        return not streams or not self._settings["checks.before_exam"]

    def perform(self) -> Outcome:
        from lockdown.checks import needs
        from lockdown.events import Event

        streams = needs.exam_streams(self._settings)
        spec = self._refused_camera(streams)
        if spec is not None:
            # a pre-recorded video is a cheat: refused whether or not the screen shows
            self._report(Event("check.camera_refused", {"source": spec}))
            self.message_id = "check.camera.not_physical"
            self.message_values = {"source": spec}
            return Outcome.ABORTED
        if not streams or not self._settings["checks.before_exam"]:
            return Outcome.SUCCESS
        from lockdown.checks.cli import all_checks

        ctx = CheckContext(self._settings, streams, self._spool, demo=self._demo)
        with self._aside():
            continued = run_screen(ctx, all_checks(), title=self._title, automatic=self._automatic)
        outcomes = ctx.shared.get("outcomes", {})
        failed = sorted(k for k, o in outcomes.items() if o.blocks)
        if not continued:
            log.checks.warning(
                "The system check screen ended without Continue; blocking failures: %s",
                ", ".join(failed) or "none (the candidate left)",
            )
        self._report(
            Event(
                "check.screen",
                {
                    "continued": continued,
                    "blocking_failed": failed,
                    "steps": {k: o.result.status.value for k, o in outcomes.items()},
                },
            )
        )
        if continued:
            return Outcome.SUCCESS
        self.message_id = "checkscreen.not_passed"
        return Outcome.ABORTED

    def revert(self) -> Outcome:
        return Outcome.SUCCESS
