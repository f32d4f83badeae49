"""The kiosk: a frameless, full-screen, always-on-top window holding the exam view.

:class:`Kiosk` builds, in order: the URL filter and quit rules from the settings, the
window, the request interceptor, the off-the-record profile, the exam page and view, the
toolbar. :meth:`Kiosk.start` shows the window on the primary screen (geometry first,
then full screen: without a window manager ``showFullScreen`` alone does not resize) and
loads the start URL. A session's kiosk is ``early``: its window is painted in a
"starting" state (a cover over the whole window) before the web engine starts, the start
page loads underneath while the guards start, and :meth:`Kiosk.reveal` takes the cover
away once every guard is on; until then nothing of the exam takes input. The exam ends
through :meth:`Kiosk.end` (quit URL, quit button, later the proctor's end), which emits
:attr:`Kiosk.ended`; the composition root then reverts the operation sequence, whose
kiosk step calls :meth:`Kiosk.close`.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final

from PySide6.QtCore import (
    QCoreApplication,
    QEventLoop,
    QKeyCombination,
    QObject,
    Qt,
    QTimer,
    QUrl,
    Signal,
)
from PySide6.QtGui import (
    QCloseEvent,
    QGuiApplication,
    QKeySequence,
    QResizeEvent,
    QScreen,
    QShortcut,
)
from PySide6.QtWebEngineCore import (
    QWebEngineDownloadRequest,
    QWebEngineLoadingInfo,
    QWebEnginePermission,
)
from PySide6.QtWidgets import QMessageBox, QStackedWidget, QVBoxLayout, QWidget

from lockdown import build, log
from lockdown.events import Event, EventSink
from lockdown.texts import text
from lockdown.ui import netgate
from lockdown.ui.dialogs import QuitDialog
from lockdown.ui.pages import NoticePage, ProgressPage
from lockdown.ui.quitrules import QuitRules
from lockdown.ui.toolbar import Toolbar
from lockdown.ui.urlfilter import UrlFilter
from lockdown.ui.webview import (
    Blocked,
    ExamPage,
    ExamView,
    KeyHasher,
    RequestInterceptor,
    handle_download,
    make_profile,
)

#: Chromium error codes of loads we stopped ourselves (aborted, blocked by the interceptor).
_OWN_ABORTS: Final = frozenset({-3, -20, -27})
_K = Qt.Key
_CTRL = Qt.KeyboardModifier.ControlModifier
_SHIFT = Qt.KeyboardModifier.ShiftModifier
#: Shortcuts refused in the kiosk: (key, modifiers) -> what they would have done.
REFUSED_KEYS: Final[Mapping[tuple[Qt.Key, Qt.KeyboardModifier], str]] = {
    (_K.Key_F12, Qt.KeyboardModifier.NoModifier): "devtools",
    (_K.Key_I, _CTRL | _SHIFT): "devtools",
    (_K.Key_J, _CTRL | _SHIFT): "devtools",
    (_K.Key_C, _CTRL | _SHIFT): "devtools",
    (_K.Key_U, _CTRL): "view_source",
    (_K.Key_P, _CTRL): "print",
    (_K.Key_P, _CTRL | _SHIFT): "print",
    (_K.Key_S, _CTRL): "save",
    (_K.Key_O, _CTRL): "open",
}
_RELOAD_KEYS: Final = {
    (_K.Key_F5, Qt.KeyboardModifier.NoModifier),
    (_K.Key_R, _CTRL),
    (_K.Key_F5, _CTRL),
}


def dev_switch(name: str, journal: EventSink) -> str | None:
    """A development switch's value (never in an installed build), journalled when set."""
    value = build.dev_switch(name)
    if value:
        journal(Event("kiosk.dev_switch", {"name": f"LOCKDOWN_DEV_{name.upper()}", "value": value}))
        log.init.warning("Development switch LOCKDOWN_DEV_%s=%s in effect", name.upper(), value)
    return value


class KioskWindow(QWidget):
    """The window: refuses to close until the exam has ended."""

    def __init__(self, journal: EventSink) -> None:
        super().__init__(None)
        self.setObjectName("lockdown-kiosk")
        self.setWindowTitle("Lockdown")
        self.setWindowFlags(
            Qt.WindowType.Window
            | Qt.WindowType.FramelessWindowHint
            | Qt.WindowType.WindowStaysOnTopHint
        )
        self._journal = journal
        self._may_close = False
        self.close_refusals = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        self.stack = QStackedWidget(self)
        self._layout = layout
        #: the starting state: covers the whole window (toolbar and exam) until revealed
        self.cover = ProgressPage(self)
        self.cover.show_title(text("session.starting_title"))
        self.cover.show_step(text("session.starting"))
        self.cover.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.cover.hide()

    @property
    def covered(self) -> bool:
        return not self.cover.isHidden()

    def cover_up(self) -> None:
        """Show the starting state over everything (the exam may load underneath)."""
        self.cover.setGeometry(self.rect())
        self.cover.show()
        self.cover.raise_()
        self.cover.setFocus(Qt.FocusReason.OtherFocusReason)

    def uncover(self) -> None:
        self.cover.hide()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.cover.setGeometry(self.rect())

    def set_content(
        self, toolbar: QWidget, view: QWidget, notice: QWidget, progress: QWidget
    ) -> None:
        self._layout.addWidget(toolbar)
        self.stack.addWidget(view)
        self.stack.addWidget(notice)
        self.stack.addWidget(progress)
        self._layout.addWidget(self.stack, 1)
        self.cover.raise_()

    def show_on(self, screen: QScreen, *, expose_timeout_s: float = 5.0) -> None:
        """Show full screen on ``screen`` and wait until the window system shows it.

        The guards that follow grab the keyboard for this window, which X11 refuses for a
        window not yet viewable.
        """
        self.setGeometry(screen.geometry())
        self.showFullScreen()
        self.raise_()
        self.activateWindow()
        deadline = time.monotonic() + expose_timeout_s
        # Ask for the window handle each time: Qt may recreate it while the web view
        # joins the window.
        while not self.windowHandle().isExposed() and time.monotonic() < deadline:
            QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.005)
        if not self.windowHandle().isExposed():
            log.init.warning("The kiosk window was not shown within %.0f s", expose_timeout_s)
        QCoreApplication.processEvents()  # the paint that follows the exposure

    @contextlib.contextmanager
    def stepped_aside(self) -> Iterator[None]:
        """Hide the window while a pre-exam dialog is open, show it again afterwards.

        The window stays on top of everything (full screen): a dialog of the start (the
        prohibited apps) would open underneath it, unseen, under a window manager.
        """
        shown = self.isVisible()
        screen = self.screen()
        self.hide()
        try:
            yield
        finally:
            if shown:
                self.show_on(screen)

    def allow_close(self) -> None:
        self._may_close = True

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._may_close:
            event.accept()
            return
        event.ignore()
        self.close_refusals += 1
        self._journal(Event("kiosk.close_refused", {"spontaneous": event.spontaneous()}))
        log.init.info("Close request refused: the exam is running")


def starting_window(journal: EventSink, screen: QScreen | None = None) -> KioskWindow:
    """The kiosk window shown at once in its starting state: a session's first paint.

    Hand it to :class:`Kiosk` (``window=``) once the journal is open.
    """
    window = KioskWindow(journal)
    window.cover_up()
    window.show_on(screen or QGuiApplication.primaryScreen())
    log.phase("window")
    return window


def _install_shortcuts(kiosk: Kiosk) -> list[QShortcut]:
    """Refuse devtools, view-source, print, save, open; route reload keys to the kiosk."""
    shortcuts = []
    for (key, mods), what in REFUSED_KEYS.items():
        shortcut = QShortcut(QKeySequence(QKeyCombination(mods, key)), kiosk.window)
        shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        shortcut.activated.connect(lambda what=what: kiosk.refused_shortcut(what))
        shortcuts.append(shortcut)
    for key, mods in _RELOAD_KEYS:
        shortcut = QShortcut(QKeySequence(QKeyCombination(mods, key)), kiosk.window)
        shortcut.setContext(Qt.ShortcutContext.ApplicationShortcut)
        shortcut.activated.connect(kiosk.reload_key)
        shortcuts.append(shortcut)
    return shortcuts


class Kiosk(QObject):
    """The exam browser of one session.

    With ``early`` the window shows at once in its starting state (painted before the web
    engine starts), the start page loads underneath, and the exam appears, and takes
    input, only at :meth:`reveal` (the composition root calls it once every guard is on).
    Without, :meth:`start` shows the exam at once.
    """

    #: the exam ended (the reason: "quit_url", "quit_button", "quit_password", …)
    ended = Signal(str)
    #: a main-frame load finished (ok, URL); one under the starting state is emitted
    #: once the exam shows
    pageLoaded = Signal(bool, str)

    def __init__(
        self,
        settings: Mapping[str, Any],
        journal: EventSink,
        *,
        keys: KeyHasher | None = None,
        downloads: Path | None = None,
        parent: QObject | None = None,
        early: bool = False,
        screen: QScreen | None = None,
        window: KioskWindow | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self._journal = journal
        self._ended = ""
        self._recent_blocks: dict[tuple[str, str], float] = {}
        self._early = early
        self._revealed = False
        self._loaded_url: str | None = None
        self._announced = False
        self._load_started = False
        self._closed = False
        self._pending_asks: list[Callable[[], None]] = []
        self._held_loads: list[tuple[bool, str]] = []
        if window is not None:  # shown already, in its starting state
            self.window = window
        elif early:  # the first paint, before the web engine starts
            self.window = starting_window(journal, screen)
        else:
            self.window = KioskWindow(journal)
        self.url_filter = UrlFilter.from_settings(
            settings, whole_url_globs=dev_switch("url_glob", journal) == "whole-url"
        )
        self.quit_rules = QuitRules.from_settings(settings)
        self.downloads = downloads
        use_keys = keys if settings["browser.send_browser_exam_key"] else None
        self.interceptor = RequestInterceptor(
            self.url_filter, self._request_blocked, keys=use_keys, gate=netgate.current()
        )
        self.profile = make_profile(settings, self.interceptor, downloads)
        self.profile.downloadRequested.connect(self._download)
        self.page = ExamPage(
            self.profile,
            settings,
            self.url_filter,
            self.quit_rules,
            journal,
            keys=use_keys,
            allow_script_urls=dev_switch("script_urls", journal) == "allow",
        )
        self.page.navigationBlocked.connect(self._navigation_blocked)
        self.page.quitUrlReached.connect(self._quit_url)
        self.page.notice.connect(self.show_notice)
        self.page.permissionAsked.connect(self._ask_permission)
        self.page.loadingChanged.connect(self._loading_changed)
        self.view = ExamView(self.page, self.window)
        self.notice = NoticePage(self.window)
        self.progress = ProgressPage(self.window)
        self.toolbar = Toolbar(
            settings, on_reload=self.reload, on_zoom=self.zoom, on_quit=self.ask_quit
        )
        self.window.set_content(self.toolbar, self.view, self.notice, self.progress)
        self.page.setZoomFactor(settings["browser.zoom"])
        self._shortcuts = _install_shortcuts(self)
        self.quit_dialog: QuitDialog | None = None
        self.blocked: list[Blocked] = []
        #: LOCKDOWN_DEV_REVEAL=early: show the exam once loaded, guards or not (the
        #: positive control of the tests; development builds only, journalled)
        self._reveal_on_load = early and dev_switch("reveal", journal) == "early"
        if early:
            # nothing of the exam takes input before reveal(): the cover has the focus
            self.toolbar.setEnabled(False)
            self.window.stack.setEnabled(False)
            self.window.cover_up()
            log.phase("engine start")

    # -- lifecycle ------------------------------------------------------------------------

    def preload(self) -> None:
        """Start loading the start URL (underneath the starting state when ``early``)."""
        if self._load_started:
            return
        self._load_started = True
        log.init.info("Loading the start page underneath the starting state")
        self.page.load(QUrl(self.settings["browser.start_url"]))

    def start(self, screen: QScreen | None = None) -> None:
        """Show the kiosk on the primary screen and load the start URL.

        With ``early`` the window stays in its starting state until :meth:`reveal`.
        """
        target = screen or QGuiApplication.primaryScreen()
        self.window.show_on(target)
        if not self._early:
            log.phase("window")
        start_url = self.settings["browser.start_url"]
        self._journal(
            Event(
                "kiosk.started",
                {
                    "url": start_url,
                    "screen": target.name(),
                    "geometry": [
                        target.geometry().x(),
                        target.geometry().y(),
                        target.geometry().width(),
                        target.geometry().height(),
                    ],
                },
            )
        )
        log.init.info("Kiosk shown on %s; loading %s", target.name(), start_url)
        self.preload()
        if not self._early:
            self.reveal()

    @property
    def revealed(self) -> bool:
        return self._revealed

    def reveal(self) -> None:
        """Show the exam: the starting state goes, the exam takes input (once)."""
        if self._revealed:
            return
        self._revealed = True
        self.window.uncover()
        self.toolbar.setEnabled(True)
        self.window.stack.setEnabled(True)
        self.view.setFocus(Qt.FocusReason.ActiveWindowFocusReason)  # typing works at once
        if self._early:
            self._journal(Event("kiosk.revealed", {"loaded": self._loaded_url is not None}))
            log.init.info("Exam revealed: every guard is on")
        pending, self._pending_asks = self._pending_asks, []
        for ask in pending:
            ask()
        held, self._held_loads = self._held_loads, []
        for ok, url in held:  # from the event loop: after whoever drives the exam connected
            QTimer.singleShot(0, functools.partial(self.pageLoaded.emit, ok, url))
        self._announce_shown()

    @property
    def loaded_url(self) -> str | None:
        """The first main-frame URL that finished loading (shown or not yet)."""
        return self._loaded_url

    def _page_loaded(self, ok: bool, url: str) -> None:
        """``pageLoaded``, held until the exam shows (a load under the starting state)."""
        if self._revealed:
            self.pageLoaded.emit(ok, url)
        else:
            self._held_loads.append((ok, url))

    def _announce_shown(self) -> None:
        if self._revealed and self._loaded_url is not None and not self._announced:
            self._announced = True
            log.phase("exam page shown")

    @property
    def has_ended(self) -> bool:
        return bool(self._ended)

    def end(self, reason: str) -> None:
        """End the exam (once): journal it and tell the composition root.

        ``ended`` is emitted whatever the journal or the toolbar do: nothing may keep the
        candidate locked in.
        """
        if self._ended:
            return
        self._ended = reason
        try:
            self._journal(Event("kiosk.ended", {"reason": reason}))
            log.init.info("Exam ended (%s)", reason)
            self.toolbar.flash(text("quit.ending"))
        except Exception:
            log.init.exception("Ending the exam: the journal or the toolbar failed")
        finally:
            self.ended.emit(reason)

    def show_progress(self, message: str) -> None:
        """Show what happens while the exam ends (the page is replaced; the lock stays)."""
        if self.quit_dialog is not None:
            self.quit_dialog.reject()
        for button in self.toolbar.buttons.values():  # nothing to reload or quit any more
            button.setEnabled(False)
        self.window.uncover()  # our own page, never the exam's
        self.progress.show_step(message)
        self.window.stack.setCurrentWidget(self.progress)
        QCoreApplication.processEvents()

    def close(self) -> None:
        """Close the window and release the web engine objects (page before profile).

        Idempotent: a start refused before the kiosk step closes the starting window too.
        """
        if self._closed:
            return
        self._closed = True
        if self.quit_dialog is not None:
            self.quit_dialog.reject()
        self.window.allow_close()
        self.window.close()
        self.view.setPage(None)  # type: ignore[arg-type]
        self.page.deleteLater()
        self.view.deleteLater()
        self.window.deleteLater()
        self.profile.deleteLater()

    # -- navigation outcomes --------------------------------------------------------------

    def _journal_block(self, blocked: Blocked, event_type: str) -> bool:
        """Journal a refusal once per URL and way within two seconds; True when new."""
        key = (blocked.url, event_type)
        now = time.monotonic()
        if now - self._recent_blocks.get(key, -10.0) < 2.0:
            return False
        self._recent_blocks[key] = now
        self.blocked.append(blocked)
        self._journal(
            Event(
                event_type,
                {
                    "url": blocked.url[:2048],
                    "how": blocked.how,
                    "reason": blocked.decision.reason,
                    "rule": blocked.decision.rule,
                },
            )
        )
        log.web.info("Blocked %s (%s): %s", blocked.url, blocked.how, blocked.decision.reason)
        return True

    def _request_blocked(self, blocked: Blocked) -> None:
        if blocked.how.startswith("main_frame"):
            self._navigation_blocked(blocked)
        else:
            self._journal_block(blocked, "web.request_blocked")

    def _navigation_blocked(self, blocked: Blocked) -> None:
        if blocked.how == "sub_frame":
            self._journal_block(blocked, "web.request_blocked")
            return
        if self._journal_block(blocked, "web.navigation_blocked") or (
            self.window.stack.currentWidget() is not self.notice
        ):
            self.notice.show_blocked(blocked.url, self.back, popup=blocked.how == "popup")
            self.window.stack.setCurrentWidget(self.notice)

    def back(self) -> None:
        """Leave the blocked or error page for the exam page."""
        self.window.stack.setCurrentWidget(self.view)
        self.view.setFocus()

    def _quit_url(self, url: str) -> None:
        self._journal(Event("kiosk.quit_url", {"url": url}))
        self.end("quit_url")

    def _loading_changed(self, info: QWebEngineLoadingInfo) -> None:
        status = info.status()
        url = info.url().toString()
        if status == QWebEngineLoadingInfo.LoadStatus.LoadSucceededStatus:
            log.web.info("Page loaded %s", url)
            if self._loaded_url is None:
                self._loaded_url = url
                log.phase("page load")
                if self._reveal_on_load:
                    self.reveal()
                self._announce_shown()
            self._page_loaded(True, url)
        elif status == QWebEngineLoadingInfo.LoadStatus.LoadFailedStatus:
            code = info.errorCode()
            if code in _OWN_ABORTS or self.url_filter.decide(url).allowed is False:
                return
            self._journal(
                Event("web.load_failed", {"url": url, "error": code, "text": info.errorString()})
            )
            log.web.warning("Could not load %s: %s (%d)", url, info.errorString(), code)
            self.notice.show_error(url, lambda: self.retry(url))
            self.window.stack.setCurrentWidget(self.notice)
            self._page_loaded(False, url)

    def retry(self, url: str) -> None:
        self.back()
        self.page.load(QUrl(url))

    # -- toolbar and keys -----------------------------------------------------------------

    def reload(self) -> None:
        if self.settings["browser.allow_reload"]:
            self.page.triggerAction(self.page.WebAction.Reload)

    def reload_key(self) -> None:
        """F5 / Ctrl+R: reload when the exam allows it, else refuse and journal."""
        if self.settings["browser.allow_reload"]:
            self.reload()
        else:
            self.refused_shortcut("reload")

    def zoom(self, delta: float | None) -> None:
        factor = 1.0 if delta is None else self.page.zoomFactor() + delta
        self.page.setZoomFactor(min(5.0, max(0.25, round(factor, 2))))

    def refused_shortcut(self, what: str) -> None:
        self._journal(Event("kiosk.shortcut_refused", {"action": what}))
        if what == "print":
            self.toolbar.flash(text("notice.print_blocked"))

    def ask_quit(self) -> None:
        """The quit button: confirm, or ask for the quit password."""
        if not self.quit_rules.allow_quit or self._ended:
            return
        if self.quit_dialog is None:
            dialog = QuitDialog(self.quit_rules, self._journal, self.window)
            reason = "quit_password" if self.quit_rules.needs_password else "quit_button"
            dialog.accepted.connect(lambda: self.end(reason))
            dialog.finished.connect(lambda _result: setattr(self, "quit_dialog", None))
            self.quit_dialog = dialog
        self.quit_dialog.open()

    def show_notice(self, text_id: str) -> None:
        """A short message in the toolbar (e.g. a second instance was refused)."""
        self.toolbar.flash(text(text_id))

    # -- downloads and permissions --------------------------------------------------------

    def _download(self, request: QWebEngineDownloadRequest) -> None:
        if not handle_download(
            request,
            allowed=self.settings["browser.allow_downloads"],
            folder=self.downloads,
            journal=self._journal,
        ):
            self.toolbar.flash(text("notice.download_blocked"))

    def _ask_permission(self, text_id: str, permission: QWebEnginePermission) -> None:
        if not self._revealed:  # asked once the exam shows, never over the starting state
            self._pending_asks.append(lambda: self._ask_permission(text_id, permission))
            return
        box = QMessageBox(self.window)
        box.setIcon(QMessageBox.Icon.Question)
        box.setText(text("permission.ask", feature=text(text_id)))
        box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No)

        def answer(button: int) -> None:
            granted = button == QMessageBox.StandardButton.Yes.value
            self._journal(Event("web.permission_answer", {"feature": text_id, "granted": granted}))
            if granted:
                permission.grant()
            else:
                permission.deny()

        box.finished.connect(answer)
        box.open()
