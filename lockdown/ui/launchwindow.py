"""A link launch, seen by the candidate: a small window while the configuration downloads,
and a dialog (not only a line on stderr) when it cannot be opened.

A candidate who clicked a ``lockdown://`` / ``seb://`` link (or was given an ``https://``
URL) has no terminal: :func:`load_with_feedback` runs the same :func:`lockdown.launch.load_exam`
on a worker thread while the GUI thread shows :class:`DownloadWindow` (where from, the
seconds waited against the download timeout). The ``.seb`` password prompt is a dialog,
so the worker asks for it on the GUI thread (:class:`GuiCall`). When loading fails, the
one-line reason is shown in a message box and the error goes on to the command line as
before. A local file is loaded as before, without either window.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from PySide6.QtCore import QEventLoop, QObject, Qt, QThread, QTimer, Signal
from PySide6.QtWidgets import QLabel, QMessageBox, QProgressBar, QVBoxLayout, QWidget

from lockdown import log
from lockdown.errors import UserError
from lockdown.texts import text

if TYPE_CHECKING:
    from lockdown.config.loaded import LoadedExam
    from lockdown.config.settings import Organisation

PasswordPrompt = Callable[[int], str | None]
Loader = Callable[..., "LoadedExam"]
#: how long the error dialog stays when nobody closes it
ERROR_DIALOG_MS: Final = 120_000
#: the download window appears when the download takes longer than this
SHOW_AFTER_MS: Final = 300
_POLL_MS: Final = 50


class GuiCall(QObject):
    """Runs a function on the GUI thread for a worker thread, and hands back its result."""

    #: (function, result box, done event): queued to the GUI thread
    _request = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._request.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def _run(self, job: tuple[Callable[[], Any], list[Any], threading.Event]) -> None:
        function, box, done = job
        try:
            box.append((True, function()))
        except BaseException as exc:  # handed to the caller's thread, raised there
            box.append((False, exc))
        finally:
            done.set()

    def __call__(self, function: Callable[[], Any]) -> Any:
        if QThread.currentThread() is self.thread():
            return function()
        box: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._request.emit((function, box, done))
        done.wait()
        ok, value = box[0]
        if not ok:
            raise value
        return value


class DownloadWindow(QWidget):
    """Where the configuration comes from, a busy bar, and the seconds waited of the timeout."""

    def __init__(self, host: str, timeout_s: float) -> None:
        super().__init__(None, Qt.WindowType.Dialog | Qt.WindowType.WindowStaysOnTopHint)
        self.setObjectName("lockdown-download")
        self.setWindowTitle(text("launch.downloading_title"))
        self._timeout_s = timeout_s
        self._started = time.monotonic()
        layout = QVBoxLayout(self)
        self.what = QLabel(text("launch.downloading", host=host), self)
        self.what.setWordWrap(True)
        bar = QProgressBar(self)
        bar.setRange(0, 0)  # busy: the size is not known in advance
        self.waited = QLabel(self)
        self.waited.setObjectName("lockdown-download-waited")
        for widget in (self.what, bar, self.waited):
            layout.addWidget(widget)
        self._tick()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._tick)
        self._timer.start(1000)

    def _tick(self) -> None:
        seconds = round(time.monotonic() - self._started)
        self.waited.setText(
            text("launch.download_waited", seconds=seconds, timeout=round(self._timeout_s))
        )


def error_dialog(message: str) -> None:
    """Tell the candidate why the exam could not be opened (closes itself after two minutes)."""
    box = QMessageBox(
        QMessageBox.Icon.Warning,
        text("launch.failed_title"),
        text("launch.failed", reason=message),
    )
    box.setObjectName("lockdown-launch-error")
    QTimer.singleShot(ERROR_DIALOG_MS, box.accept)
    box.exec()


def _is_link(target: str) -> bool:
    return "://" in target


def _run_with_window(work: Callable[[], LoadedExam], host: str, timeout_s: float) -> LoadedExam:
    outcome: list[tuple[bool, Any]] = []

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # raised again on the GUI thread
            outcome.append((False, exc))

    window = DownloadWindow(host, timeout_s)
    # shown only when the download takes a moment: a fast one does not flash a window
    show = QTimer(window)
    show.setSingleShot(True)
    show.timeout.connect(window.show)
    show.start(SHOW_AFTER_MS)
    worker = threading.Thread(target=run, name="lockdown-config-download", daemon=True)
    loop = QEventLoop()
    poll = QTimer()
    poll.timeout.connect(lambda: loop.quit() if outcome else None)
    worker.start()
    poll.start(_POLL_MS)
    try:
        if not outcome:
            loop.exec()
    finally:
        poll.stop()
        window.close()
        window.deleteLater()
    worker.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    result: LoadedExam = value
    return result


def load_with_feedback(
    target: str,
    organisation: Organisation,
    *,
    password: PasswordPrompt,
    load: Loader | None = None,
    show_error: Callable[[str], None] = error_dialog,
) -> LoadedExam:
    """:func:`lockdown.launch.load_exam`, with the download window and the error dialog
    for a link or URL target; a local file is loaded as before."""
    from lockdown import launch

    loader: Loader = load or launch.load_exam
    if not _is_link(target):
        return loader(target, organisation, password=password)
    ask = GuiCall()
    try:
        resolved = launch.resolve(target, organisation)
        host = urlsplit(resolved.location).hostname or resolved.location
        return _run_with_window(
            lambda: loader(target, organisation, password=lambda n: ask(lambda: password(n))),
            host,
            launch.FETCH_TIMEOUT_S,
        )
    except UserError as exc:
        log.init.warning("The exam could not be opened from %s: %s", target, exc)
        show_error(str(exc))
        raise
    finally:
        ask.deleteLater()
