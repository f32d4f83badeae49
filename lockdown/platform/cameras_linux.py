"""Linux cameras: V4L2 nodes from sysfs and the udev database, asked through V4L2 ioctls.

For each ``/sys/class/video4linux/video*`` node: the udev properties (the udev database
``/run/udev/data/c<major>:<minor>``, written by udev as root, so readable when the node
itself is not), the V4L2 capabilities (``VIDIOC_QUERYCAP``), the capture formats
(``VIDIOC_ENUM_FMT``) and the ``V4L2_CID_CAMERA_ORIENTATION`` control
(``VIDIOC_G_CTRL``). Metadata nodes (uvcvideo makes one beside each camera), output and
codec nodes and infrared cameras (greyscale-only formats: the face-login camera beside a
laptop's webcam) are left out. Nodes are grouped by their USB device (the parent of the
USB interface in the sysfs device path); that device's other interfaces say whether it
is also mass storage (class 08), a still-image/PTP/MTP device (06) or a network adapter
(02/0a CDC, e0 RNDIS). Position: the orientation control where present, else the
firmware's ``physical_location/panel`` of the USB device (ACPI ``_PLD``, Linux 6.0+),
else a removable USB port means an external camera.

The ioctl code (:class:`IoctlV4l2Api`) follows the kernel's uapi header
``linux/videodev2.h`` and has **not been run against a real camera**: the machines
this was written on have no ``/dev/video*`` and cannot load a video module. The tests
feed recorded sysfs/udev trees and recorded ioctl answers through :class:`V4l2Api`.
"""

from __future__ import annotations

import errno
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from lockdown import log
from lockdown.platform.cameras import (
    Camera,
    CameraInventory,
    Function,
    Ignored,
    Position,
    Transport,
    looks_virtual,
    sorted_cameras,
)

# linux/videodev2.h
CAP_VIDEO_CAPTURE: Final = 0x00000001
CAP_VIDEO_CAPTURE_MPLANE: Final = 0x00001000
CAP_META_CAPTURE: Final = 0x00800000
CAP_DEVICE_CAPS: Final = 0x80000000
BUF_TYPE_VIDEO_CAPTURE: Final = 1
BUF_TYPE_VIDEO_CAPTURE_MPLANE: Final = 9
#: _IOR('V', 0, struct v4l2_capability): 104 bytes
VIDIOC_QUERYCAP: Final = 0x80685600
#: _IOWR('V', 2, struct v4l2_fmtdesc): 64 bytes
VIDIOC_ENUM_FMT: Final = 0xC0405602
#: _IOWR('V', 27, struct v4l2_control): 8 bytes
VIDIOC_G_CTRL: Final = 0xC008561B
#: V4L2_CID_CAMERA_CLASS_BASE (0x009a0900) + 34
CID_CAMERA_ORIENTATION: Final = 0x009A0922
ORIENTATION: Final = {0: Position.FRONT, 1: Position.BACK, 2: Position.EXTERNAL}
#: greyscale and depth formats: a node offering only these is an infrared/depth camera
IR_FORMATS: Final = frozenset({"GREY", "Y10 ", "Y12 ", "Y16 ", "Y8I ", "Y12I", "Z16 ", "INZI"})
#: USB interface classes of the device's other functions
USB_FUNCTIONS: Final = {
    "08": Function.STORAGE,
    "06": Function.PTP,
    "02": Function.NETWORK,
    "0a": Function.NETWORK,
    "e0": Function.NETWORK,
}
_USB_INTERFACE = re.compile(r"^\d+-[\d.]+:\d+\.\d+$")


@dataclass(frozen=True)
class V4l2Capability:
    """``struct v4l2_capability``, decoded."""

    driver: str
    card: str
    bus_info: str
    capabilities: int
    device_caps: int

    @property
    def caps(self) -> int:
        """The node's own capabilities (the device's when the driver gives no node caps)."""
        return self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities


class V4l2Api(Protocol):
    """The three V4L2 questions asked of a node; each raises ``OSError`` as the ioctl does."""

    def querycap(self, devnode: str) -> V4l2Capability: ...

    def formats(self, devnode: str, buf_type: int) -> list[str]:
        """The pixel formats (FourCC text) the node offers for ``buf_type``."""
        ...

    def orientation(self, devnode: str) -> int | None:
        """The ``CAMERA_ORIENTATION`` control, None when the node has no such control."""
        ...


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace")


def decode_capability(raw: bytes) -> V4l2Capability:
    """Decode the 104 bytes of ``struct v4l2_capability``."""
    driver, card, bus, _version, caps, dev_caps = struct.unpack_from("=16s32s32sIII", raw)
    return V4l2Capability(_cstr(driver), _cstr(card), _cstr(bus), caps, dev_caps)


def fourcc(code: int) -> str:
    return struct.pack("<I", code).decode("latin-1")


class IoctlV4l2Api:
    """The real ioctls (``fcntl.ioctl`` on the opened node). Unverified on hardware."""

    def _ioctl(self, devnode: str, request: int, buf: bytearray) -> bytearray:
        import fcntl

        fd = os.open(devnode, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.ioctl(fd, request, buf, True)
        finally:
            os.close(fd)
        return buf

    def querycap(self, devnode: str) -> V4l2Capability:
        return decode_capability(bytes(self._ioctl(devnode, VIDIOC_QUERYCAP, bytearray(104))))

    def formats(self, devnode: str, buf_type: int) -> list[str]:
        found: list[str] = []
        for index in range(64):
            buf = bytearray(64)
            struct.pack_into("=II", buf, 0, index, buf_type)
            try:
                self._ioctl(devnode, VIDIOC_ENUM_FMT, buf)
            except OSError as exc:
                if exc.errno == errno.EINVAL:  # past the last format
                    break
                raise
            (pixelformat,) = struct.unpack_from("=I", buf, 44)
            found.append(fourcc(pixelformat))
        return found

    def orientation(self, devnode: str) -> int | None:
        buf = bytearray(struct.pack("=Ii", CID_CAMERA_ORIENTATION, 0))
        try:
            self._ioctl(devnode, VIDIOC_G_CTRL, buf)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTTY):  # no such control
                return None
            raise
        return int(struct.unpack_from("=Ii", buf)[1])


def read_udev_properties(path: Path) -> dict[str, str]:
    """The ``E:KEY=VALUE`` lines of a udev database file."""
    props: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return props
    for line in text.splitlines():
        if line.startswith("E:") and "=" in line:
            key, _, value = line[2:].partition("=")
            props[key] = value
    return props


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


class LinuxCameras:
    """The inventory of V4L2 cameras.

    Args:
        v4l2: the ioctl adapter (default: the real one).
        sysfs: the sysfs root (tests pass a recorded tree).
        udev_data: the udev database folder.
    """

    def __init__(
        self,
        v4l2: V4l2Api | None = None,
        *,
        sysfs: Path = Path("/sys"),
        udev_data: Path = Path("/run/udev/data"),
    ) -> None:
        self._v4l2 = v4l2 or IoctlV4l2Api()
        self._sysfs = sysfs
        self._udev = udev_data

    def inventory(self) -> CameraInventory:
        cameras: list[Camera] = []
        ignored: list[Ignored] = []
        folder = self._sysfs / "class" / "video4linux"
        try:
            entries = sorted(folder.glob("video*"), key=lambda p: (len(p.name), p.name))
        except OSError as exc:
            return CameraInventory((), backend="v4l2", error=str(exc))
        for entry in entries:
            try:
                found = self._node(entry)
            except Exception as exc:  # one odd node must not hide the others
                log.checks.warning("Camera node %s: %s", entry.name, exc)
                found = Ignored(f"/dev/{entry.name}", "unreadable", str(exc)[:200])
            if isinstance(found, Camera):
                cameras.append(found)
            else:
                ignored.append(found)
        return CameraInventory(sorted_cameras(cameras), tuple(ignored), backend="v4l2")

    def _devpath(self, entry: Path) -> str:
        """The device path under /sys (``/devices/…/video4linux/video0``)."""
        real = Path(os.path.realpath(entry))
        root = Path(os.path.realpath(self._sysfs))
        try:
            return "/" + real.relative_to(root).as_posix()
        except ValueError:
            return real.as_posix()

    def _node(self, entry: Path) -> Camera | Ignored:
        major_minor = _read(entry / "dev")
        props = read_udev_properties(self._udev / f"c{major_minor}") if major_minor else {}
        devnode = props.get("DEVNAME", f"/dev/{entry.name}")
        name = props.get("ID_V4L_PRODUCT") or _read(entry / "name") or entry.name
        devpath = props.get("DEVPATH") or self._devpath(entry)
        try:
            cap: V4l2Capability | None = self._v4l2.querycap(devnode)
        except OSError as exc:
            log.checks.info("VIDIOC_QUERYCAP on %s: %s", devnode, exc)
            cap = None
        if cap is None:
            # udev's v4l_id asked as root: ":capture:" is all it says
            if ":capture:" not in props.get("ID_V4L_CAPABILITIES", ""):
                return Ignored(devnode, "unreadable", name)
            caps, driver = CAP_VIDEO_CAPTURE, ""
        else:
            caps, driver = cap.caps, cap.driver
            name = props.get("ID_V4L_PRODUCT") or cap.card or name
        if not caps & (CAP_VIDEO_CAPTURE | CAP_VIDEO_CAPTURE_MPLANE):
            return Ignored(devnode, "metadata" if caps & CAP_META_CAPTURE else "no_capture", name)
        position = Position.UNKNOWN
        if cap is not None:
            buf_type = (
                BUF_TYPE_VIDEO_CAPTURE
                if caps & CAP_VIDEO_CAPTURE
                else BUF_TYPE_VIDEO_CAPTURE_MPLANE
            )
            formats = self._v4l2.formats(devnode, buf_type)
            if formats and all(f in IR_FORMATS for f in formats):
                return Ignored(devnode, "infrared", name)
            orientation = self._v4l2.orientation(devnode)
            if orientation is not None:
                position = ORIENTATION.get(orientation, Position.UNKNOWN)
        if "/virtual/" in devpath or "loopback" in driver or looks_virtual(name):
            return Camera(
                name, devnode, f"virtual:{devnode}", position, Transport.VIRTUAL, driver=driver
            )
        parts = devpath.strip("/").split("/")
        for index, part in enumerate(parts):
            if _USB_INTERFACE.match(part) and index > 0:
                usb = "/" + "/".join(parts[:index])
                return self._usb_camera(name, devnode, usb, position, driver)
        # a platform camera (MIPI sensor behind an ISP): group by the node's parent device
        parent = devpath.split("/video4linux/", 1)[0]
        return Camera(name, devnode, parent, position, Transport.BUILT_IN, driver=driver)

    def _usb_camera(
        self, name: str, devnode: str, usb: str, position: Position, driver: str
    ) -> Camera:
        folder = self._sysfs / usb.lstrip("/")
        device = folder.name
        functions: set[Function] = set()
        for iface in folder.glob(f"{device}:*"):
            function = USB_FUNCTIONS.get(_read(iface / "bInterfaceClass").lower())
            if function is not None:
                functions.add(function)
        transport = Transport.USB
        if position is Position.UNKNOWN:
            panel = _read(folder / "physical_location" / "panel")
            removable = _read(folder / "removable")
            if panel in ("front", "back"):
                position = Position(panel)
                transport = Transport.BUILT_IN
            elif removable == "removable":
                position = Position.EXTERNAL
            elif removable == "fixed":
                transport = Transport.BUILT_IN
        return Camera(name, devnode, usb, position, transport, frozenset(functions), driver)
