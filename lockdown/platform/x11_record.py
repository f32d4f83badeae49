"""X11 screen capture seen at the X server: an X RECORD context over all clients.

On a shared X display every client can read the screen; no window can hide from it.
What a capture tool cannot hide is the request it sends: ``GetImage`` (``xwd -root``,
``import``, Xlib's ``XGetImage``), MIT-SHM ``ShmGetImage`` (``ffmpeg -f x11grab``,
``mss``, most recorders) and Composite ``NameWindowPixmap`` (a window's off-screen
contents). :class:`CaptureWatch` asks the RECORD extension for exactly these requests of
every client, present and future, and hands each one whose drawable is not the client's
own (the root window, another client's window) to a callback, with the client's
resource-id base (the X Resource extension turns it into a pid: the caller's job).

RECORD delivers only the requests selected, so an idle display costs nothing: the data
connection waits in ``recv`` on a thread of its own (RECORD's ``EnableContext`` answers
with a stream of replies until the context is disabled from a second connection).

Not seen: a client that copies the screen into a pixmap of its own (``CopyArea`` from
the root) and reads the pixmap back; OpenGL read-back of a composited screen; anything
outside the X server (a Wayland compositor's own capture). Recording ``CopyArea`` would
make every drawing request of every client pass through this process.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from Xlib import display, error
from Xlib.ext import record

from lockdown import log
from lockdown.platform.xconnect import open_display

GET_IMAGE: Final = 73
SHM_GET_IMAGE: Final = 4
COMPOSITE_NAME_WINDOW_PIXMAP: Final = 6


@dataclass(frozen=True)
class CaptureRequest:
    """One request that reads what another client shows."""

    #: ``GetImage``, ``ShmGetImage`` or ``NameWindowPixmap``
    request: str
    #: the requesting client's resource-id base
    client: int
    #: the drawable read (the root window, or another client's window)
    drawable: int
    #: the drawable's owner (0: the server, i.e. the root window)
    owner: int
    width: int = 0
    height: int = 0
    #: when the request was read here (``time.monotonic``)
    seen_at: float = 0.0


class CaptureWatchUnavailable(RuntimeError):
    """The display has no RECORD extension, or cannot be reached."""


def parse_requests(
    data: bytes,
    client: int,
    swapped: bool,
    *,
    mask: int,
    requests: Mapping[tuple[int, int], str],
    seen_at: float = 0.0,
) -> list[CaptureRequest]:
    """The screen reads among the requests ``data`` holds (one RECORD reply of ``client``).

    ``requests`` names the watched requests by (major, minor) opcode (minor 0 for a core
    request); ``mask`` is the server's resource-id mask. A request reading the client's
    own drawable is left out. Pure: never raises on any bytes (another client's data).
    """
    native_little = struct.pack("=H", 1) == b"\x01\x00"
    order = ">" if swapped == native_little else "<"
    found: list[CaptureRequest] = []
    offset = 0
    while offset + 4 <= len(data):
        major, minor, length = struct.unpack_from(order + "BBH", data, offset)
        header = 4
        if length == 0:  # BIG-REQUESTS: the length follows
            if offset + 8 > len(data):
                break
            (length,) = struct.unpack_from(order + "I", data, offset + 4)
            header = 8
        size = max(length * 4, header)
        body = data[offset + header : offset + size]
        offset += size
        label = requests.get((major, 0 if major == GET_IMAGE else minor))
        if label is None or len(body) < 4:
            continue
        (drawable,) = struct.unpack_from(order + "I", body, 0)
        width = height = 0
        if label in ("GetImage", "ShmGetImage") and len(body) >= 12:
            width, height = struct.unpack_from(order + "HH", body, 8)
        owner = drawable & ~mask
        if owner == client:
            continue  # a client reading back its own window or pixmap
        found.append(CaptureRequest(label, client, drawable, owner, width, height, seen_at))
    return found


def _range(**fields: Any) -> dict[str, Any]:
    """A RECORD range that selects nothing but ``fields``."""
    empty8 = (0, 0)
    empty_ext = (0, 0, 0, 0)
    base: dict[str, Any] = {
        "core_requests": empty8,
        "core_replies": empty8,
        "ext_requests": empty_ext,
        "ext_replies": empty_ext,
        "delivered_events": empty8,
        "device_events": empty8,
        "errors": empty8,
        "client_started": False,
        "client_died": False,
    }
    base.update(fields)
    return base


def _open(name: str) -> display.Display:
    try:
        return open_display(name)
    except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
        raise CaptureWatchUnavailable(f"cannot connect to the X display {name!r} ({exc})") from exc


class CaptureWatch:
    """Calls ``on_request`` (from its own thread) for each screen read of another client.

    Two connections: ``control`` creates, disables and frees the context; ``data``
    enables it and blocks in RECORD's reply stream until :meth:`stop`.
    """

    def __init__(
        self,
        display_name: str | None,
        on_request: Callable[[CaptureRequest], None],
        on_client: Callable[[int, bool], None] | None = None,
    ) -> None:
        """``on_client(base, started)`` hears each client connect and disconnect (a
        resource-id base is reused by the next client: who it names changes)."""
        self.display_name = display_name or os.environ.get("DISPLAY", "")
        self._on_request = on_request
        self._on_client = on_client
        self._control = _open(self.display_name)
        self._data: display.Display | None = None
        self._thread: threading.Thread | None = None
        self._context = 0
        self._stopping = False
        try:
            self._setup()
        except Exception:
            self._close()
            raise

    def _setup(self) -> None:
        control = self._control
        if not control.has_extension("RECORD"):
            raise CaptureWatchUnavailable("the X server has no RECORD extension")
        self._mask = int(control.display.info.resource_id_mask)
        self._requests: dict[tuple[int, int], str] = {(GET_IMAGE, 0): "GetImage"}
        ranges = [
            _range(core_requests=(GET_IMAGE, GET_IMAGE), client_started=True, client_died=True)
        ]
        for name, minor, label in (
            ("MIT-SHM", SHM_GET_IMAGE, "ShmGetImage"),
            ("Composite", COMPOSITE_NAME_WINDOW_PIXMAP, "NameWindowPixmap"),
        ):
            info = control.query_extension(name)
            if info is None or not info.present:
                continue
            major = int(info.major_opcode)
            self._requests[(major, minor)] = label
            ranges.append(_range(ext_requests=(major, major, minor, minor)))
        self._context = int(control.record_create_context(0, [record.AllClients], ranges))
        control.sync()
        self.watched = tuple(sorted(self._requests.values()))

    def compositor(self) -> int:
        """The resource-id base of the compositing manager (owner of ``_NET_WM_CM_S0``),
        0 when none runs (call before :meth:`start`, from the caller's thread)."""
        try:
            atom = self._control.intern_atom("_NET_WM_CM_S0")
            owner = self._control.get_selection_owner(atom)
        except (error.XError, error.ConnectionClosedError, OSError):
            return 0
        wid = int(getattr(owner, "id", owner) or 0)
        return wid & ~self._mask if wid else 0

    def start(self) -> None:
        """Enable the context on the data connection's own thread."""
        self._data = _open(self.display_name)
        self._thread = threading.Thread(target=self._run, name="x11-capture-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        data = self._data
        assert data is not None
        try:
            data.record_enable_context(self._context, self._reply)
        except (error.ConnectionClosedError, OSError) as exc:
            if not self._stopping:
                log.guards.error("X RECORD connection closed (%s)", exc)
        except Exception:
            log.guards.exception("X RECORD watch failed")

    def _reply(self, reply: Any) -> None:
        """One RECORD reply (on the watch thread): parse it, never raise into Xlib."""
        if reply.category in (record.ClientStarted, record.ClientDied):
            if self._on_client is not None:
                try:
                    self._on_client(int(reply.id_base), reply.category == record.ClientStarted)
                except Exception:
                    log.guards.exception("Handling a client's start or end failed")
            return
        if reply.category != record.FromClient:
            return
        seen_at = time.monotonic()
        try:
            for found in self._parse(
                bytes(reply.data), int(reply.id_base), bool(reply.client_swapped), seen_at
            ):
                self._on_request(found)
        except Exception:
            log.guards.exception("Handling a recorded X request failed")

    def _parse(
        self, data: bytes, client: int, swapped: bool, seen_at: float
    ) -> list[CaptureRequest]:
        return parse_requests(
            data, client, swapped, mask=self._mask, requests=self._requests, seen_at=seen_at
        )

    def stop(self) -> None:
        """Disable the context (ends the data thread's stream), free it, close both."""
        self._stopping = True
        try:
            if self._context:
                self._control.record_disable_context(self._context)
                self._control.sync()
        except (error.ConnectionClosedError, OSError) as exc:
            log.guards.debug("X RECORD: cannot disable the context (%s)", exc)
        if self._thread is not None:
            self._thread.join(5)
            if self._thread.is_alive():
                log.guards.warning("X RECORD thread did not end within 5 s")
            self._thread = None
        try:
            if self._context:
                self._control.record_free_context(self._context)
                self._control.sync()
        except (error.ConnectionClosedError, OSError, error.XError) as exc:
            log.guards.debug("X RECORD: cannot free the context (%s)", exc)
        self._context = 0
        self._close()

    def _close(self) -> None:
        for dpy in (self._data, self._control):
            if dpy is None:
                continue
            try:
                dpy.close()
            except (error.ConnectionClosedError, OSError) as exc:
                log.guards.debug("X RECORD connection already closed (%s)", exc)
        self._data = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
