"""Virtual-machine detection: a score with reasons, not a single test.

Evidence comes from :mod:`lockdown.platform` (CPU hypervisor flag, DMI strings, MAC
prefixes, PCI vendors, kernel modules, ``systemd-detect-virt``, container markers) plus
the guest-tool processes running; :func:`score` weighs it (pure, tested with recorded
facts). A score of :data:`THRESHOLD` or more means "virtual machine". Missing sources
(no DMI tables, no tool) are notes, never errors.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import psutil

from lockdown.platform.sysinfo_linux import VmFacts

THRESHOLD: Final = 50
DMI_WORDS: Final = (
    "vmware",
    "virtualbox",
    "innotek",
    "qemu",
    "kvm",
    "xen",
    "parallels",
    "bochs",
    "bhyve",
    "virtual machine",
    "hyper-v",
    "amazon ec2",
    "google compute engine",
    "openstack",
    "virtualmac",
    "cloud hypervisor",
    "firecracker",
)
#: OUI prefixes of hypervisor vendors' virtual NICs
MAC_PREFIXES: Final = {
    "00:05:69": "VMware",
    "00:0c:29": "VMware",
    "00:1c:14": "VMware",
    "00:50:56": "VMware",
    "08:00:27": "VirtualBox",
    "0a:00:27": "VirtualBox",
    "00:1c:42": "Parallels",
    "00:16:3e": "Xen",
    "00:15:5d": "Hyper-V",
    "52:54:00": "QEMU/KVM",
}
PCI_VENDORS: Final = {
    "0x15ad": "VMware",
    "0x80ee": "VirtualBox",
    "0x1af4": "virtio (QEMU/KVM)",
    "0x1b36": "QEMU",
    "0x1234": "QEMU",
    "0x1ab8": "Parallels",
    "0x1414": "Hyper-V",
    "0x5853": "Xen",
}
MODULE_PREFIXES: Final = (
    "vboxguest",
    "vboxsf",
    "vboxvideo",
    "vmw_",
    "vmwgfx",
    "vmxnet",
    "hv_",
    "xen",
    "virtio_balloon",
    "qxl",
    "prl_",
)
GUEST_PROCESSES: Final = frozenset(
    {
        "vmtoolsd",
        "vmware-user",
        "vboxservice",
        "vboxclient",
        "vboxtray",
        "qemu-ga",
        "spice-vdagent",
        "spice-vdagentd",
        "prl_tools_service",
        "prl_client_app",
        "prl_tools",
        "xe-daemon",
        "hv_kvp_daemon",
        "vmware-tools-daemon",
    }
)
CONTAINERS: Final = frozenset(
    {
        "docker",
        "podman",
        "lxc",
        "lxc-libvirt",
        "openvz",
        "systemd-nspawn",
        "rkt",
        "wsl",
        "container-other",
        "proot",
    }
)


@dataclass(frozen=True)
class Reason:
    signal: str
    weight: int
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "weight": self.weight, "detail": self.detail}


@dataclass(frozen=True)
class VmVerdict:
    score: int
    reasons: tuple[Reason, ...]
    notes: tuple[str, ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def virtual(self) -> bool:
        return self.score >= THRESHOLD

    def as_dict(self) -> dict[str, Any]:
        return {
            "virtual_machine": self.virtual,
            "score": self.score,
            "threshold": THRESHOLD,
            "reasons": [r.as_dict() for r in self.reasons],
            "notes": list(self.notes),
        }


def score(facts: VmFacts, process_names: Iterable[str] = ()) -> VmVerdict:
    """Weigh the evidence; each reason says what was seen."""
    reasons: list[Reason] = []
    if facts.cpu_hypervisor_flag:
        reasons.append(Reason("cpu_hypervisor_flag", 50, "the CPU reports the hypervisor flag"))
    dmi_hits = [
        f"{key}={value!r}"
        for key, value in facts.dmi.items()
        if any(word in value.lower() for word in DMI_WORDS)
    ]
    if dmi_hits:
        reasons.append(Reason("dmi", 50, "firmware names a hypervisor: " + ", ".join(dmi_hits)))
    if facts.hypervisor_type:
        reasons.append(
            Reason("sys_hypervisor", 40, f"/sys/hypervisor/type is {facts.hypervisor_type!r}")
        )
    virt = facts.detect_virt
    if virt and virt != "none":
        if virt in CONTAINERS:
            reasons.append(Reason("container", 20, f"systemd-detect-virt: container {virt!r}"))
        else:
            reasons.append(Reason("detect_virt", 50, f"systemd-detect-virt: {virt!r}"))
    if facts.container_markers and virt not in CONTAINERS:
        reasons.append(Reason("container", 20, ", ".join(facts.container_markers)))
    macs = [
        f"{iface} {mac} ({MAC_PREFIXES[mac[:8]]})"
        for iface, mac in facts.mac_addresses.items()
        if mac[:8] in MAC_PREFIXES
    ]
    if macs:
        reasons.append(Reason("mac_prefix", 30, "hypervisor vendor NIC: " + ", ".join(macs)))
    pci = [f"{v} ({PCI_VENDORS[v]})" for v in facts.pci_vendors if v in PCI_VENDORS]
    if pci:
        reasons.append(Reason("pci_device", 30, "virtual hardware: " + ", ".join(pci)))
    modules = [m for m in facts.modules if m.startswith(MODULE_PREFIXES)]
    if modules:
        reasons.append(Reason("kernel_module", 30, "guest drivers: " + ", ".join(modules[:8])))
    guests = sorted(
        {n for n in process_names if n.casefold().removesuffix(".exe") in GUEST_PROCESSES}
    )
    if guests:
        reasons.append(Reason("guest_tools", 30, "guest tools running: " + ", ".join(guests)))
    total = min(100, sum(r.weight for r in reasons))
    return VmVerdict(total, tuple(reasons), tuple(facts.notes))


def _mac_addresses() -> dict[str, str]:
    out: dict[str, str] = {}
    for iface, addresses in psutil.net_if_addrs().items():
        for address in addresses:
            if address.family == psutil.AF_LINK and address.address:
                mac = address.address.lower().replace("-", ":")
                if mac != "00:00:00:00:00:00":
                    out[iface] = mac
    return out


def collect_facts() -> VmFacts:
    """This machine's evidence through the platform module of this OS."""
    if sys.platform == "win32":
        from lockdown.platform import sysinfo_windows

        return sysinfo_windows.collect_vm_facts(sysinfo_windows.Win32SystemApi(), _mac_addresses())
    if sys.platform == "darwin":
        from lockdown.platform import sysinfo_macos

        return sysinfo_macos.collect_vm_facts(sysinfo_macos.LibcSysctl(), _mac_addresses())
    from lockdown.platform import sysinfo_linux

    return sysinfo_linux.collect_vm_facts()


def _process_names() -> list[str]:
    names = []
    for proc in psutil.process_iter(["name"]):
        name = proc.info.get("name")
        if isinstance(name, str):
            names.append(name)
    return names


def detect(process_names: Sequence[str] | None = None) -> VmVerdict:
    """Score this machine (``process_names``: from a process snapshot already taken)."""
    return score(collect_facts(), _process_names() if process_names is None else process_names)
