"""Linux/X11 desktop platform (python-xlib): active window, activation, XKB server keys.

X11 has no keyboard hook outside the toolkit: the keyboard guard grabs the keyboard with
Qt's own connection so keys reach our widgets. X11 cannot hide a window from other
clients' screen capture, so capture exclusion is unavailable here. Keys that the X server
acts on before any grab (Ctrl+Alt+F1… VT switching, Ctrl+Alt+Backspace) are switched off
with the XKB option ``srvrkeys:none`` through ``setxkbmap``; the previous options are
returned so they can be recorded before the change and put back afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Mapping
from typing import Any, Final

from Xlib import X, Xatom, display, error
from Xlib.protocol import event as xevent

from lockdown import log
from lockdown.platform.base import Capability, PlatformDefaults, Support, WindowRef
from lockdown.platform.xconnect import open_display

SERVER_KEYS_OPTION: Final = "srvrkeys:none"
_SOURCE_PAGER: Final = 2  # _NET_ACTIVE_WINDOW source indication: a pager, obeyed by WMs


class X11Platform(PlatformDefaults):
    """X11 through its own python-xlib connection (separate from Qt's)."""

    def __init__(self, display_name: str | None = None) -> None:
        self._display_name = display_name or os.environ.get("DISPLAY", "")
        self._lock = threading.Lock()
        self._dpy: display.Display | None = None
        self._error = ""
        try:
            self._dpy = open_display(self._display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            self._error = f"cannot connect to the X display {self._display_name!r} ({exc})"
            log.guards.warning("X11 platform: %s", self._error)

    @property
    def name(self) -> str:
        return "x11"

    @property
    def display_name(self) -> str:
        """The X display this platform talks to (``:0``)."""
        return self._display_name

    def __del__(self) -> None:
        if getattr(self, "_dpy", None) is not None:
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._dpy is not None:
                self._dpy.close()
                self._dpy = None

    def support(self, capability: Capability) -> Support:
        if self._dpy is None:
            return Support(False, "x11", self._error or "no X display")
        if capability is Capability.ACTIVE_WINDOW:
            return Support(True, "x11 (_NET_ACTIVE_WINDOW, input focus)")
        if capability is Capability.SYSTEM_KEYS:
            if shutil.which("setxkbmap") is None:
                return Support(False, "x11 (xkb)", "setxkbmap is not installed")
            return Support(True, "x11 (xkb srvrkeys:none)")
        if capability is Capability.KEYBOARD_HOOK:
            return Support(False, "x11", "X11 has no hook; the toolkit grabs the keyboard")
        if capability in (Capability.CAPTURE_EXCLUSION, Capability.CAPTURE_EXCLUDED_WINDOWS):
            return Support(False, "x11", "X11 cannot hide a window from other clients' capture")
        return Support(False, "x11", "the toolkit watches the clipboard (XFixes) on X11")

    # -- windows ----------------------------------------------------------------------

    def _atom(self, dpy: display.Display, name: str) -> int:
        atom: int = dpy.intern_atom(name)
        return atom

    def _property(self, dpy: display.Display, window: Any, name: str, kind: int) -> Any:
        try:
            prop = window.get_full_property(self._atom(dpy, name), kind)
        except error.XError:
            return None
        return None if prop is None else prop.value

    def _describe(self, dpy: display.Display, wid: int) -> WindowRef:
        window = dpy.create_resource_object("window", wid)
        pid_value = self._property(dpy, window, "_NET_WM_PID", Xatom.CARDINAL)
        pid = int(pid_value[0]) if pid_value is not None and len(pid_value) else None
        title = self._property(dpy, window, "_NET_WM_NAME", self._atom(dpy, "UTF8_STRING"))
        if title is None:
            title = self._property(dpy, window, "WM_NAME", Xatom.STRING)
        if isinstance(title, bytes):
            title = title.decode("utf-8", "replace")
        return WindowRef(id=wid, pid=pid, title=str(title or ""))

    def active_window(self) -> WindowRef | None:
        with self._lock:
            dpy = self._dpy
            if dpy is None:
                return None
            try:
                root = dpy.screen().root
                value = self._property(dpy, root, "_NET_ACTIVE_WINDOW", Xatom.WINDOW)
                wid = int(value[0]) if value is not None and len(value) else 0
                if not wid:
                    # No window manager (or none active): the X input focus is the truth.
                    focus = dpy.get_input_focus().focus
                    wid = 0 if isinstance(focus, int) else int(focus.id)
                    if wid in (0, 1, root.id):  # None, PointerRoot, root
                        return None
                return self._describe(dpy, wid)
            except (error.XError, error.ConnectionClosedError) as exc:
                log.guards.warning("X11: cannot read the active window (%s)", exc)
                return None

    def _has_window_manager(self, dpy: display.Display) -> bool:
        root = dpy.screen().root
        value = self._property(dpy, root, "_NET_SUPPORTING_WM_CHECK", Xatom.WINDOW)
        return value is not None and len(value) > 0 and int(value[0]) != 0

    def activate_window(self, window: int) -> None:
        with self._lock:
            dpy = self._dpy
            if dpy is None:
                return
            try:
                root = dpy.screen().root
                target = dpy.create_resource_object("window", window)
                message = xevent.ClientMessage(
                    window=target,
                    client_type=self._atom(dpy, "_NET_ACTIVE_WINDOW"),
                    data=(32, [_SOURCE_PAGER, X.CurrentTime, 0, 0, 0]),
                )
                mask = X.SubstructureRedirectMask | X.SubstructureNotifyMask
                root.send_event(message, event_mask=mask)
                if not self._has_window_manager(dpy):
                    # Nobody answers the message: raise and focus the window ourselves.
                    catch = error.CatchError()
                    target.configure(stack_mode=X.Above, onerror=catch)
                    target.set_input_focus(X.RevertToParent, X.CurrentTime, onerror=catch)
                dpy.sync()
            except (error.XError, error.ConnectionClosedError) as exc:
                log.guards.warning("X11: cannot activate window %#x (%s)", window, exc)

    # -- system keys ------------------------------------------------------------------

    def _setxkbmap(self, *args: str, display_name: str = "") -> str:
        binary = shutil.which("setxkbmap")
        if binary is None:
            raise OSError("setxkbmap is not installed")
        env = {**os.environ, "DISPLAY": display_name or self._display_name}
        done = subprocess.run(
            [binary, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            pass_fds=_authority_fds(env),
        )
        if done.returncode != 0:
            raise OSError(f"setxkbmap {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def system_keys_state(self) -> Mapping[str, Any] | None:
        if self.support(Capability.SYSTEM_KEYS).available is False:
            return None
        options: list[str] = []
        for line in self._setxkbmap("-query").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "options":
                options = [o for o in value.strip().split(",") if o]
        return {"display": self._display_name, "xkb_options": options}

    def disable_system_keys(self) -> None:
        self._setxkbmap("-option", SERVER_KEYS_OPTION)

    def restore_system_keys(self, state: Mapping[str, Any]) -> None:
        options = [str(o) for o in state.get("xkb_options", [])]
        where = str(state.get("display", ""))
        self._setxkbmap("-option", "", "-option", ",".join(options), display_name=where)


def _authority_fds(env: Mapping[str, str]) -> tuple[int, ...]:
    """The cookie's descriptor when ``XAUTHORITY`` names one of ours (``/proc/self/fd/N``).

    On the exam's own display the cookie lives only in a close-on-exec memory file of
    this process; an X tool we run ourselves (setxkbmap) gets that one descriptor under
    the same number, so the same ``XAUTHORITY`` works in it too.
    """
    prefix = "/proc/self/fd/"
    authority = env.get("XAUTHORITY", "")
    if authority.startswith(prefix) and authority[len(prefix) :].isdigit():
        fd = int(authority[len(prefix) :])
        try:
            os.fstat(fd)
        except OSError:
            return ()
        return (fd,)
    return ()
