"""X11 input devices: which device each key and button event came from (XInput2 raw events).

An X client cannot tell from a core key event whether a keyboard produced it or another
client injected it through XTEST (``xdotool type``). The X Input extension can: every
event of a slave device produces a *raw event* naming its source device, and the XTEST
devices (one keyboard and one pointer per master) carry the device property
``XTEST Device``. :class:`X11InputSource` listens on a connection of its own for the raw
key and button events of every master device (announcing XI 2.2: since XI 2.1 raw
events reach the root window whatever grab is active, so the kiosk's own keyboard grab
hides nothing) and for hierarchy changes (a new master brings new XTEST devices).

The caller matches a Qt event with its raw event by kind, detail (keycode, button) and
X server time (the same millisecond in both). The socket is watched by the caller (a
``QSocketNotifier`` or a read right when Qt delivers an event): nothing polls here.
"""

from __future__ import annotations

import os
import select
import struct
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from Xlib import X, display, error
from Xlib.ext import xinput

from lockdown import log
from lockdown.platform.xconnect import open_display

XI_MAJOR: Final = 2
#: XI 2.1 sends raw events to the root window regardless of grabs; 2.2 is what Qt uses.
XI_MINOR: Final = 2
_HIERARCHY_CHANGED: Final = 11
_RAW_KIND: Final[dict[int, tuple[Literal["key", "button"], bool]]] = {
    xinput.RawKeyPress: ("key", True),
    xinput.RawKeyRelease: ("key", False),
    xinput.RawButtonPress: ("button", True),
    xinput.RawButtonRelease: ("button", False),
}
_RAW_MASK: Final = (
    xinput.RawKeyPressMask
    | xinput.RawKeyReleaseMask
    | xinput.RawButtonPressMask
    | xinput.RawButtonReleaseMask
)
#: deviceid (2), time (4), detail (4), sourceid (2) after the generic event's header
_RAW: Final = struct.Struct("=HIIH")
XTEST_PROPERTY: Final = "XTEST Device"


@dataclass(frozen=True)
class RawInput:
    """One raw event: what it was, when (X server time, ms) and from which device."""

    kind: Literal["key", "button"]
    detail: int
    time: int
    pressed: bool
    source: int


@dataclass(frozen=True)
class InputDevice:
    id: int
    name: str
    #: an XTEST device: its events were injected by another client
    injecting: bool


class InputSource(Protocol):
    """Where raw input events come from (the X server here; a fake in tests)."""

    def fileno(self) -> int: ...

    def read(self) -> list[RawInput]:
        """The raw events received so far (never blocks)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for more; True when something arrived."""
        ...

    def device(self, device_id: int) -> InputDevice | None: ...

    def close(self) -> None: ...


class InputUnavailable(RuntimeError):
    """The display offers no XInput 2.1+ (raw events regardless of grabs)."""


class X11InputSource:
    """Raw key and button events of every master device, on a connection of its own."""

    def __init__(self, display_name: str | None = None) -> None:
        name = display_name or os.environ.get("DISPLAY", "")
        try:
            self._dpy: display.Display | None = open_display(name)
        except (error.DisplayError, error.ConnectionClosedError, OSError) as exc:
            raise InputUnavailable(f"cannot connect to the X display {name!r} ({exc})") from exc
        try:
            self._setup()
        except Exception:
            self.close()
            raise

    def _setup(self) -> None:
        assert self._dpy is not None
        info = self._dpy.query_extension("XInputExtension")
        if info is None or not info.present:
            raise InputUnavailable("the X server has no XInput extension")
        self._opcode = int(info.major_opcode)
        reply = xinput.XIQueryVersion(
            display=self._dpy.display,
            opcode=self._opcode,
            major_version=XI_MAJOR,
            minor_version=XI_MINOR,
        )
        if (int(reply.major_version), int(reply.minor_version)) < (2, 1):
            raise InputUnavailable(
                f"the X server offers XInput {reply.major_version}.{reply.minor_version}; "
                "raw events during a grab need 2.1"
            )
        self._devices: dict[int, InputDevice] = {}
        self._refresh()
        root = self._dpy.screen().root
        root.xinput_select_events(
            [
                (xinput.AllMasterDevices, _RAW_MASK),
                (xinput.AllDevices, xinput.HierarchyChangedMask),
            ]
        )
        self._dpy.sync()

    def _refresh(self) -> None:
        assert self._dpy is not None
        atom = self._dpy.intern_atom(XTEST_PROPERTY, only_if_exists=True)
        devices: dict[int, InputDevice] = {}
        for dev in self._dpy.xinput_query_device(xinput.AllDevices).devices:
            name = dev.name.decode("utf-8", "replace") if isinstance(dev.name, bytes) else dev.name
            injecting = "XTEST" in str(name)
            if atom:
                try:
                    prop = self._dpy.xinput_get_device_property(
                        dev.deviceid, atom, X.AnyPropertyType, 0, 1
                    )
                    value = prop.value
                    if value is not None and value[1][:1] == b"\x01":
                        injecting = True
                except error.XError:
                    pass
            devices[int(dev.deviceid)] = InputDevice(int(dev.deviceid), str(name), injecting)
        self._devices = devices
        log.guards.debug(
            "Input devices: %s",
            ", ".join(
                f"{d.id} {d.name}{' (XTEST)' if d.injecting else ''}" for d in devices.values()
            ),
        )

    def fileno(self) -> int:
        assert self._dpy is not None
        return int(self._dpy.fileno())

    def read(self) -> list[RawInput]:
        found: list[RawInput] = []
        dpy = self._dpy
        if dpy is None:
            return found
        try:
            while dpy.pending_events():
                event = dpy.next_event()
                if getattr(event, "extension", None) != self._opcode:
                    continue
                evtype = int(getattr(event, "evtype", -1))
                if evtype == _HIERARCHY_CHANGED:
                    self._refresh()
                    continue
                kind = _RAW_KIND.get(evtype)
                data = getattr(event, "data", b"")
                if kind is None or not isinstance(data, bytes) or len(data) < _RAW.size:
                    continue
                _device, time, detail, source = _RAW.unpack_from(data)
                found.append(RawInput(kind[0], int(detail), int(time), kind[1], int(source)))
        except (error.ConnectionClosedError, OSError) as exc:
            log.guards.warning("XInput connection closed (%s)", exc)
            self.close()
        return found

    def wait(self, timeout: float) -> bool:
        if self._dpy is None:
            return False
        readable, _, _ = select.select([self.fileno()], [], [], timeout)
        return bool(readable)

    def device(self, device_id: int) -> InputDevice | None:
        return self._devices.get(device_id)

    def close(self) -> None:
        if self._dpy is not None:
            try:
                self._dpy.close()
            except (error.ConnectionClosedError, OSError) as exc:
                log.guards.debug("XInput connection already broken (%s)", exc)
            self._dpy = None
