"""The exam web view: off-the-record profile, request interceptor, exam page, permission table.

Every request (top-level, redirect, sub-frame, sub-resource, form post) passes the
:class:`RequestInterceptor`, which asks the :class:`~lockdown.ui.urlfilter.UrlFilter` and
adds the Safe Exam Browser headers when the exam asks for them. It also tells the
network gate (:mod:`lockdown.ui.netgate`) its decisions: QtWebEngine asks the
interceptor about a redirect's target only after the request has left, so the gate,
through which the engine makes every connection, is what keeps that request in.
Navigations also pass :meth:`ExamPage.acceptNavigationRequest`, which recognises the quit URL and reports a
blocked top-level navigation so the kiosk can show its blocked page. ``javascript:``,
``data:`` and ``file:`` links never reach either (Chromium handles them in the
renderer), so an injected guard script (``resources/js/guard.js``) stops such links,
form submissions and frames in the page, reading the scheme with the engine's own URL
parser, and reports them; ``window.open`` of such a URL is journalled from Chromium's
refusal in the new window's console.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from PySide6.QtCore import QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtWebEngineCore import (
    QWebEngineDownloadRequest,
    QWebEnginePage,
    QWebEnginePermission,
    QWebEngineProfile,
    QWebEngineScript,
    QWebEngineSettings,
    QWebEngineUrlRequestInfo,
    QWebEngineUrlRequestInterceptor,
)
from PySide6.QtWebEngineWidgets import QWebEngineView

from lockdown import __version__, log, resources
from lockdown.events import Event, EventSink
from lockdown.ui.netgate import NetworkGate
from lockdown.ui.quitrules import QuitRules
from lockdown.ui.urlfilter import Decision, UrlFilter, origin, strip_fragment

#: Prefix of the console messages the injected scripts send to Python.
BRIDGE_PREFIX: Final = "\u2063lockdown:"
SEB_VERSION: Final = f"Lockdown_{__version__}"
#: How long ``updateKeys`` waits for the page URL to catch up with ``location.href``.
UPDATE_KEYS_WAIT_MS: Final = 1000

Permission = QWebEnginePermission.PermissionType
#: One policy table: page feature -> (governing setting, text id of the phrase shown).
PERMISSIONS: Final[Mapping[Permission, tuple[tuple[str, ...], str]]] = {
    Permission.MediaVideoCapture: (("browser.permission.camera",), "permission.camera"),
    Permission.MediaAudioCapture: (("browser.permission.microphone",), "permission.microphone"),
    Permission.MediaAudioVideoCapture: (
        ("browser.permission.camera", "browser.permission.microphone"),
        "permission.camera_microphone",
    ),
    Permission.DesktopVideoCapture: (
        ("browser.permission.screen_share",),
        "permission.screen_share",
    ),
    Permission.DesktopAudioVideoCapture: (
        ("browser.permission.screen_share",),
        "permission.screen_share",
    ),
    Permission.Notifications: (
        ("browser.permission.notifications",),
        "permission.notifications",
    ),
    Permission.Geolocation: (("browser.permission.geolocation",), "permission.geolocation"),
    Permission.ClipboardReadWrite: (
        ("browser.permission.clipboard_read",),
        "permission.clipboard_read",
    ),
}


def permission_policy(settings: Mapping[str, Any], feature: Permission) -> tuple[str, str]:
    """``(decision, text id)`` for a feature: the strictest of its settings; unknown -> deny."""
    entry = PERMISSIONS.get(feature)
    if entry is None:
        return "deny", ""
    keys, text_id = entry
    values = [settings[k] for k in keys]
    for decision in ("deny", "ask", "allow"):
        if decision in values:
            return decision, text_id
    return "deny", text_id


class KeyHasher(Protocol):
    """Per-URL Safe Exam Browser hashes (``lockdown.config.examkeys.ExamKeys``)."""

    def hashes_for(self, url: str) -> tuple[str, str]: ...


@dataclass(frozen=True)
class Blocked:
    """A refused URL: what, how it was reached, and the filter's reason."""

    url: str
    how: str
    decision: Decision


_RESOURCE_NAMES: Final = {
    QWebEngineUrlRequestInfo.ResourceType.ResourceTypeMainFrame: "main_frame",
    QWebEngineUrlRequestInfo.ResourceType.ResourceTypeSubFrame: "sub_frame",
    QWebEngineUrlRequestInfo.ResourceType.ResourceTypeNavigationPreloadMainFrame: "main_frame",
    QWebEngineUrlRequestInfo.ResourceType.ResourceTypeNavigationPreloadSubFrame: "sub_frame",
}


class RequestInterceptor(QWebEngineUrlRequestInterceptor):
    """Filters every request of the profile and adds the exam key headers."""

    def __init__(
        self,
        url_filter: UrlFilter,
        on_blocked: Callable[[Blocked], None],
        *,
        keys: KeyHasher | None = None,
        gate: NetworkGate | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._filter = url_filter
        self._on_blocked = on_blocked
        self._keys = keys
        self._gate = gate

    def interceptRequest(self, info: QWebEngineUrlRequestInfo) -> None:
        url = info.requestUrl().toString()
        kind = _RESOURCE_NAMES.get(info.resourceType(), "sub_resource")
        decision = self._filter.decide(url)
        if self._gate is not None:
            # before the request starts: the gate then opens its connection (a redirect's
            # target asked to connect just before this call waits for it)
            (self._gate.permit if decision.allowed else self._gate.refuse)(url)
        if not decision.allowed:
            info.block(True)
            method = bytes(info.requestMethod().data()).decode("ascii", "replace")
            how = f"{kind}_post" if method == "POST" else kind
            self._on_blocked(Blocked(url, how, decision))
            return
        if self._keys is not None and (
            kind == "main_frame"
            or (origin(url) and origin(url) == origin(info.firstPartyUrl().toString()))
        ):
            config_hash, request_hash = self._keys.hashes_for(strip_fragment(url))
            info.setHttpHeader(b"X-SafeExamBrowser-ConfigKeyHash", config_hash.encode("ascii"))
            info.setHttpHeader(b"X-SafeExamBrowser-RequestHash", request_hash.encode("ascii"))


def user_agent(base: str, suffix: str) -> str:
    """The profile's user agent: Chromium's, then ``Lockdown/<version>`` and the exam's suffix."""
    return " ".join(p for p in (base, f"Lockdown/{__version__}", suffix) if p)


def make_profile(
    settings: Mapping[str, Any],
    interceptor: RequestInterceptor,
    downloads: Path | None,
    parent: QObject | None = None,
) -> QWebEngineProfile:
    """An off-the-record profile: nothing persisted, our user agent, the interceptor set."""
    profile = QWebEngineProfile(parent)  # no storage name: off the record
    if not profile.isOffTheRecord():  # pragma: no cover - Qt guarantees it
        raise RuntimeError("web engine profile is not off the record")
    profile.setHttpCacheType(QWebEngineProfile.HttpCacheType.MemoryHttpCache)
    profile.setPersistentCookiesPolicy(
        QWebEngineProfile.PersistentCookiesPolicy.NoPersistentCookies
    )
    profile.setPersistentPermissionsPolicy(
        QWebEngineProfile.PersistentPermissionsPolicy.AskEveryTime
    )
    profile.setSpellCheckEnabled(False)
    profile.setHttpUserAgent(
        user_agent(profile.httpUserAgent(), settings["browser.user_agent_suffix"])
    )
    profile.setUrlRequestInterceptor(interceptor)
    if downloads is not None:
        profile.setDownloadPath(str(downloads))
    return profile


def _script(
    name: str, source: str, world: int, point: QWebEngineScript.InjectionPoint
) -> QWebEngineScript:
    script = QWebEngineScript()
    script.setName(name)
    script.setSourceCode(source)
    script.setWorldId(world)
    script.setInjectionPoint(point)
    script.setRunsOnSubFrames(name == "lockdown-guard")
    return script


_NAVIGATION_HOW: Final = {
    QWebEnginePage.NavigationType.NavigationTypeLinkClicked: "link",
    QWebEnginePage.NavigationType.NavigationTypeTyped: "load",
    QWebEnginePage.NavigationType.NavigationTypeFormSubmitted: "form",
    QWebEnginePage.NavigationType.NavigationTypeBackForward: "history",
    QWebEnginePage.NavigationType.NavigationTypeReload: "reload",
    QWebEnginePage.NavigationType.NavigationTypeRedirect: "redirect",
    QWebEnginePage.NavigationType.NavigationTypeOther: "script",
}
#: What the page guard reports -> how the refusal is journalled.
_GUARD_REFUSALS: Final = {
    "blocked-link": "scheme",
    "blocked-form": "form_scheme",
    "blocked-frame": "sub_frame",
}
#: Chromium's own console messages when it refuses a navigation in the renderer.
_CHROMIUM_REFUSALS: Final = (
    ("Not allowed to load local resource: ", "scheme"),
    ("Not allowed to navigate top frame to data URL: ", "scheme"),
)


class _PopupCatcher(QWebEnginePage):
    """The page handed out for ``window.open``/``target=_blank``: learns the URL, loads nothing."""

    def __init__(self, profile: QWebEngineProfile, report: Callable[[str], None]) -> None:
        super().__init__(profile)
        self._report: Callable[[str], None] | None = report

    def acceptNavigationRequest(
        self, url: QUrl | str, kind: QWebEnginePage.NavigationType, is_main_frame: bool
    ) -> bool:
        self._reached(QUrl(url).toString())
        return False

    def javaScriptConsoleMessage(
        self,
        level: QWebEnginePage.JavaScriptConsoleMessageLevel,
        message: str,
        line: int,
        source: str,
    ) -> None:
        # window.open("data:…") is refused by Chromium before any navigation request:
        # its message in the new window's console is the only trace of the URL.
        for prefix, _how in _CHROMIUM_REFUSALS:
            if message.startswith(prefix):
                self._reached(message[len(prefix) :].strip())

    def _reached(self, url: str) -> None:
        report, self._report = self._report, None
        if report is not None:
            report(url)
            self.deleteLater()


class ExamPage(QWebEnginePage):
    """The exam's page: navigation policy, popups, console, print, permissions, downloads."""

    #: a top-level navigation was refused (Blocked)
    navigationBlocked = Signal(object)
    #: the quit URL was requested (the URL)
    quitUrlReached = Signal(str)
    #: something was refused that the candidate should hear about (text id)
    notice = Signal(str)
    #: the permission phrase to ask the candidate about, and the permission to grant or deny
    permissionAsked = Signal(str, object)

    def __init__(
        self,
        profile: QWebEngineProfile,
        settings: Mapping[str, Any],
        url_filter: UrlFilter,
        quit_rules: QuitRules,
        journal: EventSink,
        *,
        keys: KeyHasher | None = None,
        allow_script_urls: bool = False,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(profile, parent)
        self._settings = settings
        self._allow_script_urls = allow_script_urls
        self._filter = url_filter
        self._quit = quit_rules
        self._journal = journal
        self._keys = keys
        self._popups: list[_PopupCatcher] = []
        self._pending_update: str | None = None
        self._update_timer = QTimer(self)
        self._update_timer.setSingleShot(True)
        self._update_timer.setInterval(UPDATE_KEYS_WAIT_MS)
        self._update_timer.timeout.connect(self._answer_update)
        self._configure()
        self.printRequested.connect(self._print_blocked)
        self.printRequestedByFrame.connect(lambda _frame: self._print_blocked())
        self.permissionRequested.connect(self._permission)
        self.fileSystemAccessRequested.connect(lambda request: request.reject())
        self.urlChanged.connect(self._url_changed)

    # -- setup --------------------------------------------------------------------------

    def _configure(self) -> None:
        s = self.settings()
        attr = QWebEngineSettings.WebAttribute
        for attribute, on in (
            (attr.JavascriptEnabled, True),
            (attr.JavascriptCanOpenWindows, True),  # so createWindow sees every popup
            (attr.JavascriptCanAccessClipboard, False),
            (attr.JavascriptCanPaste, False),
            (attr.LocalContentCanAccessFileUrls, False),
            (attr.LocalContentCanAccessRemoteUrls, False),
            (attr.PluginsEnabled, False),
            (attr.PdfViewerEnabled, False),
            (attr.ScreenCaptureEnabled, False),
            (attr.FullScreenSupportEnabled, False),
            (attr.ErrorPageEnabled, False),  # the kiosk shows its own error page
            (attr.HyperlinkAuditingEnabled, False),
            (attr.DnsPrefetchEnabled, False),
            (attr.NavigateOnDropEnabled, False),
            (attr.AllowWindowActivationFromJavaScript, False),
        ):
            s.setAttribute(attribute, on)
        guard = resources.read_text("js", "guard.js").replace(
            "__LOCKDOWN_CONFIG__",
            json.dumps({"prefix": BRIDGE_PREFIX, "blocked": self._guarded_schemes()}),
        )
        self.scripts().insert(
            _script(
                "lockdown-guard",
                guard,
                QWebEngineScript.ScriptWorldId.ApplicationWorld,
                QWebEngineScript.InjectionPoint.DocumentCreation,
            )
        )
        self._seb_template = (
            resources.read_text("js", "seb_api.js") if self._keys is not None else ""
        )
        self._install_seb_api(self._settings["browser.start_url"])

    def _guarded_schemes(self) -> list[str]:
        """The schemes the page guard stops (``javascript`` kept only by a development switch)."""
        schemes = self._filter.blocked_schemes()
        if self._allow_script_urls:  # LOCKDOWN_DEV_SCRIPT_URLS=allow: the tests' control
            return [s for s in schemes if s != "javascript"]
        return list(schemes)

    def _install_seb_api(self, url: str) -> None:
        """(Re)inject ``window.SafeExamBrowser`` carrying the hashes for ``url``."""
        if self._keys is None:
            return
        for old in self.scripts().find("lockdown-seb"):
            self.scripts().remove(old)
        self.scripts().insert(
            _script(
                "lockdown-seb",
                self._seb_template.replace("__LOCKDOWN_SEB__", self._seb_values(url)),
                QWebEngineScript.ScriptWorldId.MainWorld,
                QWebEngineScript.InjectionPoint.DocumentCreation,
            )
        )

    def _seb_values(self, url: str) -> str:
        assert self._keys is not None
        config_hash, request_hash = self._keys.hashes_for(strip_fragment(url))
        return json.dumps(
            {
                "version": SEB_VERSION,
                "configKey": config_hash,
                "browserExamKey": request_hash,
                "prefix": BRIDGE_PREFIX,
            }
        )

    # -- navigation ---------------------------------------------------------------------

    def acceptNavigationRequest(
        self, url: QUrl | str, kind: QWebEnginePage.NavigationType, is_main_frame: bool
    ) -> bool:
        target = QUrl(url).toString()
        if is_main_frame and self._quit.is_quit_url(target):
            self.quitUrlReached.emit(target)
            return False
        decision = self._filter.decide(target)
        how = _NAVIGATION_HOW.get(kind, "other")
        if not decision.allowed:
            self.navigationBlocked.emit(
                Blocked(target, how if is_main_frame else "sub_frame", decision)
            )
            return False
        if is_main_frame:
            self._install_seb_api(target)
        return True

    def createWindow(self, kind: QWebEnginePage.WebWindowType) -> QWebEnginePage:
        catcher = _PopupCatcher(self.profile(), self._popup)
        self._popups = [p for p in self._popups if _alive(p)] + [catcher]
        return catcher

    def _popup(self, url: str) -> None:
        policy = self._settings["browser.new_window_policy"]
        self._journal(Event("web.popup", {"url": url, "policy": policy}))
        if policy == "same_window":
            self.load(QUrl(url))
        else:
            self.navigationBlocked.emit(Blocked(url, "popup", Decision(False, "new window policy")))

    def _url_changed(self, url: QUrl) -> None:
        """Same-document navigations (pushState) change the URL without a navigation request."""
        if self._keys is not None:
            self._install_seb_api(url.toString())
            pending = self._pending_update
            if pending is not None and strip_fragment(pending) == strip_fragment(url.toString()):
                self._update_timer.stop()
                self._answer_update()

    def _answer_update(self) -> None:
        """Answer ``updateKeys`` with the hashes of the page's current URL."""
        current = self.url().toString()
        pending, self._pending_update = self._pending_update, None
        if pending is not None and strip_fragment(pending) != strip_fragment(current):
            log.web.info("updateKeys for %s answered for the current URL %s", pending, current)
        values = self._seb_values(current)
        self.runJavaScript(
            f"window.__lockdownSebUpdate && window.__lockdownSebUpdate({values});",
            QWebEngineScript.ScriptWorldId.MainWorld,
        )

    # -- console bridge -----------------------------------------------------------------

    def javaScriptConsoleMessage(
        self,
        level: QWebEnginePage.JavaScriptConsoleMessageLevel,
        message: str,
        line: int,
        source: str,
    ) -> None:
        if message.startswith(BRIDGE_PREFIX):
            self._bridge(message[len(BRIDGE_PREFIX) :])
            return
        for prefix, how in _CHROMIUM_REFUSALS:
            if message.startswith(prefix):
                url = message[len(prefix) :].strip()
                decision = Decision(False, "scheme refused by the browser engine")
                self.navigationBlocked.emit(Blocked(url, how, decision))
        lvl = {
            QWebEnginePage.JavaScriptConsoleMessageLevel.InfoMessageLevel: 20,
            QWebEnginePage.JavaScriptConsoleMessageLevel.WarningMessageLevel: 30,
            QWebEnginePage.JavaScriptConsoleMessageLevel.ErrorMessageLevel: 40,
        }.get(level, 20)
        log.web.log(lvl, "js: %s (%s:%d)", message, source, line)

    def _bridge(self, text: str) -> None:
        command, _, argument = text.partition(" ")
        if command in _GUARD_REFUSALS:
            decision = self._filter.decide(argument)
            if decision.allowed and command == "blocked-link":
                self.load(QUrl(argument))
            elif not decision.allowed:
                self.navigationBlocked.emit(Blocked(argument, _GUARD_REFUSALS[command], decision))
        elif command == "seb-update" and self._keys is not None:
            # Only ever the hashes of the page's current URL: a page can write this message
            # itself and must not learn the hashes of other URLs. After pushState the
            # message may arrive before urlChanged: wait for it a moment, then answer.
            if strip_fragment(argument) == strip_fragment(self.url().toString()):
                self._answer_update()
            else:
                self._pending_update = argument
                self._update_timer.start()
        elif command == "print":
            self._print_blocked()
        else:
            log.web.warning("Unknown message from the page bridge: %r", command)

    # -- refusals -----------------------------------------------------------------------

    def _print_blocked(self) -> None:
        self._journal(Event("web.print_blocked", {"url": self.url().toString()}))
        self.notice.emit("notice.print_blocked")

    def _permission(self, permission: QWebEnginePermission) -> None:
        feature = permission.permissionType()
        decision, text_id = permission_policy(self._settings, feature)
        name = feature.name if hasattr(feature, "name") else str(feature)
        if not text_id:
            log.web.warning("Unknown permission %s requested; denied", name)
        self._journal(
            Event(
                "web.permission",
                {"feature": name, "decision": decision, "origin": permission.origin().toString()},
            )
        )
        if decision == "allow":
            permission.grant()
        elif decision == "ask":
            self.permissionAsked.emit(text_id, permission)
        else:
            permission.deny()


def _alive(page: QWebEnginePage) -> bool:
    try:
        page.objectName()
    except RuntimeError:
        return False
    return True


def handle_download(
    request: QWebEngineDownloadRequest,
    *,
    allowed: bool,
    folder: Path | None,
    journal: EventSink,
) -> bool:
    """Accept a download into the session folder when allowed, else cancel it; journal both."""
    url = request.url().toString()
    if not allowed or folder is None:
        request.cancel()
        journal(Event("web.download_blocked", {"url": url}))
        return False
    folder.mkdir(parents=True, exist_ok=True)
    request.setDownloadDirectory(str(folder))
    request.accept()
    journal(Event("web.download", {"url": url, "file": str(folder / request.downloadFileName())}))
    return True


class ExamView(QWebEngineView):
    """The view: no context menu; nothing else (no devtools page is ever attached)."""

    def __init__(self, page: ExamPage, parent: Any = None) -> None:
        super().__init__(parent)
        self.setPage(page)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
