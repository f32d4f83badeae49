"""The camera inventory and its concerns, on recorded Linux trees and fake Windows/macOS APIs."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from lockdown.platform.cameras import Concern, Function, Position, Transport, concerns
from lockdown.platform.cameras_linux import (
    CAP_META_CAPTURE,
    LinuxCameras,
    decode_capability,
    read_udev_properties,
)
from lockdown.platform.cameras_macos import MacCameras, MacCaptureDevice, parse_system_profiler
from lockdown.platform.cameras_windows import (
    PnpDevice,
    WindowsCameras,
    parse_devices,
    pld_panel,
)
from tests.unit.platform import camera_trees as trees


def _inventory(tree: trees.Tree, tmp_path: Path, **kwargs: frozenset[str]):  # type: ignore[no-untyped-def]
    sysfs, udev = trees.build(tree, tmp_path)
    return LinuxCameras(trees.RecordedV4l2(tree, **kwargs), sysfs=sysfs, udev_data=udev).inventory()


def test_usb_webcam_is_one_external_camera_and_its_metadata_node_is_ignored(tmp_path: Path) -> None:
    inv = _inventory(trees.usb_webcam(), tmp_path)
    assert [(c.name, c.node, c.position, c.transport) for c in inv.cameras] == [
        ("HD Pro Webcam C920", "/dev/video0", Position.EXTERNAL, Transport.USB)
    ]
    assert inv.cameras[0].device.endswith("/usb1/1-2")
    assert [(i.node, i.reason) for i in inv.ignored] == [("/dev/video1", "metadata")]
    assert concerns(inv) == []


def test_laptop_with_front_and_back_cameras_warns_and_ignores_the_infrared_node(
    tmp_path: Path,
) -> None:
    inv = _inventory(trees.laptop_front_back(), tmp_path)
    assert [(c.name, c.position, c.transport) for c in inv.cameras] == [
        ("Integrated Camera", Position.FRONT, Transport.BUILT_IN),
        ("Rear Camera", Position.BACK, Transport.BUILT_IN),
    ]
    assert sorted((i.node, i.reason) for i in inv.ignored) == [
        ("/dev/video1", "metadata"),
        ("/dev/video2", "infrared"),
        ("/dev/video3", "metadata"),
        ("/dev/video5", "metadata"),
    ]
    found = concerns(inv)
    assert [f.concern for f in found] == [Concern.FRONT_AND_BACK]
    assert found[0].cameras == ("Integrated Camera", "Rear Camera")


def test_action_camera_with_storage_and_network_is_flagged(tmp_path: Path) -> None:
    inv = _inventory(trees.gopro_like(), tmp_path)
    (cam,) = inv.cameras
    assert cam.functions == {Function.STORAGE, Function.NETWORK}
    assert [f.concern for f in concerns(inv)] == [Concern.STORAGE, Concern.NETWORK]


def test_loopback_camera_is_virtual_and_not_a_second_user_facing_camera(tmp_path: Path) -> None:
    inv = _inventory(trees.loopback(), tmp_path)
    assert [(c.name, c.transport) for c in inv.cameras] == [
        ("HD Pro Webcam C920", Transport.USB),
        ("OBS Virtual Camera", Transport.VIRTUAL),
    ]
    assert [(f.concern, f.cameras) for f in concerns(inv)] == [
        (Concern.VIRTUAL, ("OBS Virtual Camera",))
    ]


def test_two_usb_webcams_are_several_user_facing_cameras(tmp_path: Path) -> None:
    one, other = trees.usb_webcam(), trees.gopro_like()
    for node in other.nodes:  # the second camera on nodes 2 and 3
        node.video = node.video.replace("0", "2").replace("1", "3")
        node.devpath = node.devpath.rsplit("/", 1)[0] + "/" + node.video
        node.minor += 2
    inv = _inventory(trees.Tree(one.nodes + other.nodes, one.usb + other.usb), tmp_path)
    assert concerns(inv)[0].concern is Concern.SEVERAL_USER_FACING
    assert concerns(inv)[0].cameras == ("HD Pro Webcam C920", "HERO Action Cam")


def test_orientation_control_gives_the_position(tmp_path: Path) -> None:
    inv = _inventory(trees.mipi_with_orientation(), tmp_path)
    (cam,) = inv.cameras
    assert (cam.position, cam.transport) == (Position.FRONT, Transport.BUILT_IN)
    assert cam.device == "/devices/platform/soc/1cb0000.csi"


def test_a_node_that_cannot_be_opened_is_classified_by_udev(tmp_path: Path) -> None:
    # udev's v4l_id ran as root; the candidate's user may not open the node
    inv = _inventory(trees.usb_webcam(), tmp_path, denied=frozenset({"/dev/video0", "/dev/video1"}))
    # both nodes say ":capture:" in udev (the metadata node's udev entry would not, in a
    # real dump, but this recorded database says so): both count, grouped as one device
    assert {c.device for c in inv.cameras} == {f"{trees.XHCI}/1-2"}
    assert concerns(inv) == []


def test_no_video4linux_folder_is_an_empty_inventory(tmp_path: Path) -> None:
    inv = LinuxCameras(trees.RecordedV4l2(trees.Tree([])), sysfs=tmp_path).inventory()
    assert inv.cameras == () and inv.error == ""


def test_capability_struct_decodes() -> None:
    raw = struct.pack(
        "=16s32s32sIII12s",
        b"uvcvideo",
        b"HD Pro Webcam C920",
        b"usb-0000:00:14.0-2",
        0x00060100,
        trees.UVC_CAPS,
        trees.UVC_META,
        b"",
    )
    assert len(raw) == 104
    cap = decode_capability(raw)
    assert (cap.driver, cap.card, cap.bus_info) == (
        "uvcvideo",
        "HD Pro Webcam C920",
        "usb-0000:00:14.0-2",
    )
    assert cap.caps & CAP_META_CAPTURE


def test_udev_database_lines(tmp_path: Path) -> None:
    path = tmp_path / "c81:0"
    path.write_text("S:v4l/by-id/x\nE:ID_V4L_PRODUCT=Cam = One\nG:uaccess\nI:123\n")
    assert read_udev_properties(path) == {"ID_V4L_PRODUCT": "Cam = One"}
    assert read_udev_properties(tmp_path / "missing") == {}


# -- Windows (fake PnP adapter) -------------------------------------------------------------


def _pld(panel: int) -> bytes:
    buf = bytearray(20)
    buf[0] = 0x82  # revision 2, colour ignored
    buf[8] = panel << 3
    return bytes(buf)


class FakePnp:
    def __init__(self, devices: list[PnpDevice]) -> None:
        self._devices = devices

    def devices(self) -> list[PnpDevice]:
        return self._devices


NULL = "{00000000-0000-0000-ffff-ffffffffffff}"


def test_windows_front_and_back_built_in_cameras_from_pld() -> None:
    inv = WindowsCameras(
        FakePnp(
            [
                PnpDevice("Camera", "Surface Camera Front", "ACPI\\OVTI5693\\1", NULL, _pld(4)),
                PnpDevice("Camera", "Surface Camera Rear", "ACPI\\OVTI8865\\1", NULL, _pld(5)),
                PnpDevice("Camera", "Surface IR Camera Front", "ACPI\\INT347E\\1", NULL, _pld(4)),
            ]
        )
    ).inventory()
    # (an IR camera is listed under Camera on Windows too: it counts as front; the Windows
    # Hello sensor group normally hides it from applications)
    assert [c.concern for c in concerns(inv)] == [
        Concern.SEVERAL_USER_FACING,
        Concern.FRONT_AND_BACK,
    ]


def test_windows_container_groups_a_cameras_disk_and_network() -> None:
    box = "{6a1b0c55-1111-2222-3333-444455556666}"
    inv = WindowsCameras(
        FakePnp(
            [
                PnpDevice("Camera", "GoPro Webcam", "USB\\VID_2672&PID_0052&MI_00\\7", box),
                PnpDevice("DiskDrive", "GoPro MTP", "USBSTOR\\DISK\\1", box),
                PnpDevice("Net", "GoPro RNDIS", "USB\\VID_2672&PID_0052&MI_02\\7", box),
                PnpDevice("Camera", "OBS Virtual Camera", "SWD\\VCAMDEVAPI\\1", ""),
                PnpDevice("DiskDrive", "Internal SSD", "SCSI\\DISK\\1", NULL),
            ]
        )
    ).inventory()
    gopro = next(c for c in inv.cameras if c.name == "GoPro Webcam")
    assert (gopro.position, gopro.transport) == (Position.EXTERNAL, Transport.USB)
    assert gopro.functions == {Function.STORAGE, Function.NETWORK}
    assert [c.concern for c in concerns(inv)] == [Concern.STORAGE, Concern.NETWORK, Concern.VIRTUAL]


def test_windows_listing_failure_is_an_error_not_a_crash() -> None:
    class Broken:
        def devices(self) -> list[PnpDevice]:
            raise OSError("powershell not found")

    inv = WindowsCameras(Broken()).inventory()
    assert inv.cameras == () and "powershell" in inv.error


def test_windows_script_output_parses() -> None:
    text = '[{"cls":"Camera","name":"C920","id":"USB\\\\VID_046D","container":"{ABC}","pld":[130,0,0,0,0,0,0,0,32]}]'
    (dev,) = parse_devices(text)
    assert dev.container_id == "{abc}" and pld_panel(dev.pld + bytes(11)) is Position.FRONT
    assert pld_panel(b"") is Position.UNKNOWN


# -- macOS (fake AVFoundation adapter) ------------------------------------------------------


class FakeAv:
    def __init__(self, devices: list[MacCaptureDevice]) -> None:
        self._devices = devices

    def devices(self) -> list[MacCaptureDevice]:
        return self._devices


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        ([MacCaptureDevice("FaceTime HD Camera", "a", 2, "BuiltInWideAngleCamera", "bltn")], []),
        (
            [
                MacCaptureDevice("FaceTime HD Camera", "a", 2, "BuiltInWideAngleCamera", "bltn"),
                MacCaptureDevice("C920", "b", 0, "External", "usb "),
            ],
            [Concern.SEVERAL_USER_FACING],
        ),
        (
            [
                MacCaptureDevice("FaceTime HD Camera", "a", 2, "BuiltInWideAngleCamera", "bltn"),
                MacCaptureDevice("OBS Virtual Camera", "c", 0, "External", "virt"),
            ],
            [Concern.VIRTUAL],
        ),
    ],
)
def test_macos_positions_and_transports(
    devices: list[MacCaptureDevice], expected: list[Concern]
) -> None:
    assert [f.concern for f in concerns(MacCameras(FakeAv(devices)).inventory())] == expected


def test_macos_system_profiler_output_parses() -> None:
    text = (
        '{"SPCameraDataType":[{"_name":"FaceTime HD Camera","spcamera_model-id":"FaceTime HD '
        'Camera","spcamera_unique-id":"0x1"},{"_name":"C920","spcamera_model-id":"UVC Camera '
        'VendorID_1133 ProductID_2093","spcamera_unique-id":"0x14"}]}'
    )
    devices = parse_system_profiler(text)
    assert [(d.name, d.transport) for d in devices] == [
        ("FaceTime HD Camera", ""),
        ("C920", "usb "),
    ]
