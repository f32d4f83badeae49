"""macOS machine facts for the VM guard: ``sysctl`` values behind a thin adapter.

``kern.hv_vmm_present`` is 1 inside a virtual machine (Apple documents it for Rosetta
and virtualization checks); ``machdep.cpu.features`` carries ``VMM`` on Intel guests;
``hw.model`` names the machine (``VMware7,1``, ``VirtualMac2,1``, ``Parallels…``).
Tested with a ``spec_set`` fake of :class:`SysctlApi`.
NOT RUN ON REAL macOS: unverified.
"""

from __future__ import annotations

from typing import Protocol

from lockdown.platform.sysinfo_linux import VmFacts


class SysctlApi(Protocol):
    def sysctl(self, name: str) -> bytes | None:
        """The raw value of ``sysctlbyname(name)``; None when the name does not exist."""
        ...


def collect_vm_facts(api: SysctlApi, mac_addresses: dict[str, str]) -> VmFacts:
    notes: list[str] = []
    vmm = api.sysctl("kern.hv_vmm_present")
    features = (api.sysctl("machdep.cpu.features") or b"").decode(errors="replace")
    flag: bool | None
    if vmm is None and not features:
        flag, notes = None, ["kern.hv_vmm_present and machdep.cpu.features unavailable"]
    else:
        flag = (vmm is not None and int.from_bytes(vmm[:4] or b"\0", "little") == 1) or (
            "VMM" in features.split()
        )
    model = (api.sysctl("hw.model") or b"").decode(errors="replace").strip("\0 ")
    return VmFacts(
        cpu_hypervisor_flag=flag,
        dmi={"product_name": model} if model else {},
        mac_addresses=mac_addresses,
        notes=notes,
    )


class LibcSysctl:
    """``sysctlbyname`` from libc through ctypes (macOS only)."""

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        self._ctypes = ctypes
        self._libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def sysctl(self, name: str) -> bytes | None:
        ctypes = self._ctypes
        size = ctypes.c_size_t(0)
        if self._libc.sysctlbyname(name.encode(), None, ctypes.byref(size), None, 0) != 0:
            return None
        buffer = ctypes.create_string_buffer(size.value)
        if self._libc.sysctlbyname(name.encode(), buffer, ctypes.byref(size), None, 0) != 0:
            return None
        raw: bytes = buffer.raw[: size.value]
        return raw
