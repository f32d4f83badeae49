"""Recorded camera trees: sysfs entries, udev database files and V4L2 ioctl answers.

Where the values come from:

- Capability words: ``linux/videodev2.h`` (V4L2_CAP_*); the uvcvideo words are the ones
  published ``v4l2-ctl --all`` dumps of UVC webcams show (``Capabilities: 0x84a00001``,
  ``Device Caps: 0x04200001`` for the video node, ``0x04a00000`` for the metadata node
  uvcvideo adds since Linux 4.16); the v4l2loopback words are what ``v4l2loopback.c``
  sets (capture, output, read/write, streaming, extended pixel format).
- Formats: the C920's YUYV/H264/MJPG (its ``v4l2-ctl --list-formats`` dump); the infrared
  node of a face-login laptop camera offers GREY only.
- Device paths and udev properties: the layout of ``udevadm info`` dumps
  (``DEVPATH=/devices/pci0000:00/0000:00:14.0/usb1/1-2/1-2:1.0/video4linux/video0``,
  ``ID_V4L_PRODUCT``, ``ID_V4L_CAPABILITIES=:capture:``); USB ids 046d:082d (Logitech C920).
- ``physical_location/panel`` and ``removable``: Documentation/ABI/testing/sysfs-bus-usb
  (Linux 6.0+ from ACPI _PLD; ``removable`` since 5.12).
- The GoPro-like device: a UVC camera that also exposes mass storage (class 08) and a CDC
  NCM network adapter (02 + 0a), as USB class codes (usb.org) define them; a composite of
  what GoPro HERO models show in their storage/MTP and webcam (network) modes.

These are assembled trees, not the dump of one machine: no camera exists where they
were written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lockdown.platform.cameras_linux import V4l2Capability

UVC_CAPS = 0x84A00001
UVC_VIDEO = 0x04200001
UVC_META = 0x04A00000
LOOPBACK_CAPS = 0x85208003
LOOPBACK_DEV = 0x05208003


@dataclass
class Node:
    video: str  # "video0"
    devpath: str  # under /sys, with the node's own folder at the end
    product: str
    cap: V4l2Capability | None
    formats: list[str] = field(default_factory=list)
    orientation: int | None = None
    minor: int = 0


@dataclass
class UsbDevice:
    path: str  # /devices/.../usb1/1-2
    interfaces: dict[str, str]  # "1-2:1.0" -> class "0e"
    removable: str = "unknown"
    panel: str | None = None


@dataclass
class Tree:
    nodes: list[Node]
    usb: list[UsbDevice] = field(default_factory=list)


def uvc(card: str, bus: str, video: bool = True) -> V4l2Capability:
    return V4l2Capability("uvcvideo", card, bus, UVC_CAPS, UVC_VIDEO if video else UVC_META)


XHCI = "/devices/pci0000:00/0000:00:14.0/usb1"


def _uvc_pair(port: str, iface: str, first: int, product: str, formats: list[str]) -> list[Node]:
    base = f"{XHCI}/1-{port}/1-{port}:{iface}/video4linux"
    bus = f"usb-0000:00:14.0-{port}"
    return [
        Node(
            f"video{first}",
            f"{base}/video{first}",
            product,
            uvc(product, bus),
            formats,
            minor=first,
        ),
        Node(
            f"video{first + 1}",
            f"{base}/video{first + 1}",
            product,
            uvc(product, bus, False),
            [],
            minor=first + 1,
        ),
    ]


def usb_webcam() -> Tree:
    """A Logitech C920 on a removable port: one camera, its metadata node ignored."""
    return Tree(
        _uvc_pair("2", "1.0", 0, "HD Pro Webcam C920", ["YUYV", "H264", "MJPG"]),
        [
            UsbDevice(
                f"{XHCI}/1-2",
                {"1-2:1.0": "0e", "1-2:1.1": "0e", "1-2:1.2": "01", "1-2:1.3": "01"},
                removable="removable",
            )
        ],
    )


def laptop_front_back() -> Tree:
    """A 2-in-1 with a front camera (plus its IR face-login node) and a back camera,
    each a UVC module on a fixed internal port, the panel from ACPI _PLD."""
    front = _uvc_pair("5", "1.0", 0, "Integrated Camera", ["YUYV", "MJPG"])
    ir = _uvc_pair("5", "1.2", 2, "Integrated Camera: Integrated I", ["GREY"])
    back = _uvc_pair("6", "1.0", 4, "Rear Camera", ["YUYV", "MJPG"])
    return Tree(
        front + ir + back,
        [
            UsbDevice(
                f"{XHCI}/1-5",
                {"1-5:1.0": "0e", "1-5:1.1": "0e", "1-5:1.2": "0e", "1-5:1.3": "0e"},
                removable="fixed",
                panel="front",
            ),
            UsbDevice(
                f"{XHCI}/1-6", {"1-6:1.0": "0e", "1-6:1.1": "0e"}, removable="fixed", panel="back"
            ),
        ],
    )


def gopro_like() -> Tree:
    """An action camera: UVC video plus mass storage and a CDC NCM network adapter."""
    return Tree(
        _uvc_pair("3", "1.0", 0, "HERO Action Cam", ["YUYV", "MJPG"]),
        [
            UsbDevice(
                f"{XHCI}/1-3",
                {
                    "1-3:1.0": "0e",
                    "1-3:1.1": "0e",
                    "1-3:1.2": "08",
                    "1-3:1.3": "02",
                    "1-3:1.4": "0a",
                },
                removable="removable",
            )
        ],
    )


def loopback() -> Tree:
    """A v4l2loopback node fed by OBS, beside a real USB webcam."""
    webcam = usb_webcam()
    node = Node(
        "video10",
        "/devices/virtual/video4linux/video10",
        "OBS Virtual Camera",
        V4l2Capability(
            "v4l2 loopback",
            "OBS Virtual Camera",
            "platform:v4l2loopback-000",
            LOOPBACK_CAPS,
            LOOPBACK_DEV,
        ),
        ["YU12"],
        minor=10,
    )
    return Tree([*webcam.nodes, node], webcam.usb)


def mipi_with_orientation() -> Tree:
    """A platform (MIPI) camera whose node carries CAMERA_ORIENTATION = front."""
    cap = V4l2Capability("sun6i-csi", "sun6i-csi", "platform:1cb0000.csi", 0x84201000, 0x04201000)
    return Tree(
        [
            Node(
                "video0",
                "/devices/platform/soc/1cb0000.csi/video4linux/video0",
                "sun6i-csi",
                cap,
                ["NV12"],
                orientation=0,
            )
        ]
    )


def build(tree: Tree, root: Path) -> tuple[Path, Path]:
    """Write ``tree`` as a sysfs root and a udev database; (sysfs, udev_data)."""
    sysfs, udev = root / "sys", root / "udev"
    klass = sysfs / "class" / "video4linux"
    klass.mkdir(parents=True)
    udev.mkdir(parents=True)
    for dev in tree.usb:
        folder = sysfs / dev.path.lstrip("/")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "removable").write_text(dev.removable + "\n")
        if dev.panel is not None:
            (folder / "physical_location").mkdir()
            (folder / "physical_location" / "panel").write_text(dev.panel + "\n")
        for iface, cls in dev.interfaces.items():
            (folder / iface).mkdir(exist_ok=True)
            (folder / iface / "bInterfaceClass").write_text(cls + "\n")
    for node in tree.nodes:
        folder = sysfs / node.devpath.lstrip("/")
        folder.mkdir(parents=True)
        (folder / "name").write_text(node.product + "\n")
        (folder / "dev").write_text(f"81:{node.minor}\n")
        os.symlink(os.path.relpath(folder, klass), klass / node.video)
        (udev / f"c81:{node.minor}").write_text(
            f"E:DEVNAME=/dev/{node.video}\nE:ID_V4L_PRODUCT={node.product}\n"
            "E:ID_V4L_CAPABILITIES=:capture:\nE:ID_V4L_VERSION=2\n"
        )
    return sysfs, udev


class RecordedV4l2:
    """The V4L2 answers of ``tree``'s nodes (spec of :class:`V4l2Api`)."""

    def __init__(self, tree: Tree, *, denied: frozenset[str] = frozenset()) -> None:
        self._nodes = {f"/dev/{n.video}": n for n in tree.nodes}
        self._denied = denied
        self.asked: list[tuple[str, str]] = []

    def _node(self, devnode: str) -> Node:
        if devnode in self._denied:
            raise PermissionError(13, "Permission denied", devnode)
        return self._nodes[devnode]

    def querycap(self, devnode: str) -> V4l2Capability:
        self.asked.append(("querycap", devnode))
        cap = self._node(devnode).cap
        assert cap is not None
        return cap

    def formats(self, devnode: str, buf_type: int) -> list[str]:
        self.asked.append(("formats", devnode))
        return list(self._node(devnode).formats)

    def orientation(self, devnode: str) -> int | None:
        self.asked.append(("orientation", devnode))
        return self._node(devnode).orientation
