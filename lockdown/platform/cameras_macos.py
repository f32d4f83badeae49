"""macOS cameras: the capture devices' position, type and transport (AVFoundation's terms).

``AVCaptureDevice`` gives each camera a ``position`` (0 unspecified, 1 back, 2 front),
a ``deviceType`` (built-in wide angle, external, Continuity Camera …) and a transport
type (FourCC: ``bltn`` built in, ``usb `` USB, ``virt`` virtual). Storage and network
functions of a USB camera are not visible through AVFoundation: this adapter does not
report them (the Linux and Windows adapters do).

:class:`SystemProfilerApi` reads ``system_profiler SPCameraDataType -json`` (names,
model and unique ids; no position); it has **not been run on a real Mac**. The logic
(:class:`MacCameras`) is tested through fakes of :class:`AvCaptureApi`.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any, Final, Protocol

from lockdown.platform.cameras import (
    Camera,
    CameraInventory,
    Position,
    Transport,
    looks_virtual,
    sorted_cameras,
)

#: AVCaptureDevicePosition
POSITIONS: Final = {1: Position.BACK, 2: Position.FRONT}
#: transport FourCC -> transport
TRANSPORTS: Final = {"bltn": Transport.BUILT_IN, "usb ": Transport.USB, "virt": Transport.VIRTUAL}


@dataclass(frozen=True)
class MacCaptureDevice:
    name: str
    unique_id: str
    position: int = 0
    device_type: str = ""
    transport: str = ""
    model_id: str = ""


class AvCaptureApi(Protocol):
    def devices(self) -> list[MacCaptureDevice]: ...


class SystemProfilerApi:
    """The real adapter: ``system_profiler SPCameraDataType -json`` (unverified on macOS)."""

    def devices(self) -> list[MacCaptureDevice]:
        done = subprocess.run(
            ["system_profiler", "SPCameraDataType", "-json"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        return parse_system_profiler(done.stdout)


def parse_system_profiler(text: str) -> list[MacCaptureDevice]:
    data: Any = json.loads(text or "{}")
    found = []
    for item in data.get("SPCameraDataType", []) if isinstance(data, dict) else []:
        if not isinstance(item, dict):
            continue
        model = str(item.get("spcamera_model-id", ""))
        found.append(
            MacCaptureDevice(
                str(item.get("_name", "")),
                str(item.get("spcamera_unique-id", "")),
                transport="usb " if "VendorID_" in model else "",
                model_id=model,
            )
        )
    return found


class MacCameras:
    def __init__(self, api: AvCaptureApi) -> None:
        self._api = api

    def inventory(self) -> CameraInventory:
        try:
            devices = self._api.devices()
        except Exception as exc:
            return CameraInventory((), backend="avfoundation", error=str(exc)[:300])
        cameras = []
        for dev in devices:
            transport = TRANSPORTS.get(dev.transport, Transport.OTHER)
            if looks_virtual(dev.name):
                transport = Transport.VIRTUAL
            position = POSITIONS.get(dev.position, Position.UNKNOWN)
            if position is Position.UNKNOWN and (
                transport is Transport.USB
                or "External" in dev.device_type
                or "ContinuityCamera" in dev.device_type
            ):
                position = Position.EXTERNAL
            cameras.append(
                Camera(
                    dev.name,
                    dev.unique_id,
                    dev.unique_id,
                    position,
                    transport,
                    driver="avfoundation",
                )
            )
        return CameraInventory(sorted_cameras(cameras), backend="avfoundation")
