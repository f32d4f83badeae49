"""VM score with reasons: recorded facts, a fake /sys tree, and this machine (a VM)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

from lockdown.guards import vm
from lockdown.platform import sysinfo_macos, sysinfo_windows
from lockdown.platform.sysinfo_linux import VmFacts, collect_vm_facts


def test_a_bare_metal_machine_scores_zero() -> None:
    facts = VmFacts(
        cpu_hypervisor_flag=False,
        dmi={"sys_vendor": "LENOVO", "product_name": "20XW"},
        mac_addresses={"wlan0": "a4:c3:f0:11:22:33"},
        pci_vendors=["0x8086", "0x10de"],
        detect_virt="none",
    )
    verdict = vm.score(facts, ["bash", "firefox"])
    assert (verdict.score, verdict.virtual, verdict.reasons) == (0, False, ())


def test_a_virtualbox_guest_is_reported_with_every_reason() -> None:
    facts = VmFacts(
        cpu_hypervisor_flag=True,
        dmi={"sys_vendor": "innotek GmbH", "product_name": "VirtualBox"},
        mac_addresses={"enp0s3": "08:00:27:aa:bb:cc"},
        pci_vendors=["0x80ee"],
        modules=["vboxguest", "ext4"],
        detect_virt="oracle",
    )
    verdict = vm.score(facts, ["VBoxService"])
    signals = {r.signal for r in verdict.reasons}
    assert signals == {
        "cpu_hypervisor_flag",
        "dmi",
        "detect_virt",
        "mac_prefix",
        "pci_device",
        "kernel_module",
        "guest_tools",
    }
    assert verdict.virtual and verdict.score == 100
    assert "08:00:27" in next(r.detail for r in verdict.reasons if r.signal == "mac_prefix")


def test_a_container_alone_is_not_a_virtual_machine() -> None:
    verdict = vm.score(
        VmFacts(cpu_hypervisor_flag=False, detect_virt="docker", container_markers=["/.dockerenv"])
    )
    assert not verdict.virtual
    assert [r.signal for r in verdict.reasons] == ["container"]


def test_missing_dmi_is_a_note_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu sse2 hypervisor\n")
    facts = collect_vm_facts(tmp_path, run_tools=False)
    assert facts.cpu_hypervisor_flag is True
    assert facts.dmi == {}
    assert any("no DMI tables" in n for n in facts.notes)


def test_this_machine_is_reported_as_a_virtual_machine_with_reasons() -> None:
    verdict = vm.detect()
    assert verdict.virtual, verdict.as_dict()
    signals = {r.signal for r in verdict.reasons}
    assert "cpu_hypervisor_flag" in signals  # PLATFORM.md: the hypervisor flag is set
    assert any("no DMI tables" in n for n in verdict.notes)  # and there are no DMI tables


def test_windows_bios_strings_come_through_the_adapter() -> None:
    api = mock.Mock(spec_set=sysinfo_windows.SystemApi)
    api.bios_value.side_effect = {
        "SystemManufacturer": "VMware, Inc.",
        "SystemProductName": "VMware7,1",
    }.get
    facts = sysinfo_windows.collect_vm_facts(api, {"Ethernet0": "00:50:56:01:02:03"})
    verdict = vm.score(facts, ["vmtoolsd.exe"])
    assert {r.signal for r in verdict.reasons} == {"dmi", "mac_prefix", "guest_tools"}
    api.system_metric.side_effect = {0x1000: 1, 0x2001: 0}.get
    assert sysinfo_windows.remote_flags(api) == {
        "SM_REMOTESESSION": True,
        "SM_REMOTECONTROL": False,
    }


def test_macos_sysctl_values_come_through_the_adapter() -> None:
    api = mock.Mock(spec_set=sysinfo_macos.SysctlApi)
    api.sysctl.side_effect = {
        "kern.hv_vmm_present": (1).to_bytes(4, "little"),
        "hw.model": b"VirtualMac2,1\0",
    }.get
    facts = sysinfo_macos.collect_vm_facts(api, {})
    assert facts.cpu_hypervisor_flag is True
    verdict = vm.score(facts)
    assert {r.signal for r in verdict.reasons} == {"cpu_hypervisor_flag", "dmi"}
