"""Where IT's files are and whether only administrators can change them, per OS, through
fakes of the thin native adapters (Windows and macOS cannot run here)."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePath, PureWindowsPath

import pytest

from lockdown.platform import trust
from lockdown.platform.trust import PosixTrust, WindowsTrust, posix_path_problem

ADMINS = "S-1-5-32-544"
SYSTEM = "S-1-5-18"
USERS = "S-1-5-32-545"


def _stat(uid: int, mode: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, 0, 0, 0, 0, 0))


def _tree(entries: dict[str, tuple[int, int]]) -> object:
    def lstat(path: Path) -> os.stat_result:
        try:
            return _stat(*entries[str(path)])
        except KeyError:
            raise FileNotFoundError(path) from None

    return lstat


DIR = stat.S_IFDIR
FILE = stat.S_IFREG
SAFE = {
    "/": (0, DIR | 0o755),
    "/etc": (0, DIR | 0o755),
    "/etc/lockdown": (0, DIR | 0o755),
    "/etc/lockdown/organisation.toml": (0, FILE | 0o644),
}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        ({"/etc/lockdown/organisation.toml": (0, FILE | 0o664)}, "writable by its group"),
        ({"/etc/lockdown/organisation.toml": (0, FILE | 0o646)}, "writable by others"),
        ({"/etc/lockdown/organisation.toml": (1000, FILE | 0o644)}, "owned by uid 1000"),
        ({"/etc/lockdown": (0, DIR | 0o775)}, "folder /etc/lockdown is writable by its group"),
        ({"/etc/lockdown": (1000, DIR | 0o755)}, "owned by uid 1000"),
        ({"/etc": (0, DIR | 0o777)}, "folder /etc is writable by group and others"),
        # a root-owned sticky folder: nobody else can replace an entry in it
        ({"/etc": (0, DIR | stat.S_ISVTX | 0o777)}, None),
        # ...but the file itself is never accepted writable, sticky or not
        ({"/etc/lockdown/organisation.toml": (0, FILE | stat.S_ISVTX | 0o666)}, "writable"),
    ],
)
def test_posix_file_and_every_folder_above_must_be_roots_alone(
    changes: dict[str, tuple[int, int]], problem: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os.path, "realpath", str)
    found = posix_path_problem(
        Path("/etc/lockdown/organisation.toml"),
        lstat=_tree({**SAFE, **changes}),  # type: ignore[arg-type]
    )
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_a_missing_organisation_file_is_an_unmanaged_machine(tmp_path: Path) -> None:
    assert posix_path_problem(tmp_path / "nothing" / "organisation.toml") is None


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_symbolic_links_are_judged_by_where_they_lead(tmp_path: Path) -> None:
    real = tmp_path / "real.toml"
    real.write_text("")
    os.chown(real, 65534, 65534)
    link = tmp_path / "organisation.toml"
    link.symlink_to(real)  # the link itself is root's; what it leads to is not
    problem = posix_path_problem(link)
    assert problem is not None and f"file {real} is owned by uid 65534" in problem


class FakeLinux:
    def __init__(self, *, works: bool = True, scope: int | None = 1) -> None:
        self.works = works
        self.scope = scope
        self.is_dumpable = True

    def set_dumpable(self, value: bool) -> bool:
        if self.works:
            self.is_dumpable = value
        return self.works

    def dumpable(self) -> bool:
        return self.is_dumpable

    def ptrace_scope(self) -> int | None:
        return self.scope


def test_linux_paths_are_fixed_and_debugging_is_denied_with_the_yama_scope() -> None:
    native = FakeLinux(scope=2)
    linux = PosixTrust(native, platform="linux")
    assert linux.organisation_file() == PurePath("/etc/lockdown/organisation.toml")
    state = linux.deny_debugging()
    assert state.denied and not native.is_dumpable and state.ptrace_scope == 2
    failed = PosixTrust(FakeLinux(works=False), platform="linux").deny_debugging()
    assert not failed.denied and failed.reason == "prctl failed"


class FakeMac:
    def __init__(self, ok: bool) -> None:
        self.ok = ok

    def deny_attach(self) -> bool:
        return self.ok


def test_macos_paths_and_deny_attach() -> None:
    mac = PosixTrust(FakeMac(True), platform="darwin")
    assert mac.organisation_file() == PurePath(
        "/Library/Application Support/Lockdown/organisation.toml"
    )
    assert mac.deny_debugging().mechanism == "ptrace(PT_DENY_ATTACH)"
    assert not PosixTrust(FakeMac(False), platform="darwin").deny_debugging().denied


class FakeWindows:
    """ProgramData from the shell; owner and write ACEs per path."""

    def __init__(self, acl: dict[str, tuple[str, list[str]]], folder: str = r"D:\PD") -> None:
        self.acl = acl
        self.folder = folder
        self.protected = False

    def program_data(self) -> str:
        if not self.folder:
            raise OSError("no known folder")
        return self.folder

    def owner_and_writers(self, path: str) -> tuple[str, list[str]]:
        if path not in self.acl:
            raise FileNotFoundError(path)
        return self.acl[path]

    def protect_process(self) -> bool:
        self.protected = True
        return True


WIN_SAFE = {
    "D:\\": (SYSTEM, [ADMINS, SYSTEM]),
    r"D:\PD": (SYSTEM, [ADMINS, SYSTEM, "S-1-3-0"]),
    r"D:\PD\Lockdown": (ADMINS, [ADMINS, SYSTEM]),
    r"D:\PD\Lockdown\organisation.toml": (ADMINS, [ADMINS, SYSTEM]),
}


def test_windows_organisation_file_comes_from_the_known_folder_not_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROGRAMDATA", r"C:\Users\candidate\mine")
    win = WindowsTrust(FakeWindows(WIN_SAFE))
    assert win.organisation_file() == PureWindowsPath(r"D:\PD\Lockdown\organisation.toml")
    assert WindowsTrust(FakeWindows({}, folder="")).program_data() == PureWindowsPath(
        r"C:\ProgramData"
    )


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, None),
        (
            {r"D:\PD\Lockdown\organisation.toml": (ADMINS, [ADMINS, USERS])},
            "writable by S-1-5-32-545",
        ),
        ({r"D:\PD\Lockdown": ("S-1-5-21-1-2-3-1001", [ADMINS])}, "owned by S-1-5-21-1-2-3-1001"),
        ({r"D:\PD": (SYSTEM, [ADMINS, "S-1-1-0"])}, "writable by S-1-1-0"),
    ],
)
def test_windows_file_and_folders_must_be_administrators_alone(
    changes: dict[str, tuple[str, list[str]]], problem: str | None
) -> None:
    win = WindowsTrust(FakeWindows({**WIN_SAFE, **changes}))
    found = win.file_problem(win.organisation_file())
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_windows_denies_debugging_through_the_process_dacl() -> None:
    native = FakeWindows(WIN_SAFE)
    state = WindowsTrust(native).deny_debugging()
    assert state.denied and native.protected and state.mechanism == "process DACL"


def test_the_factory_picks_this_machines_adapter() -> None:
    assert isinstance(trust.system_trust(), PosixTrust)
