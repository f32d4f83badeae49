"""The camera inventory: which cameras this computer has, grouped by physical device.

Each OS lists its cameras through a thin native adapter (Linux: sysfs, the udev
database and V4L2 ioctls, :mod:`lockdown.platform.cameras_linux`; Windows: the PnP
camera devices with their ``ContainerId`` and enclosure panel,
:mod:`lockdown.platform.cameras_windows`; macOS: the capture devices' position, type
and transport, :mod:`lockdown.platform.cameras_macos`) into one
:class:`CameraInventory`. :func:`concerns` then says what the troubleshooting guide
warns about ("Devices with two cameras"): several user-facing cameras, a device with
a front and a back camera, a camera whose device is also a storage, PTP/MTP or network
device (an action camera such as a GoPro), a virtual camera. Nothing here fails an
exam: the check makes these warnings.
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


class Position(enum.Enum):
    """Which way a camera faces."""

    FRONT = "front"
    BACK = "back"
    #: plugged in (a USB webcam): faces where the candidate puts it
    EXTERNAL = "external"
    UNKNOWN = "unknown"


class Transport(enum.Enum):
    BUILT_IN = "built_in"
    USB = "usb"
    #: software: v4l2loopback, OBS virtual camera, a DirectShow/DAL plug-in
    VIRTUAL = "virtual"
    OTHER = "other"


class Function(enum.Enum):
    """Another function of a camera's physical device (USB interface class 08, 06, 02/0a)."""

    STORAGE = "storage"
    PTP = "ptp"
    NETWORK = "network"


@dataclass(frozen=True)
class Camera:
    """One capture device (the capture function of a physical device).

    Attributes:
        name: what the system calls it ("HD Pro Webcam C920").
        node: how it is opened (``/dev/video0``, a symbolic link, a unique id).
        device: the physical device it belongs to (USB parent, ``ContainerId``); two
            cameras with the same ``device`` are one box.
        position: which way it faces, where the system says so.
        transport: built in, USB, virtual.
        functions: the device's other functions (storage, PTP/MTP, network).
        driver: the driver or backend that serves it (for support staff).
    """

    name: str
    node: str
    device: str
    position: Position = Position.UNKNOWN
    transport: Transport = Transport.OTHER
    functions: frozenset[Function] = frozenset()
    driver: str = ""

    @property
    def user_facing(self) -> bool:
        """Faces the candidate or may (a back camera and a virtual one do not count)."""
        return self.transport is not Transport.VIRTUAL and self.position is not Position.BACK

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "node": self.node,
            "device": self.device,
            "position": self.position.value,
            "transport": self.transport.value,
            "functions": sorted(f.value for f in self.functions),
            "driver": self.driver,
        }


@dataclass(frozen=True)
class Ignored:
    """A video node that is not a camera to use: ``reason`` is ``metadata``,
    ``infrared``, ``no_capture`` (an output or codec node) or ``unreadable``."""

    node: str
    reason: str
    name: str = ""


@dataclass(frozen=True)
class CameraInventory:
    """The cameras found, the nodes left out and why, and which backend looked."""

    cameras: tuple[Camera, ...]
    ignored: tuple[Ignored, ...] = ()
    backend: str = ""
    #: set when the listing itself did not work (the check says so, it does not guess)
    error: str = ""


class Concern(enum.Enum):
    """What the guide warns about; each is a warning of the camera-inventory step."""

    SEVERAL_USER_FACING = "several_user_facing"
    FRONT_AND_BACK = "front_and_back"
    STORAGE = "storage"
    PTP = "ptp"
    NETWORK = "network"
    VIRTUAL = "virtual"


@dataclass(frozen=True)
class Finding:
    concern: Concern
    cameras: tuple[str, ...] = field(default_factory=tuple)


_FUNCTION_CONCERN = {
    Function.STORAGE: Concern.STORAGE,
    Function.PTP: Concern.PTP,
    Function.NETWORK: Concern.NETWORK,
}


def concerns(inventory: CameraInventory) -> list[Finding]:
    """What to warn about in ``inventory``, in a stable order."""
    found: list[Finding] = []
    cameras = inventory.cameras
    # One physical device may expose a camera twice (two formats, two nodes): count boxes.
    user_devices: dict[str, Camera] = {}
    for cam in cameras:
        if cam.user_facing:
            user_devices.setdefault(cam.device, cam)
    if len(user_devices) >= 2:
        found.append(
            Finding(Concern.SEVERAL_USER_FACING, tuple(c.name for c in user_devices.values()))
        )
    backs = [
        c for c in cameras if c.position is Position.BACK and c.transport is not Transport.VIRTUAL
    ]
    if backs and any(c.position is Position.FRONT for c in cameras):
        front_back = [c for c in cameras if c.position in (Position.FRONT, Position.BACK)]
        found.append(Finding(Concern.FRONT_AND_BACK, tuple(c.name for c in front_back)))
    for function, concern in _FUNCTION_CONCERN.items():
        names = tuple(c.name for c in cameras if function in c.functions)
        if names:
            found.append(Finding(concern, names))
    virtual = tuple(c.name for c in cameras if c.transport is Transport.VIRTUAL)
    if virtual:
        found.append(Finding(Concern.VIRTUAL, virtual))
    return found


#: names of well-known virtual cameras (any OS), matched case-insensitively
VIRTUAL_NAMES: tuple[str, ...] = (
    "obs virtual camera",
    "obs-camera",
    "v4l2loopback",
    "dummy video device",
    "manycam",
    "snap camera",
    "xsplit vcam",
    "droidcam",
    "e2esoft vcam",
    "iriun",
    "camo",
    "nvidia broadcast",
)


def looks_virtual(name: str) -> bool:
    folded = name.casefold()
    return any(v in folded for v in VIRTUAL_NAMES)


class CameraLister(Protocol):
    def inventory(self) -> CameraInventory:
        """The cameras of this computer; never raises (a failure goes in ``error``)."""
        ...


def camera_inventory() -> CameraInventory:
    """The cameras of this computer, by the adapter of this OS."""
    lister: CameraLister
    if sys.platform == "win32":
        from lockdown.platform.cameras_windows import PnpCameraApi, WindowsCameras

        lister = WindowsCameras(PnpCameraApi())
    elif sys.platform == "darwin":
        from lockdown.platform.cameras_macos import MacCameras, SystemProfilerApi

        lister = MacCameras(SystemProfilerApi())
    elif sys.platform.startswith("linux"):
        from lockdown.platform.cameras_linux import LinuxCameras

        lister = LinuxCameras()
    else:
        return CameraInventory((), backend="none", error=f"no camera listing for {sys.platform}")
    return lister.inventory()


def sorted_cameras(cameras: Sequence[Camera]) -> tuple[Camera, ...]:
    return tuple(sorted(cameras, key=lambda c: (c.device, c.node)))
