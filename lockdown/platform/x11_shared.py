"""X11 on a shared display: watch the kiosk's window, find what covers it, take grabs back.

The techniques of screen lockers (xsecurelock), on python-xlib connections of our own:

- :class:`X11WindowWatch` selects ``SubstructureNotify`` and ``PropertyChange`` on the root
  window and ``StructureNotify`` and ``PropertyChange`` on the kiosk's window; its socket
  becomes readable whenever a window is mapped, unmapped, moved, restacked or a desktop
  property changes (the caller watches it; nothing polls).
- :class:`X11SharedDisplay` answers what the kiosk's window looks like now
  (:class:`KioskState`: mapped, minimised, full screen, desktop, geometry, the windows
  stacked above it with their owner's pid from the X Resource extension) and undoes a
  change (map, switch the desktop back, full screen again, lower or minimise an intruder).
- A grab held by another client cannot be asked for: :meth:`X11SharedDisplay.take_back_grab`
  unmaps one client's windows at a time (a grab on a window that stops being viewable is
  released) and tries ours again; the client whose unmapping frees the grab is the holder.
  Its windows stay unmapped, or the client is disconnected (``XKillClient``). The window
  manager and the desktop shell (dock, desktop windows) are never touched.
- :func:`install_io_error_handler` replaces Xlib's process-wide I/O error handler, which
  otherwise calls ``exit(1)`` when the display connection dies (``xkill`` of the kiosk).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from Xlib import X, Xatom, display, error
from Xlib.ext import res
from Xlib.protocol import event as xevent

from lockdown import log
from lockdown.platform.xconnect import open_display

ALL_DESKTOPS: Final = 0xFFFFFFFF
_NET_WM_STATE_REMOVE: Final = 0
_NET_WM_STATE_ADD: Final = 1
_SOURCE_PAGER: Final = 2
_ICONIC_STATE: Final = 3
#: Window types of the desktop shell: never unmapped or disconnected.
SHELL_TYPES: Final = ("_NET_WM_WINDOW_TYPE_DESKTOP", "_NET_WM_WINDOW_TYPE_DOCK")
#: A grab refused this many times, this far apart, is held, not passing by: only then is
#: a holder searched for (a blameless client's windows are never unmapped for a moment).
_CONFIRM_TRIES: Final = 3
_CONFIRM_PAUSE_S: Final = 0.03


@dataclass(frozen=True)
class XWindow:
    """Another client's window as the journal names it."""

    id: int
    pid: int | None
    title: str
    override_redirect: bool = False
    #: the X client's resource-id base (who to disconnect)
    client: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pid": self.pid,
            "title": self.title,
            "override_redirect": self.override_redirect,
        }


@dataclass(frozen=True)
class KioskState:
    """The kiosk's window as the X server and the window manager see it."""

    exists: bool
    viewable: bool = False
    iconic: bool = False
    fullscreen: bool = False
    desktop: int | None = None
    current_desktop: int | None = None
    geometry: tuple[int, int, int, int] = (0, 0, 0, 0)
    above: tuple[XWindow, ...] = ()
    window_manager: bool = False

    def on_other_desktop(self) -> bool:
        return (
            self.desktop is not None
            and self.current_desktop is not None
            and self.desktop not in (ALL_DESKTOPS, self.current_desktop)
        )


@dataclass(frozen=True)
class GrabOutcome:
    """What :meth:`X11SharedDisplay.take_back_grab` found and did."""

    regained: bool
    holder: tuple[XWindow, ...] = ()
    action: str = "none"
    exempt: tuple[XWindow, ...] = field(default_factory=tuple)


class X11SharedDisplay:
    """Queries and fixes on a connection of its own (call from one thread at a time)."""

    def __init__(self, display_name: str | None = None) -> None:
        self.display_name = display_name or os.environ.get("DISPLAY", "")
        self._lock = threading.RLock()
        self._dpy: display.Display | None = None
        self.error = ""
        try:
            self._dpy = open_display(self.display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            self.error = f"cannot connect to the X display {self.display_name!r} ({exc})"
            return
        self.has_xres = bool(self._dpy.has_extension("X-Resource"))
        self._atoms: dict[str, int] = {}

    @property
    def available(self) -> bool:
        return self._dpy is not None

    def close(self) -> None:
        with self._lock:
            if self._dpy is not None:
                self._dpy.close()
                self._dpy = None

    # -- reading ----------------------------------------------------------------------

    def _atom(self, name: str) -> int:
        assert self._dpy is not None
        if name not in self._atoms:
            self._atoms[name] = int(self._dpy.intern_atom(name))
        return self._atoms[name]

    def _prop(self, window: Any, name: str, kind: int) -> Any:
        try:
            prop = window.get_full_property(self._atom(name), kind)
        except error.XError:
            return None
        return None if prop is None else prop.value

    def _card(self, window: Any, name: str, kind: int = Xatom.CARDINAL) -> int | None:
        value = self._prop(window, name, kind)
        return int(value[0]) if value is not None and len(value) else None

    def _title(self, window: Any) -> str:
        title = self._prop(window, "_NET_WM_NAME", self._atom("UTF8_STRING"))
        if title is None:
            title = self._prop(window, "WM_NAME", Xatom.STRING)
        if isinstance(title, bytes):
            title = title.decode("utf-8", "replace")
        return str(title or "")

    def pid_of(self, wid: int) -> int | None:
        """The pid of the client that created ``wid`` (X Resource), else ``_NET_WM_PID``."""
        with self._lock:
            return self._pid_of(wid)

    def _pid_of(self, wid: int) -> int | None:
        assert self._dpy is not None
        if self.has_xres:
            try:
                reply = self._dpy.res_query_client_ids(
                    [{"client": wid, "mask": res.LocalClientPIDMask}]
                )
                for item in reply.ids:
                    if item.spec.mask == res.LocalClientPIDMask and item.value:
                        return int(item.value[0])
            except error.XError:
                pass
        window = self._dpy.create_resource_object("window", wid)
        return self._card(window, "_NET_WM_PID")

    def client_of(self, wid: int) -> int:
        """The resource-id base of the X client that created ``wid``."""
        with self._lock:
            return self._client_base(wid) if self._dpy is not None else 0

    def _client_base(self, wid: int) -> int:
        assert self._dpy is not None
        mask = int(self._dpy.display.info.resource_id_mask)
        return wid & ~mask

    def _describe(self, window: Any, attrs: Any | None = None) -> XWindow:
        override = bool(attrs.override_redirect) if attrs is not None else False
        client = self._client_window(window)
        return XWindow(
            id=int(window.id),
            pid=self._pid_of(int(client.id)),
            title=self._title(client),
            override_redirect=override,
            client=self._client_base(int(client.id)),
        )

    def _client_window(self, toplevel: Any) -> Any:
        """The client window inside a window manager's frame (the frame itself if none)."""
        if self._prop(toplevel, "WM_STATE", self._atom("WM_STATE")) is not None:
            return toplevel
        try:
            children = toplevel.query_tree().children
        except error.XError:
            return toplevel
        for child in children:
            if self._prop(child, "WM_STATE", self._atom("WM_STATE")) is not None:
                return child
            for grandchild in self._safe_children(child):
                if self._prop(grandchild, "WM_STATE", self._atom("WM_STATE")) is not None:
                    return grandchild
        return toplevel

    def _safe_children(self, window: Any) -> list[Any]:
        try:
            return list(window.query_tree().children)
        except error.XError:
            return []

    def _toplevel(self, wid: int) -> Any:
        """The root child that holds ``wid`` (the window manager's frame, or ``wid``)."""
        assert self._dpy is not None
        root = self._dpy.screen().root
        window = self._dpy.create_resource_object("window", wid)
        for _ in range(16):
            tree = window.query_tree()
            if tree.parent == X.NONE or int(tree.parent.id) == int(root.id):
                return window
            window = tree.parent
        return window

    def window_manager_pid(self) -> int | None:
        with self._lock:
            return self._wm_pid()

    def _wm_pid(self) -> int | None:
        assert self._dpy is not None
        root = self._dpy.screen().root
        check = self._card(root, "_NET_SUPPORTING_WM_CHECK", Xatom.WINDOW)
        return self._pid_of(check) if check else None

    def state(self, wid: int, ours: Callable[[XWindow], bool]) -> KioskState:
        """The kiosk window ``wid`` now; ``ours`` says which other windows are ours."""
        with self._lock:
            if self._dpy is None:
                return KioskState(exists=False)
            try:
                return self._state(wid, ours)
            except (error.XError, error.ConnectionClosedError) as exc:
                log.guards.debug("X11: cannot read the kiosk's window (%s)", exc)
                return KioskState(exists=False)

    def _state(self, wid: int, ours: Callable[[XWindow], bool]) -> KioskState:
        assert self._dpy is not None
        root = self._dpy.screen().root
        window = self._dpy.create_resource_object("window", wid)
        attrs = window.get_attributes()
        wm_state = self._prop(window, "WM_STATE", self._atom("WM_STATE"))
        net_state = self._prop(window, "_NET_WM_STATE", Xatom.ATOM)
        states = {int(a) for a in net_state} if net_state is not None else set()
        iconic = (wm_state is not None and len(wm_state) and int(wm_state[0]) == _ICONIC_STATE) or (
            self._atom("_NET_WM_STATE_HIDDEN") in states
        )
        geo = window.get_geometry()
        origin = window.translate_coords(root, 0, 0)
        geometry = (-int(origin.x), -int(origin.y), int(geo.width), int(geo.height))
        toplevel = self._toplevel(wid)
        stack = list(root.query_tree().children)
        ids = [int(w.id) for w in stack]
        above: list[XWindow] = []
        wm_pid = self._wm_pid()
        if int(toplevel.id) in ids:
            for other in stack[ids.index(int(toplevel.id)) + 1 :]:
                try:
                    oattrs = other.get_attributes()
                except error.XError:
                    continue
                if oattrs.map_state != X.IsViewable:
                    continue
                if not _overlaps(self._root_rect(other), geometry):
                    continue
                described = self._describe(other, oattrs)
                if ours(described) or (wm_pid is not None and described.pid == wm_pid):
                    continue
                above.append(described)
        return KioskState(
            exists=True,
            viewable=attrs.map_state == X.IsViewable,
            iconic=bool(iconic),
            fullscreen=self._atom("_NET_WM_STATE_FULLSCREEN") in states,
            desktop=self._card(window, "_NET_WM_DESKTOP"),
            current_desktop=self._card(root, "_NET_CURRENT_DESKTOP"),
            geometry=geometry,
            above=tuple(above),
            window_manager=wm_pid is not None,
        )

    def _root_rect(self, window: Any) -> tuple[int, int, int, int]:
        try:
            geo = window.get_geometry()
        except error.XError:
            return (0, 0, 0, 0)
        border = int(geo.border_width)
        return (int(geo.x), int(geo.y), int(geo.width) + 2 * border, int(geo.height) + 2 * border)

    # -- undoing ----------------------------------------------------------------------

    def _root_message(self, window: int, name: str, data: list[int]) -> None:
        assert self._dpy is not None
        root = self._dpy.screen().root
        target = root if window == 0 else self._dpy.create_resource_object("window", window)
        message = xevent.ClientMessage(
            window=target,
            client_type=self._atom(name),
            data=(32, [*data, 0, 0, 0, 0, 0][:5]),
        )
        root.send_event(message, event_mask=X.SubstructureRedirectMask | X.SubstructureNotifyMask)

    def _do(self, what: str, action: Callable[[], None]) -> None:
        with self._lock:
            if self._dpy is None:
                return
            try:
                action()
                self._dpy.sync()
            except (error.XError, error.ConnectionClosedError) as exc:
                log.guards.warning("X11: cannot %s (%s)", what, exc)

    def show_kiosk(
        self,
        wid: int,
        state: KioskState,
        screen: tuple[int, int, int, int],
        *,
        desktop: int | None = None,
        switch_to: int | None = None,
    ) -> None:
        """Map, de-minimise, full screen on ``screen``; move the kiosk to ``desktop`` or
        switch the display to the desktop ``switch_to``."""

        def act() -> None:
            assert self._dpy is not None
            window = self._dpy.create_resource_object("window", wid)
            if desktop is not None:
                self._root_message(wid, "_NET_WM_DESKTOP", [desktop, _SOURCE_PAGER])
            if switch_to is not None:
                self._root_message(0, "_NET_CURRENT_DESKTOP", [switch_to, X.CurrentTime])
            if not state.viewable or state.iconic:
                window.map()
            if state.window_manager:
                self._root_message(
                    wid,
                    "_NET_WM_STATE",
                    [_NET_WM_STATE_REMOVE, self._atom("_NET_WM_STATE_HIDDEN"), 0, 2],
                )
                if not state.fullscreen:
                    self._root_message(
                        wid,
                        "_NET_WM_STATE",
                        [_NET_WM_STATE_ADD, self._atom("_NET_WM_STATE_FULLSCREEN"), 0, 2],
                    )
                if state.geometry != screen:
                    # gravity static, x y w h given, from a pager
                    flags = 10 | (0xF << 8) | (_SOURCE_PAGER << 12)
                    self._root_message(wid, "_NET_MOVERESIZE_WINDOW", [flags, *screen])
                self._root_message(wid, "_NET_ACTIVE_WINDOW", [_SOURCE_PAGER, X.CurrentTime, 0])
            else:
                x, y, w, h = screen
                window.configure(x=x, y=y, width=w, height=h, stack_mode=X.Above)

        self._do("show the kiosk", act)

    def cover(self, window: XWindow) -> str:
        """Put ``window`` below the kiosk: lower an override-redirect window (the window
        manager does not stack those), minimise a managed one. Returns what was done."""
        done = "lowered" if window.override_redirect else "minimised"

        def act() -> None:
            assert self._dpy is not None
            target = self._dpy.create_resource_object("window", window.id)
            if window.override_redirect:
                target.configure(stack_mode=X.Below)
                return
            client = self._client_window(target)
            self._root_message(int(client.id), "WM_CHANGE_STATE", [_ICONIC_STATE])
            if not self._wm_pid():
                target.configure(stack_mode=X.Below)

        self._do(f"cover window {window.id:#x}", act)
        return done

    # -- grabs ------------------------------------------------------------------------

    def pointer_grab_free(self, wid: int) -> bool:
        """True when no client holds the pointer (a grab of ours, at once released)."""
        with self._lock:
            if self._dpy is None:
                return True
            try:
                window = self._dpy.create_resource_object("window", wid)
                status = window.grab_pointer(
                    True, 0, X.GrabModeAsync, X.GrabModeAsync, X.NONE, X.NONE, X.CurrentTime
                )
                if status == X.GrabSuccess:
                    self._dpy.ungrab_pointer(X.CurrentTime)
                    self._dpy.sync()
                    return True
                return bool(status != X.AlreadyGrabbed)
            except (error.XError, error.ConnectionClosedError):
                return True

    def _toplevels(self) -> list[tuple[Any, Any]]:
        assert self._dpy is not None
        root = self._dpy.screen().root
        found = []
        for window in reversed(root.query_tree().children):  # topmost first
            try:
                attrs = window.get_attributes()
            except error.XError:
                continue
            if attrs.map_state == X.IsViewable:
                found.append((window, attrs))
        return found

    def _is_shell(self, client: Any) -> bool:
        types = self._prop(client, "_NET_WM_WINDOW_TYPE", Xatom.ATOM)
        shell = {self._atom(name) for name in SHELL_TYPES}
        return types is not None and any(int(t) in shell for t in types)

    def take_back_grab(
        self, try_grab: Callable[[], bool], mode: str, ours: Callable[[XWindow], bool]
    ) -> GrabOutcome:
        """Find the client holding a grab by unmapping one client's windows at a time.

        ``try_grab`` takes our grab (True when it worked); ``mode`` is ``unmap`` (the
        holder's windows stay unmapped) or ``disconnect`` (the holder is disconnected).
        """
        with self._lock:
            if self._dpy is None:
                return GrabOutcome(False)
            try:
                return self._take_back(try_grab, mode, ours)
            except (error.XError, error.ConnectionClosedError) as exc:
                log.guards.warning("X11: cannot take the grab back (%s)", exc)
                return GrabOutcome(False)

    def _take_back(
        self, try_grab: Callable[[], bool], mode: str, ours: Callable[[XWindow], bool]
    ) -> GrabOutcome:
        assert self._dpy is not None
        for _ in range(_CONFIRM_TRIES):
            if try_grab():
                return GrabOutcome(True)  # held for a moment only (the WM, a closing popup)
            time.sleep(_CONFIRM_PAUSE_S)
        wm_pid = self._wm_pid()
        clients: dict[int, list[tuple[Any, XWindow]]] = {}
        exempt: list[XWindow] = []
        for window, attrs in self._toplevels():
            described = self._describe(window, attrs)
            if ours(described):
                continue
            client = self._client_window(window)
            if (wm_pid is not None and described.pid == wm_pid) or self._is_shell(client):
                exempt.append(described)
                continue
            clients.setdefault(described.client, []).append((client, described))
        for windows in clients.values():
            for client, _ in windows:
                client.unmap()
            self._dpy.sync()
            if try_grab():
                holder = tuple(d for _, d in windows)
                if mode == "disconnect":
                    # any id of the client's range names it (never the WM's frame)
                    self._dpy.create_resource_object("window", holder[0].client).kill_client()
                    self._dpy.sync()
                    return GrabOutcome(True, holder, "disconnected", tuple(exempt))
                return GrabOutcome(True, holder, "unmapped", tuple(exempt))
            for client, _ in windows:
                client.map()
            self._dpy.sync()
        return GrabOutcome(try_grab(), (), "none", tuple(exempt))


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


class X11WindowWatch:
    """Reads the X events that can change the kiosk's window or what covers it.

    A connection of its own selects ``SubstructureNotify`` + ``PropertyChange`` on the
    root and ``StructureNotify`` + ``PropertyChange`` on the kiosk's window; the caller
    watches :meth:`fileno` (a ``QSocketNotifier``: no polling, no thread of ours) and
    calls :meth:`drain` when it is readable.
    """

    _ROOT_MASK: Final = X.SubstructureNotifyMask | X.PropertyChangeMask
    _WINDOW_MASK: Final = X.StructureNotifyMask | X.PropertyChangeMask

    def __init__(self, display_name: str, wid: int) -> None:
        self._dpy: display.Display | None = open_display(display_name)
        root = self._dpy.screen().root
        root.change_attributes(event_mask=self._ROOT_MASK)
        window = self._dpy.create_resource_object("window", wid)
        window.change_attributes(event_mask=self._WINDOW_MASK)
        self._dpy.sync()

    def fileno(self) -> int:
        assert self._dpy is not None
        return int(self._dpy.fileno())

    def drain(self) -> str:
        """Read every pending event; their kinds (``""`` when none, ``"closed"`` when the
        connection is gone)."""
        if self._dpy is None:
            return "closed"
        kinds: set[str] = set()
        try:
            while self._dpy.pending_events():
                kinds.add(type(self._dpy.next_event()).__name__)
        except (error.ConnectionClosedError, OSError) as exc:
            log.guards.warning("X11 window watch: the connection closed (%s)", exc)
            return "closed"
        return ",".join(sorted(kinds))

    def stop(self) -> None:
        if self._dpy is not None:
            self._dpy.close()
            self._dpy = None


# -- the X I/O error handler -------------------------------------------------------------

_IO_HANDLER_TYPE: Final = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_installed: list[Any] = []  # keeps the C callback alive


#: libX11's soname on Linux: loaded already when Qt's xcb plugin is, so opening it costs
#: nothing, where ``ctypes.util.find_library`` runs ``ldconfig -p`` (tens of ms of the start)
_LIBX11_SONAME: Final = "libX11.so.6"


def _libx11() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError):
        return ctypes.CDLL(_LIBX11_SONAME)
    name = ctypes.util.find_library("X11")  # another soname (another Unix)
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def install_io_error_handler(on_lost: Callable[[], None]) -> Callable[[], None] | None:
    """Replace Xlib's process-wide I/O error handler (which calls ``exit(1)``).

    ``on_lost`` runs on the thread whose Xlib call found the connection dead; it must end
    the process itself (Xlib exits when the handler returns). Returns a function that
    puts the previous handler back, or None when libX11 cannot be loaded here.
    """
    lib = _libx11()
    if lib is None:
        return None

    def handler(_display: int | None) -> int:
        on_lost()
        return 0

    callback = _IO_HANDLER_TYPE(handler)
    lib.XSetIOErrorHandler.restype = ctypes.c_void_p
    lib.XSetIOErrorHandler.argtypes = [ctypes.c_void_p]
    previous = lib.XSetIOErrorHandler(ctypes.cast(callback, ctypes.c_void_p))
    _installed.append(callback)

    def uninstall() -> None:
        lib.XSetIOErrorHandler(previous)
        if callback in _installed:
            _installed.remove(callback)

    return uninstall
