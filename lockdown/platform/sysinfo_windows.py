"""Windows machine facts: remote-session metrics and BIOS strings, behind a thin adapter.

:class:`Win32SystemApi` makes the native calls (``GetSystemMetrics`` from user32 and the
BIOS values under ``HKLM\\HARDWARE\\DESCRIPTION\\System\\BIOS``); the functions here turn
them into facts and are tested with a ``spec_set`` fake.
NOT RUN ON REAL WINDOWS: written against the documented API, unverified.
"""

from __future__ import annotations

from typing import Final, Protocol

from lockdown.platform.sysinfo_linux import VmFacts

SM_REMOTESESSION: Final = 0x1000
SM_REMOTECONTROL: Final = 0x2001
_BIOS_VALUES: Final = {
    "SystemManufacturer": "sys_vendor",
    "SystemProductName": "product_name",
    "BaseBoardManufacturer": "board_vendor",
    "BIOSVendor": "bios_vendor",
}


class SystemApi(Protocol):
    def system_metric(self, index: int) -> int:
        """``GetSystemMetrics(index)``."""
        ...

    def bios_value(self, name: str) -> str | None:
        """A value under ``HKLM\\HARDWARE\\DESCRIPTION\\System\\BIOS``; None when absent."""
        ...


def remote_flags(api: SystemApi) -> dict[str, bool]:
    """``SM_REMOTESESSION``: a Remote Desktop session; ``SM_REMOTECONTROL``: shadowed."""
    return {
        "SM_REMOTESESSION": api.system_metric(SM_REMOTESESSION) != 0,
        "SM_REMOTECONTROL": api.system_metric(SM_REMOTECONTROL) != 0,
    }


def collect_vm_facts(api: SystemApi, mac_addresses: dict[str, str]) -> VmFacts:
    dmi = {key: value for name, key in _BIOS_VALUES.items() if (value := api.bios_value(name))}
    notes = [] if dmi else ["no BIOS strings in the registry"]
    notes.append("CPU hypervisor flag not read on Windows (needs CPUID)")
    return VmFacts(dmi=dmi, mac_addresses=mac_addresses, notes=notes)


class Win32SystemApi:
    """user32 and the registry through ctypes/winreg (Windows only)."""

    def __init__(self) -> None:
        import ctypes

        self._user32 = ctypes.WinDLL("user32")  # type: ignore[attr-defined,unused-ignore]

    def system_metric(self, index: int) -> int:
        value: int = self._user32.GetSystemMetrics(index)
        return value

    def bios_value(self, name: str) -> str | None:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        try:
            with winreg.OpenKey(  # type: ignore[attr-defined,unused-ignore]
                winreg.HKEY_LOCAL_MACHINE,  # type: ignore[attr-defined,unused-ignore]
                r"HARDWARE\DESCRIPTION\System\BIOS",
            ) as key:
                value, _kind = winreg.QueryValueEx(key, name)  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            return None
        return str(value) if value else None
