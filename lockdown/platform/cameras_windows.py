"""Windows cameras: the PnP camera devices, grouped by ``ContainerId``, facing by ``_PLD``.

Windows groups the functions of one physical device under one ``ContainerId`` (a
webcam's video, its microphone, an action camera's disk and network adapter); built-in
devices share the null container ``{00000000-0000-0000-ffff-ffffffffffff}``. The
enclosure panel of a built-in camera comes from its ACPI ``_PLD`` buffer
(``DEVPKEY_Device_PhysicalDeviceLocation``; panel 4 front, 5 back), the same field
Media Foundation reports as ``MF_DEVICESTREAM_ATTRIBUTE_FRAMESERVER_SHARED`` panel and
Linux as ``physical_location/panel``. Software cameras are enumerated under ``SWD\\``
or ``ROOT\\`` (DirectShow / Media Foundation virtual cameras).

:class:`PnpCameraApi` asks PowerShell's ``Get-PnpDevice``; it has **not been run on a
real Windows machine**. The logic (:class:`WindowsCameras`) is tested through fakes.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, Final, Protocol

from lockdown.platform.cameras import (
    Camera,
    CameraInventory,
    Function,
    Position,
    Transport,
    looks_virtual,
    sorted_cameras,
)

NULL_CONTAINER: Final = "{00000000-0000-0000-ffff-ffffffffffff}"
CAMERA_CLASSES: Final = frozenset({"camera", "image"})
#: PnP setup classes of a container's other functions
CLASS_FUNCTIONS: Final = {
    "diskdrive": Function.STORAGE,
    "volume": Function.STORAGE,
    "usbstor": Function.STORAGE,
    "wpd": Function.PTP,
    "net": Function.NETWORK,
}
#: ACPI _PLD panel values
PLD_PANEL: Final = {4: Position.FRONT, 5: Position.BACK}


@dataclass(frozen=True)
class PnpDevice:
    """One present PnP device: its setup class, name, instance id, container, _PLD."""

    cls: str
    name: str
    instance_id: str
    container_id: str = ""
    pld: bytes = b""


class PnpApi(Protocol):
    def devices(self) -> list[PnpDevice]:
        """Every present device (cameras carry their _PLD buffer when they have one)."""
        ...


def pld_panel(pld: bytes) -> Position:
    """The panel of an ACPI ``_PLD`` buffer (bits 67-69), as a position."""
    if len(pld) < 16:
        return Position.UNKNOWN
    return PLD_PANEL.get((pld[8] >> 3) & 0x7, Position.UNKNOWN)


_SCRIPT: Final = r"""
$ErrorActionPreference = 'SilentlyContinue'
Get-PnpDevice -PresentOnly | ForEach-Object {
  $p = Get-PnpDeviceProperty -InstanceId $_.InstanceId -KeyName DEVPKEY_Device_ContainerId, DEVPKEY_Device_PhysicalDeviceLocation
  [pscustomobject]@{
    cls = $_.Class; name = $_.FriendlyName; id = $_.InstanceId
    container = ($p | Where-Object KeyName -eq 'DEVPKEY_Device_ContainerId').Data
    pld = ($p | Where-Object KeyName -eq 'DEVPKEY_Device_PhysicalDeviceLocation').Data
  }
} | ConvertTo-Json -Compress -Depth 3
"""


def parse_devices(text: str) -> list[PnpDevice]:
    """Devices from the script's JSON (one object or a list)."""
    data: Any = json.loads(text or "[]")
    items = data if isinstance(data, list) else [data]
    found = []
    for item in items:
        if not isinstance(item, dict):
            continue
        pld = item.get("pld") or []
        found.append(
            PnpDevice(
                str(item.get("cls") or ""),
                str(item.get("name") or ""),
                str(item.get("id") or ""),
                str(item.get("container") or "").lower(),
                bytes(int(b) & 0xFF for b in pld) if isinstance(pld, list) else b"",
            )
        )
    return found


class PnpCameraApi:
    """The real adapter: PowerShell ``Get-PnpDevice`` (unverified on Windows)."""

    def devices(self) -> list[PnpDevice]:
        done = subprocess.run(
            ["powershell", "-NoProfile", "-NonInteractive", "-Command", _SCRIPT],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return parse_devices(done.stdout)


class WindowsCameras:
    def __init__(self, api: PnpApi) -> None:
        self._api = api

    def inventory(self) -> CameraInventory:
        try:
            devices = self._api.devices()
        except Exception as exc:
            return CameraInventory((), backend="pnp", error=str(exc)[:300])
        by_container: dict[str, set[Function]] = {}
        for dev in devices:
            function = CLASS_FUNCTIONS.get(dev.cls.lower())
            if function is not None and dev.container_id and dev.container_id != NULL_CONTAINER:
                by_container.setdefault(dev.container_id, set()).add(function)
        cameras = []
        for dev in devices:
            if dev.cls.lower() not in CAMERA_CLASSES:
                continue
            instance = dev.instance_id.upper()
            if instance.startswith(("SWD\\", "ROOT\\")) or looks_virtual(dev.name):
                cameras.append(
                    Camera(
                        dev.name,
                        dev.instance_id,
                        f"virtual:{dev.instance_id}",
                        transport=Transport.VIRTUAL,
                        driver="pnp",
                    )
                )
                continue
            built_in = dev.container_id in ("", NULL_CONTAINER)
            position = pld_panel(dev.pld)
            if position is Position.UNKNOWN and not built_in:
                position = Position.EXTERNAL
            cameras.append(
                Camera(
                    dev.name,
                    dev.instance_id,
                    # built-in functions all share the null container: each is its own box
                    dev.instance_id if built_in else dev.container_id,
                    position,
                    Transport.BUILT_IN
                    if built_in
                    else Transport.USB
                    if instance.startswith("USB\\")
                    else Transport.OTHER,
                    frozenset(by_container.get(dev.container_id, set()))
                    if not built_in
                    else frozenset(),
                    "pnp",
                )
            )
        return CameraInventory(sorted_cameras(cameras), backend="pnp")
