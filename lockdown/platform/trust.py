"""Process and file trust: where IT's files are, whether only administrators can change
them, and keeping the candidate's own processes out of ours.

- :meth:`SystemTrust.program_data` is the machine-wide folder of IT's files, fixed per
  OS (on Windows asked of the shell, never from ``%PROGRAMDATA%``, which the candidate
  can set).
- :meth:`SystemTrust.file_problem` says why a file cannot be trusted to come from IT:
  on POSIX the file and every folder above it must be owned by root and not writable by
  group or others (a root-owned sticky folder such as ``/tmp`` is accepted: nobody else
  can replace an entry in it); on Windows owned by Administrators, SYSTEM or
  TrustedInstaller with no write access for anybody else.
- :meth:`SystemTrust.deny_debugging` keeps other processes of the same user from
  attaching a debugger or reading our memory (keys, guard state): ``PR_SET_DUMPABLE=0``
  on Linux, ``PT_DENY_ATTACH`` on macOS, a process DACL without debug, read and write
  rights on Windows.

The native calls sit in thin adapters (:class:`LinuxNative`, :class:`MacNative`,
:class:`WindowsNative`) that tests replace with fakes; only the Linux one has run here.
"""

from __future__ import annotations

import ctypes
import os
import stat
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath, PureWindowsPath
from typing import Any, Final, Protocol

from lockdown import log

PR_SET_DUMPABLE: Final = 4
PR_GET_DUMPABLE: Final = 3
PT_DENY_ATTACH: Final = 31
#: Windows well-known SIDs that may own and write IT's files.
WINDOWS_ADMIN_SIDS: Final = frozenset(
    {
        "S-1-5-32-544",  # BUILTIN\Administrators
        "S-1-5-18",  # NT AUTHORITY\SYSTEM
        "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464",  # TrustedInstaller
    }
)


@dataclass(frozen=True)
class DebugState:
    """What :meth:`SystemTrust.deny_debugging` achieved, for the journal."""

    denied: bool
    mechanism: str
    #: Linux: the Yama ``ptrace_scope`` (0 classic … 3 no attach), None when unknown
    ptrace_scope: int | None = None
    reason: str = ""

    def as_record(self) -> dict[str, Any]:
        return {
            "denied": self.denied,
            "mechanism": self.mechanism,
            "ptrace_scope": self.ptrace_scope,
            "reason": self.reason,
        }


class SystemTrust(Protocol):
    """The three questions of the trust boundary, answered per OS."""

    def program_data(self) -> PurePath:
        """The machine-wide folder of IT's files (``/etc`` on Linux)."""
        ...

    def organisation_file(self) -> PurePath:
        """The system organisation file (fixed per OS)."""
        ...

    def file_problem(self, path: PurePath) -> str | None:
        """Why ``path`` cannot be trusted as IT's file (None: it can, or it is missing)."""
        ...

    def deny_debugging(self) -> DebugState:
        """Keep the candidate's other processes from debugging or reading this one."""
        ...


# -- POSIX (Linux, macOS) -----------------------------------------------------------------


def posix_path_problem(
    path: Path, *, lstat: Callable[[Path], os.stat_result] = os.lstat
) -> str | None:
    """Why ``path`` (a file that exists, or not) is not safe from non-root users.

    The real path is checked (symbolic links resolved), each folder from it up to ``/``:
    owned by root (uid 0), not writable by group or others unless a root-owned sticky
    folder. A missing file is no problem (an unmanaged machine): None.
    """
    real = Path(os.path.realpath(path))
    chain = [real, *real.parents]
    for index, item in enumerate(chain):
        try:
            st = lstat(item)
        except FileNotFoundError:
            if index == 0:
                return None
            return None  # a missing folder means a missing file
        except OSError as exc:
            return f"{item} cannot be examined ({exc.strerror})"
        what = "folder" if stat.S_ISDIR(st.st_mode) else "file"
        if st.st_uid != 0:
            return f"{what} {item} is owned by uid {st.st_uid}, not by root"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        sticky = stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX
        if writable and not (sticky and index > 0):
            who = (
                "group and others"
                if writable == (stat.S_IWGRP | stat.S_IWOTH)
                else ("its group" if writable & stat.S_IWGRP else "others")
            )
            return f"{what} {item} is writable by {who}"
    return None


class LinuxNative:
    """The Linux calls: ``prctl`` through libc and the Yama setting."""

    def set_dumpable(self, value: bool) -> bool:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, int(value), 0, 0, 0)) == 0

    def dumpable(self) -> bool:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) == 1

    def ptrace_scope(self) -> int | None:
        try:
            return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip())
        except (OSError, ValueError):
            return None


class MacNative:  # pragma: no cover - needs macOS
    """The macOS call: ``ptrace(PT_DENY_ATTACH)``."""

    def deny_attach(self) -> bool:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.ptrace(PT_DENY_ATTACH, 0, None, 0)) == 0


class PosixTrust:
    """Linux and macOS: root-owned files under fixed paths."""

    def __init__(self, native: Any, *, platform: str | None = None) -> None:
        self._native = native
        self._platform = platform or sys.platform

    def program_data(self) -> PurePath:
        if self._platform == "darwin":
            return PurePath("/Library/Application Support")
        return PurePath("/etc")

    def organisation_file(self) -> PurePath:
        if self._platform == "darwin":
            return self.program_data() / "Lockdown" / "organisation.toml"
        return self.program_data() / "lockdown" / "organisation.toml"

    def file_problem(self, path: PurePath) -> str | None:
        return posix_path_problem(Path(path))

    def deny_debugging(self) -> DebugState:
        if self._platform == "darwin":
            ok = bool(self._native.deny_attach())
            return DebugState(ok, "ptrace(PT_DENY_ATTACH)", reason="" if ok else "refused")
        scope = self._native.ptrace_scope()
        if not self._native.set_dumpable(False):
            return DebugState(False, "prctl(PR_SET_DUMPABLE)", scope, "prctl failed")
        denied = not self._native.dumpable()
        return DebugState(denied, "prctl(PR_SET_DUMPABLE, 0)", scope)


# -- Windows ------------------------------------------------------------------------------


class WindowsNative:  # pragma: no cover - needs Windows
    """The Win32 calls: the ProgramData known folder, file owner and DACL, process DACL."""

    def program_data(self) -> str:
        from ctypes import wintypes

        folder_id = (ctypes.c_byte * 16).from_buffer_copy(
            # FOLDERID_ProgramData {62AB5D82-FDC1-4DC3-A9DD-070D1D495D97}
            bytes.fromhex("825dab62c1fdc34da9dd070d1d495d97")
        )
        out = ctypes.c_wchar_p()
        shell32 = ctypes.windll.shell32  # type: ignore[attr-defined]
        if shell32.SHGetKnownFolderPath(ctypes.byref(folder_id), 0, None, ctypes.byref(out)):
            raise OSError("SHGetKnownFolderPath failed")
        try:
            return str(out.value)
        finally:
            ctypes.windll.ole32.CoTaskMemFree(ctypes.cast(out, wintypes.LPVOID))  # type: ignore[attr-defined]

    def owner_and_writers(self, path: str) -> tuple[str, list[str]]:
        """The owner SID and the SIDs that an allow ACE grants write access to."""
        from ctypes import wintypes

        advapi = ctypes.windll.advapi32  # type: ignore[attr-defined]
        owner = ctypes.c_void_p()
        dacl = ctypes.c_void_p()
        descriptor = ctypes.c_void_p()
        # SE_FILE_OBJECT = 1; OWNER (1) | DACL (4)
        if advapi.GetNamedSecurityInfoW(
            path,
            1,
            1 | 4,
            ctypes.byref(owner),
            None,
            ctypes.byref(dacl),
            None,
            ctypes.byref(descriptor),
        ):
            raise OSError(f"GetNamedSecurityInfoW failed for {path}")

        def sid_text(sid: int) -> str:
            text = wintypes.LPWSTR()
            advapi.ConvertSidToStringSidW(ctypes.c_void_p(sid), ctypes.byref(text))
            return str(text.value)

        class AclSizeInfo(ctypes.Structure):
            _fields_ = (
                ("count", wintypes.DWORD),
                ("used", wintypes.DWORD),
                ("free", wintypes.DWORD),
            )

        writers: list[str] = []
        info = AclSizeInfo()
        advapi.GetAclInformation(dacl, ctypes.byref(info), ctypes.sizeof(info), 2)
        write_bits = 0x2 | 0x4 | 0x40000 | 0x80000 | 0x10000000 | 0x40000000
        for index in range(info.count):
            ace = ctypes.c_void_p()
            advapi.GetAce(dacl, index, ctypes.byref(ace))
            ace_type = ctypes.cast(ace, ctypes.POINTER(ctypes.c_ubyte))[0]
            if ace_type != 0:  # ACCESS_ALLOWED_ACE_TYPE
                continue
            mask = ctypes.cast(ace.value + 4, ctypes.POINTER(wintypes.DWORD))[0]  # type: ignore[operator]
            if mask & write_bits:
                writers.append(sid_text(ace.value + 8))  # type: ignore[operator]
        owner_sid = sid_text(owner.value or 0)
        ctypes.windll.kernel32.LocalFree(descriptor)  # type: ignore[attr-defined]
        return owner_sid, writers

    def protect_process(self) -> bool:
        """Give this process a DACL that grants others no debug, read or write rights."""
        advapi = ctypes.windll.advapi32  # type: ignore[attr-defined]
        kernel = ctypes.windll.kernel32  # type: ignore[attr-defined]
        # D:P(A;;0x1000;;;WD): everyone may only query limited information.
        descriptor = ctypes.c_void_p()
        if not advapi.ConvertStringSecurityDescriptorToSecurityDescriptorW(
            "D:P(A;;0x1000;;;WD)(A;;GA;;;SY)", 1, ctypes.byref(descriptor), None
        ):
            return False
        present = ctypes.c_int()
        dacl = ctypes.c_void_p()
        defaulted = ctypes.c_int()
        advapi.GetSecurityDescriptorDacl(
            descriptor, ctypes.byref(present), ctypes.byref(dacl), ctypes.byref(defaulted)
        )
        # SE_KERNEL_OBJECT = 6, DACL_SECURITY_INFORMATION = 4
        result = advapi.SetSecurityInfo(kernel.GetCurrentProcess(), 6, 4, None, None, dacl, None)
        kernel.LocalFree(descriptor)
        return int(result) == 0


class WindowsTrust:
    """Windows: ProgramData from the shell, files owned and writable only by admins."""

    def __init__(self, native: Any) -> None:
        self._native = native

    def program_data(self) -> PurePath:
        try:
            return PureWindowsPath(self._native.program_data())
        except OSError:
            log.config.warning("The ProgramData folder is unknown; using C:\\ProgramData")
            return PureWindowsPath(r"C:\ProgramData")

    def organisation_file(self) -> PurePath:
        return self.program_data() / "Lockdown" / "organisation.toml"

    def file_problem(self, path: PurePath) -> str | None:
        chain = [path, *path.parents]
        for item in chain:
            try:
                owner, writers = self._native.owner_and_writers(str(item))
            except FileNotFoundError:
                return None
            except OSError as exc:
                return f"{item} cannot be examined ({exc})"
            if owner not in WINDOWS_ADMIN_SIDS:
                return f"{item} is owned by {owner}, not by Administrators"
            others = sorted(set(writers) - WINDOWS_ADMIN_SIDS - {"S-1-3-0"})  # creator owner
            if others:
                return f"{item} is writable by {', '.join(others)}"
        return None

    def deny_debugging(self) -> DebugState:
        ok = bool(self._native.protect_process())
        return DebugState(ok, "process DACL", reason="" if ok else "SetSecurityInfo failed")


def system_trust() -> SystemTrust:
    """The adapter of this OS."""
    if sys.platform == "win32":
        return WindowsTrust(WindowsNative())
    if sys.platform == "darwin":
        return PosixTrust(MacNative())
    return PosixTrust(LinuxNative())
