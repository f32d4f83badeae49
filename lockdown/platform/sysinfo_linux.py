"""Linux machine facts for the virtual-machine and remote-session guards (read-only).

Everything here reads files or runs a read-only tool; a missing source (no DMI tables in
many VMs and containers, no logind, no ``systemd-detect-virt``) is recorded as a note,
never an error. ``root`` lets tests point the reader at a fake tree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

DMI_FIELDS: Final = ("sys_vendor", "product_name", "product_version", "board_vendor", "bios_vendor")


@dataclass(frozen=True)
class VmFacts:
    """Raw evidence; :mod:`lockdown.guards.vm` scores it."""

    cpu_hypervisor_flag: bool | None = None
    dmi: dict[str, str] = field(default_factory=dict)
    hypervisor_type: str = ""
    mac_addresses: dict[str, str] = field(default_factory=dict)
    pci_vendors: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)
    detect_virt: str = ""
    container_markers: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SessionFacts:
    """The login session as logind sees it."""

    remote: bool | None = None
    session_type: str = ""
    remote_host: str = ""
    note: str = ""


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _run(argv: list[str], timeout: float = 2.0) -> tuple[int, str] | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.returncode, done.stdout.strip()


def collect_vm_facts(root: Path = Path("/"), *, run_tools: bool = True) -> VmFacts:
    """Read the evidence a VM leaves: CPU flag, DMI, MACs, PCI devices, modules, markers."""
    notes: list[str] = []
    cpuinfo = _read(root / "proc/cpuinfo")
    flag: bool | None = None
    if cpuinfo is None:
        notes.append("/proc/cpuinfo unreadable")
    else:
        flags = [line for line in cpuinfo.splitlines() if line.startswith(("flags", "Features"))]
        flag = any(" hypervisor" in f or f.endswith("hypervisor") for f in flags)
    dmi_dir = root / "sys/class/dmi/id"
    dmi: dict[str, str] = {}
    if dmi_dir.is_dir():
        for name in DMI_FIELDS:
            if value := _read(dmi_dir / name):
                dmi[name] = value
    if not dmi:
        notes.append("no DMI tables under /sys/class/dmi/id (common in VMs and containers)")
    macs: dict[str, str] = {}
    net = root / "sys/class/net"
    if net.is_dir():
        for iface in sorted(net.iterdir()):
            address = _read(iface / "address")
            if iface.name != "lo" and address and address != "00:00:00:00:00:00":
                macs[iface.name] = address.lower()
    pci: list[str] = []
    devices = root / "sys/bus/pci/devices"
    if devices.is_dir():
        for device in sorted(devices.iterdir()):
            if vendor := _read(device / "vendor"):
                pci.append(vendor.lower())
    modules_text = _read(root / "proc/modules") or ""
    modules = [line.split()[0] for line in modules_text.splitlines() if line.split()]
    markers = [
        marker
        for marker in ("/.dockerenv", "/run/.containerenv")
        if (root / marker.lstrip("/")).exists()
    ]
    cgroup = _read(root / "proc/1/cgroup") or ""
    if any(word in cgroup for word in ("docker", "kubepods", "lxc", "containerd")):
        markers.append("/proc/1/cgroup names a container runtime")
    detect = ""
    if run_tools:
        result = _run(["systemd-detect-virt"])
        if result is None:
            notes.append("systemd-detect-virt not available")
        else:
            detect = result[1] if result[1] else "none"
    return VmFacts(
        cpu_hypervisor_flag=flag,
        dmi=dmi,
        hypervisor_type=_read(root / "sys/hypervisor/type") or "",
        mac_addresses=macs,
        pci_vendors=sorted(set(pci)),
        modules=modules,
        detect_virt=detect,
        container_markers=markers,
        notes=notes,
    )


def collect_session_facts(env: dict[str, str] | None = None) -> SessionFacts:
    """logind's view of our session (``loginctl show-session``); absence is a note."""
    env = dict(os.environ) if env is None else env
    session = env.get("XDG_SESSION_ID") or "auto"
    if shutil.which("loginctl") is None:
        return SessionFacts(note="loginctl not available (no systemd-logind)")
    result = _run(
        [
            "loginctl",
            "show-session",
            session,
            "--property=Remote",
            "--property=Type",
            "--property=RemoteHost",
        ]
    )
    if result is None or result[0] != 0:
        return SessionFacts(note=f"logind knows no session {session!r} (not a logind session)")
    values = dict(line.split("=", 1) for line in result[1].splitlines() if "=" in line)
    remote = values.get("Remote")
    return SessionFacts(
        remote=None if remote is None else remote == "yes",
        session_type=values.get("Type", ""),
        remote_host=values.get("RemoteHost", ""),
    )
