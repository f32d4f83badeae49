"""The clients of an X display with their pids (X Resource extension), and ``XKillClient``.

:class:`XResClients` holds a python-xlib connection of its own to one display:

- :meth:`XResClients.clients` lists every connected client with ``XResQueryClients``
  (each client's resource-id base) and one ``XResQueryClientIds`` request for all the
  local pids (``client=0`` asks for every client; a client over TCP has no pid), and
  reads each pid's executable from ``/proc`` (the caller needs the right to read it:
  root, or the same user without ``PR_SET_DUMPABLE=0`` on the target).
- :meth:`XResClients.kill` disconnects a client by its resource-id base (``XKillClient``
  on any id of its range), which is how a screen locker or the exam display's watch
  throws a client out; the server frees everything the client owned.
- :meth:`XResClients.owner_of` names the client that created a window (its base).

The connection authenticates the way every Xlib client does (``XAUTHORITY``), so the
caller chooses the display and its authority; the connection's own client is marked
``self_`` in the listing. Nothing here decides who may stay: that is the caller's.
"""

from __future__ import annotations

import contextlib
import enum
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from Xlib import X, display, error
from Xlib.ext import res
from Xlib.protocol import request

from lockdown.platform.xconnect import open_display

EXTENSION: Final = "X-Resource"


class KillOutcome(enum.Enum):
    """What :meth:`XResClients.kill` did."""

    DISCONNECTED = "disconnected"
    #: the client had left already
    GONE = "gone"
    #: the client owns no resource to name it by (see :meth:`XResClients.kill`)
    NO_RESOURCE = "no_resource"
    #: the listing connection itself, or the server's own client
    REFUSED = "refused"
    #: our connection to the display is gone
    CLOSED = "closed"


class XResUnavailable(RuntimeError):
    """The display cannot be reached, or it has no X Resource extension."""


@dataclass(frozen=True)
class XClient:
    """One client of the display as the X server knows it."""

    #: the client's resource-id base (names it for :meth:`XResClients.kill`)
    base: int
    #: the mask of the client's resource-id range
    mask: int
    #: the local process id (None for a remote client or a server without pid support)
    pid: int | None
    #: the process's executable (``/proc/PID/exe``), "" when it cannot be read
    executable: str = ""
    #: True for the listing connection itself
    self_: bool = False

    def describe(self) -> dict[str, Any]:
        """What a journal record says about the client."""
        return {"client": f"{self.base:#x}", "pid": self.pid, "executable": self.executable}


def executable_of(pid: int | None) -> str:
    """The executable of ``pid`` (``/proc/PID/exe``), "" when it cannot be read."""
    if pid is None or pid <= 0:
        return ""
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def _query_ids_all(dpy: display.Display) -> dict[int, int]:
    """Pid per client base, from one ``XResQueryClientIds`` for all clients."""
    reply = dpy.res_query_client_ids([{"client": 0, "mask": res.LocalClientPIDMask}])
    pids: dict[int, int] = {}
    for item in reply.ids:
        if item.spec.mask & res.LocalClientPIDMask and item.value:
            pids[int(item.spec.client)] = int(item.value[0])
    return pids


class XResClients:
    """A connection of its own to ``display_name`` for listing and disconnecting clients.

    Thread-safe (one lock); :meth:`close` is idempotent. Raises :class:`XResUnavailable`
    when the display cannot be reached or lacks the X Resource extension.
    """

    def __init__(self, display_name: str | None = None) -> None:
        self.display_name = display_name or os.environ.get("DISPLAY", "")
        self._lock = threading.Lock()
        try:
            self._dpy: display.Display | None = open_display(self.display_name)
        except (error.DisplayError, error.ConnectionClosedError, OSError, OverflowError) as exc:
            raise XResUnavailable(
                f"cannot connect to the X display {self.display_name!r} ({exc})"
            ) from exc
        if not self._dpy.has_extension(EXTENSION):
            self._dpy.close()
            self._dpy = None
            raise XResUnavailable(
                f"the X display {self.display_name!r} has no X Resource extension"
            )
        version = self._dpy.res_query_version()
        if (int(version.server_major), int(version.server_minor)) < (1, 2):
            self._dpy.close()
            self._dpy = None
            raise XResUnavailable(
                f"the X display {self.display_name!r} has X Resource "
                f"{version.server_major}.{version.server_minor}; client ids need 1.2"
            )
        # WORKAROUND(python-xlib 0.33 ext/randr.py registers its errors under the raw codes
        # 0-2, so a core BadValue parses as BadRRModeError and breaks the connection):
        # put the core error classes back.
        self._dpy.display.error_classes.update(error.xerror_class)
        self._mask = int(self._dpy.display.info.resource_id_mask)
        self._own_base = int(self._dpy.display.info.resource_id_base)

    @property
    def own_base(self) -> int:
        """The resource-id base of this listing connection."""
        return self._own_base

    def fileno(self) -> int:
        """The connection's socket (readable when the server closes it)."""
        with self._lock:
            if self._dpy is None:
                raise XResUnavailable("closed")
            return int(self._dpy.fileno())

    def clients(self) -> tuple[XClient, ...]:
        """Every client connected now, with its pid and executable where known.

        Raises :class:`XResUnavailable` when the connection is gone (the server died).
        """
        with self._lock:
            dpy = self._require()
            try:
                listed = dpy.res_query_clients().clients
                pids = _query_ids_all(dpy)
            except (error.ConnectionClosedError, OSError) as exc:
                raise XResUnavailable(
                    f"the X display {self.display_name!r} closed ({exc})"
                ) from exc
        found = []
        for item in listed:
            base = int(item.resource_base)
            pid = pids.get(base)
            found.append(
                XClient(
                    base=base,
                    mask=int(item.resource_mask),
                    pid=pid,
                    executable=executable_of(pid),
                    self_=base == self._own_base,
                )
            )
        return tuple(found)

    def owner_of(self, resource: int) -> int:
        """The resource-id base of the client that created ``resource`` (a window id)."""
        return resource & ~self._mask

    def resources_of(self, base: int) -> tuple[int, ...]:
        """The ids of the resources the client ``base`` owns now (``XResQueryResourceBytes``)."""
        with self._lock:
            dpy = self._require()
            try:
                reply = dpy.res_query_resource_bytes(base, [{"resource": 0, "type": 0}])
            except (error.ConnectionClosedError, OSError) as exc:
                raise XResUnavailable(
                    f"the X display {self.display_name!r} closed ({exc})"
                ) from exc
            except error.XError:
                return ()
        ids = (int(item.size.resource) for item in reply.sizes)
        return tuple(rid for rid in ids if rid & ~self._mask == base)

    def kill(self, base: int) -> KillOutcome:
        """Disconnect the client whose resource-id base is ``base`` (``XKillClient``).

        ``XKillClient`` names a client by one of its resources, so a client that owns
        none yet (a bare connection that reads the screen or grabs the keyboard on the
        root window) cannot be named: :attr:`KillOutcome.NO_RESOURCE`, and the caller
        decides what else to do. Never disconnects this listing connection itself.
        """
        if base in (self._own_base, 0):
            return KillOutcome.REFUSED
        try:
            owned = self.resources_of(base)
        except XResUnavailable:
            return KillOutcome.CLOSED
        if not owned:
            alive = any(c.base == base for c in self._safe_clients())
            return KillOutcome.NO_RESOURCE if alive else KillOutcome.GONE
        with self._lock:
            if self._dpy is None:
                return KillOutcome.CLOSED
            caught = error.CatchError(error.BadValue)
            try:
                request.KillClient(display=self._dpy.display, onerror=caught, resource=owned[0])
                self._dpy.sync()
            except (error.ConnectionClosedError, OSError):
                return KillOutcome.CLOSED
            return KillOutcome.GONE if caught.get_error() is not None else KillOutcome.DISCONNECTED

    def _safe_clients(self) -> tuple[XClient, ...]:
        try:
            return self.clients()
        except XResUnavailable:
            return ()

    def close(self) -> None:
        with self._lock:
            if self._dpy is not None:
                with contextlib.suppress(error.ConnectionClosedError, OSError):
                    self._dpy.close()
                self._dpy = None

    def _require(self) -> display.Display:
        if self._dpy is None:
            raise XResUnavailable("the X Resource connection is closed")
        return self._dpy


def proc_exists(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


class NewWindows:
    """A connection of its own that becomes readable whenever a window is created or
    mapped on the root window (``SubstructureNotify``): the caller selects on
    :meth:`fileno` and calls :meth:`drain`. Raises :class:`XResUnavailable` when the
    display cannot be reached."""

    def __init__(self, display_name: str) -> None:
        try:
            self._dpy: display.Display | None = open_display(display_name)
            self._dpy.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
            self._dpy.sync()
        except (error.DisplayError, error.ConnectionClosedError, OSError, OverflowError) as exc:
            raise XResUnavailable(
                f"cannot connect to the X display {display_name!r} ({exc})"
            ) from exc

    def fileno(self) -> int:
        if self._dpy is None:
            raise XResUnavailable("closed")
        return int(self._dpy.fileno())

    def drain(self) -> int:
        """Read the pending events; how many. Raises :class:`XResUnavailable` when the
        connection closed."""
        if self._dpy is None:
            raise XResUnavailable("closed")
        count = 0
        try:
            while self._dpy.pending_events():
                self._dpy.next_event()
                count += 1
        except (error.ConnectionClosedError, OSError) as exc:
            raise XResUnavailable(f"the X display closed ({exc})") from exc
        return count

    def close(self) -> None:
        if self._dpy is not None:
            with contextlib.suppress(error.ConnectionClosedError, OSError):
                self._dpy.close()
            self._dpy = None
