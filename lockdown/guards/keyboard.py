"""Keyboard guard: the kiosk holds the keyboard and swallows app-switching and system shortcuts.

While the exam runs no key reaches the window manager or another program:

- X11: the kiosk's native window grabs the keyboard (``QWindow.setKeyboardGrabEnabled``,
  an active X grab: passive window-manager bindings such as Alt+Tab never fire, other
  clients get no keys); keys the X server acts on before any grab (VT switching) are
  switched off through the platform's XKB option, recorded for crash recovery first.
- Windows: the platform installs a ``WH_KEYBOARD_LL`` hook that asks :meth:`decide`
  about each key and rejects injected keystrokes.
- macOS: the platform sets presentation options (no dock, menu bar, process switching
  or force quit).

An event filter swallows the blocked combinations that reach the application (Alt+Tab,
Super, Ctrl+Alt+T, Ctrl+Esc, PrintScreen, Alt+F4…) unless ``guards.keyboard_allow`` keeps
them (assistive technology), and journals each one as ``guards.key_blocked`` (rate-limited
per combination).

Our own dialogs: the grab and the filter follow the keyboard to our own top-level windows
(:meth:`KeyboardGuard.follow`). When a modal dialog of ours opens (the quit password, a
permission question) it gets them — and the focus, if the window manager did not give it —
and when it closes they go back to the kiosk; the grab is moved, never released in between.
Qt only knows our own windows, so another program's window never gets the grab. Closing a
Qt popup (a menu, a combo box list, a web page's select list) releases every keyboard grab
of the process: the guard takes it back when the popup hides, and re-asserts it every
:data:`REGRAB_INTERVAL_MS` for popups it did not see open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import shiboken6
from PySide6.QtCore import QEvent, QKeyCombination, QObject, Qt, QTimer
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence, QWindow
from PySide6.QtWidgets import QWidget

from lockdown import log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.guards.restore import RestoreLog, RestoreRecord
from lockdown.guards.windows import FilteredWindows
from lockdown.platform.base import Capability, DesktopPlatform, KeyStroke

_K = Qt.Key
#: Keys that stand for the Super/Windows/Command key.
META_KEYS: Final = frozenset(
    {_K.Key_Meta, _K.Key_Super_L, _K.Key_Super_R, _K.Key_Hyper_L, _K.Key_Hyper_R}
)
#: Keys that are modifiers themselves (a combo of only these is not a shortcut).
MODIFIER_KEYS: Final = frozenset(
    {_K.Key_Shift, _K.Key_Control, _K.Key_Alt, _K.Key_AltGr, _K.Key_CapsLock, *META_KEYS}
)
_MODIFIER_ORDER: Final = (
    (Qt.KeyboardModifier.ControlModifier, "Ctrl"),
    (Qt.KeyboardModifier.AltModifier, "Alt"),
    (Qt.KeyboardModifier.ShiftModifier, "Shift"),
    (Qt.KeyboardModifier.MetaModifier, "Meta"),
)

#: Combinations swallowed while the keyboard is held (Qt portable names).
BLOCKED_COMBOS: Final = frozenset(
    {
        "Alt+Tab",
        "Alt+Shift+Tab",
        "Alt+Shift+Backtab",
        "Alt+Backtab",
        "Alt+Esc",
        "Alt+Shift+Esc",
        "Alt+Space",
        "Alt+F1",
        "Alt+F2",
        "Alt+F3",
        "Alt+F4",
        "Ctrl+Esc",
        "Ctrl+Shift+Esc",
        "Ctrl+Alt+T",
        "Ctrl+Alt+Del",
        "Ctrl+Alt+L",
        "Ctrl+Alt+D",
        "Ctrl+Alt+Backspace",
        "Ctrl+Alt+Left",
        "Ctrl+Alt+Right",
        "Ctrl+Alt+Up",
        "Ctrl+Alt+Down",
        "Ctrl+Alt+Tab",
        *(f"Ctrl+Alt+F{n}" for n in range(1, 13)),
    }
)
#: Keys blocked with any modifiers (screenshots, system request).
BLOCKED_KEYS: Final = frozenset({"Print", "SysReq", "Meta"})
#: How often the X grab is re-asserted (a closing Qt popup releases it), in milliseconds.
REGRAB_INTERVAL_MS: Final = 200
_POPUP_TYPES: Final = frozenset({Qt.WindowType.Popup})


def combo_name(key: int, modifiers: Qt.KeyboardModifier) -> str:
    """A key press as a portable name: ``Alt+Tab``, ``Ctrl+Alt+T``, ``Meta``, ``Print``."""
    parts = [name for flag, name in _MODIFIER_ORDER if modifiers & flag]
    if key in META_KEYS:
        parts = [p for p in parts if p != "Meta"] + ["Meta"]
        return "+".join(parts)
    if key in MODIFIER_KEYS or key in (0, _K.Key_unknown):
        return "+".join(parts)
    name = QKeySequence(QKeyCombination(Qt.KeyboardModifier.NoModifier, _K(key))).toString(
        QKeySequence.SequenceFormat.PortableText
    )
    return "+".join([*parts, name or f"0x{key:x}"])


def normalise(combo: str) -> str:
    """Spell a combination from the settings the way :func:`combo_name` does."""
    names = [p.strip() for p in combo.replace(" ", "").split("+") if p.strip()]
    lowered = {n.lower(): n for n in names}
    aliases = {"control": "Ctrl", "ctrl": "Ctrl", "alt": "Alt", "shift": "Shift"}
    aliases.update({"meta": "Meta", "super": "Meta", "win": "Meta", "cmd": "Meta"})
    mods = [aliases[n] for n in lowered if n in aliases]
    rest = [lowered[n] for n in lowered if n not in aliases]
    ordered = [name for _, name in _MODIFIER_ORDER if name in mods]
    if not rest:
        if "Meta" in ordered:
            ordered = [m for m in ordered if m != "Meta"] + ["Meta"]
        return "+".join(ordered)
    key = QKeySequence.fromString(rest[-1], QKeySequence.SequenceFormat.PortableText)
    key_name = key.toString(QKeySequence.SequenceFormat.PortableText) if key.count() else ""
    return "+".join([*ordered, key_name or rest[-1]])


def is_blocked(combo: str, allow: Iterable[str] = ()) -> bool:
    """True when ``combo`` is an app-switching or system shortcut not kept by ``allow``."""
    if not combo or combo in frozenset(allow):
        return False
    parts = combo.split("+")
    if "Meta" in parts:
        return True
    return combo in BLOCKED_COMBOS or parts[-1] in BLOCKED_KEYS


def stroke_combo(stroke: KeyStroke) -> str:
    """A native key press (Windows hook) as a portable name, like :func:`combo_name`."""
    parts = [name for _, name in _MODIFIER_ORDER if name in stroke.modifiers]
    if stroke.key == "Meta":
        return "+".join([p for p in parts if p != "Meta"] + ["Meta"])
    if stroke.key in ("Ctrl", "Alt", "Shift"):
        return "+".join(parts)
    return "+".join([*parts, stroke.key])


class _KeyFilter(QObject):
    """On each of our windows that may have the keyboard: swallows blocked key presses and
    releases, and tells the guard when the window is shown, hidden or blocked by a modal."""

    _WATCHED: Final = frozenset(
        {
            QEvent.Type.Expose,
            QEvent.Type.Show,
            QEvent.Type.Hide,
            QEvent.Type.WindowBlocked,
            QEvent.Type.WindowUnblocked,
        }
    )

    def __init__(self, guard: KeyboardGuard) -> None:
        super().__init__()
        self._guard = guard

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in self._WATCHED:
            self._guard.follow()
            return False
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if not isinstance(event, QKeyEvent):
            return False
        combo = combo_name(event.key(), event.modifiers())
        if not self._guard.blocks(combo):
            return False
        if kind == QEvent.Type.KeyPress and not event.isAutoRepeat():
            self._guard.journal_blocked(combo, injected=False)
        return True


class KeyboardGuard:
    """Holds the keyboard for the kiosk window and journals every blocked combination."""

    def __init__(
        self,
        settings: Settings,
        window: QWidget,
        platform: DesktopPlatform,
        restore: RestoreLog | None = None,
    ) -> None:
        self._enabled: bool = settings["guards.keyboard_lock"]
        self._allow = frozenset(normalise(c) for c in settings["guards.keyboard_allow"])
        self._window = window
        self._platform = platform
        self._restore = restore
        self._report: RateLimitedSink | None = None
        self._windows: FilteredWindows | None = None
        self._x_grab = False
        self._native_hook = False
        self._system_keys: RestoreRecord | None = None
        self._saved_state: Mapping[str, Any] | None = None
        self._running = False
        self._kiosk_handle: QWindow | None = None
        self._holder: QWindow | None = None
        self._activated: list[QWindow] = []
        self._timer: QTimer | None = None
        self._following = False
        self._focus: QWindow | None = None
        #: called with our window when the X server refused it the keyboard grab (another
        #: client holds it); the shared-display guard finds that client and takes it back
        self.on_grab_refused: Callable[[QWindow], None] | None = None

    @property
    def name(self) -> str:
        return "keyboard"

    @property
    def allow(self) -> frozenset[str]:
        return self._allow

    def info(self) -> GuardInfo:
        if not self._enabled:
            return GuardInfo(self.name, "none", Availability.FULL, "keyboard lock is off")
        hook = self._platform.support(Capability.KEYBOARD_HOOK)
        if hook.available:
            return GuardInfo(self.name, hook.backend, Availability.FULL)
        if self._platform.name == "x11":
            keys = self._platform.support(Capability.SYSTEM_KEYS)
            if keys.available:
                return GuardInfo(
                    self.name, f"x11 keyboard grab + {keys.backend}", Availability.FULL
                )
            return GuardInfo(
                self.name,
                "x11 keyboard grab",
                Availability.PARTIAL,
                f"VT switching keys stay active: {keys.reason}",
            )
        return GuardInfo(
            self.name,
            "qt event filter",
            Availability.PARTIAL,
            f"only keys sent to the exam window are filtered: {hook.reason}",
        )

    def blocks(self, combo: str) -> bool:
        return is_blocked(combo, self._allow)

    def journal_blocked(self, combo: str, *, injected: bool) -> None:
        log.guards.info("Blocked key combination %s", combo)
        if self._report is not None:
            payload: dict[str, object] = {"combo": combo}
            if injected:
                payload["injected"] = True
            self._report(Event("guards.key_blocked", payload))

    def decide(self, stroke: KeyStroke) -> bool:
        """For a native hook: True swallows ``stroke`` (blocked combo or injected key)."""
        combo = stroke_combo(stroke)
        if stroke.injected:
            self.journal_blocked(combo, injected=True)
            return True
        if self.blocks(combo):
            self.journal_blocked(combo, injected=False)
            return True
        return False

    # -- which of our windows holds the keyboard -------------------------------------

    def holder(self) -> QWindow | None:
        """The window of ours the keyboard grab was last put on (None when not grabbing)."""
        return self._holder if self._x_grab else None

    def _adopt(self, window: QWindow) -> None:
        """Put the key filter on one of our windows (once)."""
        if self._windows is not None:
            self._windows.adopt(window)

    def _forget(self, obj: QObject | None = None) -> None:
        """A window of ours was destroyed: it no longer holds the keyboard."""
        if self._holder is not None and (
            self._holder is obj or not shiboken6.isValid(self._holder)
        ):
            self._holder = None

    def _target(self) -> QWindow | None:
        """Which window should hold the keyboard now (None: a popup of ours holds it).

        Works from ``topLevelWindows()`` and the focus window the signal gave us: in
        PySide6 6.12 on CPython 3.11 each call that returns a null ``QObject*``
        (``QGuiApplication.modalWindow()``, ``focusWindow()``…) takes a reference from
        ``None``, and a few thousand of them abort the process; this runs 5 times a second.
        """
        windows = [w for w in QGuiApplication.topLevelWindows() if shiboken6.isValid(w)]
        visible = [w for w in windows if w.isVisible()]
        popups = [w for w in visible if w.type() in _POPUP_TYPES]
        if popups:
            for popup in popups:  # Qt grabs for its popups; we re-grab when they hide
                self._adopt(popup)
            return None
        focus = self._focus if self._focus is not None and shiboken6.isValid(self._focus) else None
        modals = [w for w in visible if w.modality() != Qt.WindowModality.NonModal]
        modal = focus if focus is not None and any(w is focus for w in modals) else None
        if modal is None and modals:
            modal = modals[-1]
        for window in (modal, focus, self._holder):
            if window is not None and shiboken6.isValid(window) and _can_hold(window):
                return window
        return self._kiosk_handle

    def follow(self) -> None:
        """Move the grab and the key filter to the window of ours that should have the keys.

        Our modal dialog (the quit password) or another window of ours that has the focus
        gets them; when it closes they go back to the kiosk. Windows of other programs never
        appear here: Qt only knows our own. The grab is moved, never released in between
        (an X ungrab is global); a window not mapped yet keeps the grab where it was.
        """
        if not self._running or self._following:
            return
        self._following = True
        try:
            target = self._target()
            if target is None:
                return
            self._adopt(target)
            # Grab even when the target holds it already: closing a Qt popup released it.
            if self._x_grab:
                if target.setKeyboardGrabEnabled(True):
                    if target is not self._holder:
                        log.guards.debug("Keyboard held by %r", target.title())
                    self._holder = target
                elif self.on_grab_refused is not None:
                    self.on_grab_refused(target)  # another client holds the keyboard
            if (
                target.modality() != Qt.WindowModality.NonModal
                and target.isExposed()
                and self._focus is not target
                and not any(w is target for w in self._activated)
            ):
                # Keys of a modal-blocked window are dropped: give the dialog the focus.
                self._activated.append(target)
                target.requestActivate()
        finally:
            self._following = False

    def _tick(self) -> None:
        """Re-assert the grab: closing a Qt popup (menu, combo box, web page select list)
        releases every keyboard grab of the process; a popup that takes no focus (a web
        page's select list) is only seen here."""
        self.follow()

    # -- start / stop -----------------------------------------------------------------

    def start(self, report: EventSink) -> None:
        if self._running or not self._enabled:
            return
        self._report = RateLimitedSink(report, 5.0, key_field="combo")
        wid = int(self._window.winId())
        handle = self._window.windowHandle()
        if handle is None:
            raise GuardUnavailable("the exam window has no native window to hold the keyboard")
        self._kiosk_handle = handle
        self._native_hook = self._platform.hook_keyboard(wid, self.decide)
        if not self._native_hook:
            if not handle.setKeyboardGrabEnabled(True):
                raise GuardUnavailable(
                    "another program holds the keyboard (a screen locker or a remote tool); "
                    "close it and start again"
                )
            self._x_grab = True
            self._holder = handle
        self._windows = FilteredWindows(
            _KeyFilter(self), follow_focus=False, on_forget=self._forget
        )
        self._windows.start(handle)
        self._running = True
        self._focus = QGuiApplication.focusWindow()  # once; then from the signal
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.focusWindowChanged.connect(self._on_focus_window)
            # WORKAROUND(PySide6 6.12 segfault): a slot taking focusObjectChanged's QObject
            # makes PySide wrap the web engine's internal focus item and crash in
            # findDerivedType; a slot without arguments is not handed the object.
            app.focusObjectChanged.connect(self._on_focus_object)
        if self._x_grab:
            self._timer = QTimer()
            self._timer.setInterval(REGRAB_INTERVAL_MS)
            self._timer.timeout.connect(self._tick)
            self._timer.start()
        self.follow()  # a dialog of ours may already be open
        self._disable_system_keys()
        log.guards.info(
            "Keyboard guard started (%s; allowed: %s)",
            "native hook" if self._native_hook else "keyboard grab",
            ", ".join(sorted(self._allow)) or "none",
        )

    def _on_focus_window(self, window: QWindow | None) -> None:
        self._focus = window
        self.follow()

    def _on_focus_object(self) -> None:
        # A popup that takes the focus (combo box list) is adopted as it opens, so its
        # closing (which releases the grab) hands the keyboard back at once.
        self.follow()

    def _disable_system_keys(self) -> None:
        if not self._platform.support(Capability.SYSTEM_KEYS).available:
            return
        state = self._platform.system_keys_state()
        if state is None:
            return
        if self._restore is not None:
            self._system_keys = self._restore.record("system_keys", state)
        try:
            self._platform.disable_system_keys()
        except OSError as exc:
            log.guards.warning("Cannot switch off system keys: %s", exc)
            if self._restore is not None and self._system_keys is not None:
                self._restore.done(self._system_keys)
            self._system_keys = None
            return
        self._saved_state = state

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        app = QGuiApplication.instance()
        if isinstance(app, QGuiApplication):
            app.focusWindowChanged.disconnect(self._on_focus_window)
            app.focusObjectChanged.disconnect(self._on_focus_object)
        self._forget()
        if self._windows is not None:
            self._windows.stop()
            self._windows = None
        self._activated = []
        if self._x_grab:
            ungrab = self._holder or self._window.windowHandle()
            if ungrab is not None:
                ungrab.setKeyboardGrabEnabled(False)  # releases the grab on any window of ours
                # The ungrab request has no reply: push it to the server now, not at the
                # next turn of the event loop.
                QGuiApplication.sync()
        self._x_grab = False
        self._holder = None
        self._kiosk_handle = None
        self._focus = None
        if self._native_hook:
            self._platform.unhook_keyboard()
            self._native_hook = False
        state = self._saved_state
        if state is not None:
            try:
                self._platform.restore_system_keys(state)
            except OSError as exc:
                log.guards.error("Cannot restore the system keys: %s", exc)
            else:
                if self._restore is not None and self._system_keys is not None:
                    self._restore.done(self._system_keys)
            self._saved_state = None
            self._system_keys = None
        if self._report is not None:
            self._report.flush()
        log.guards.info("Keyboard guard stopped")


def _can_hold(window: QWindow) -> bool:
    """A visible top-level window of ours that may take the keyboard (not a popup/tooltip)."""
    return (
        window.isVisible()
        and window.isTopLevel()
        and window.type() not in _POPUP_TYPES
        and window.type() != Qt.WindowType.ToolTip
    )
