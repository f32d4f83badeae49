"""The exam's own X server (root side): a fixed Xorg command, a fresh cookie, restore records.

Everything the privileged display helper decides is fixed here, nothing comes from its
caller (CVE-2018-14665 was a caller-chosen ``-modulepath``/``-logfile`` of a setuid Xorg):

- :func:`server_argv` — Xorg with ``-displayfd`` (the server picks a free display number),
  ``-auth /proc/self/fd/N`` (the cookie in a memory file it inherits: never a file on
  disk), ``-nolisten tcp -nolisten local`` (its file-system socket only), ``-noreset``,
  ``-novtswitch`` and ``DontVTSwitch`` / ``DontZap`` in :data:`XORG_CONFIG`, a config and
  log of ours in a fresh root-only folder, its own free virtual terminal (``vtN``) — or,
  with the fake terminals of a test machine, the active one shared (``-sharevts``).
- :func:`authority` — the Xauthority entries of a cookie (python-xlib matches the local
  host name, libxcb also a wild-card entry).
- :class:`RestoreRecords` — one record per running helper under :data:`RESTORE_DIR`
  (root-only), written before the server starts: the server's pid and the terminal to
  switch back to. :meth:`RestoreRecords.undo_leftovers` stops the server of a helper that
  died and switches the terminal back; the next helper runs it before anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

from lockdown.platform.vt_linux import VtAdapter, VtError

#: Where the restore records live (root-only, in memory: gone after a reboot, as the
#: servers they name are).
RESTORE_DIR: Final = Path("/run/lockdown/exam-display")
#: Xorg binaries, the first that exists and only root can change is used.
XORG_CANDIDATES: Final = ("/usr/lib/xorg/Xorg", "/usr/libexec/Xorg", "/usr/bin/Xorg")
#: The fixed server configuration: no VT switching, no zapping, no hot-plugged GPUs.
#: The dummy video driver is what a test machine has; on a real machine the modesetting
#: driver takes the screen (``Driver`` below is chosen by :func:`xorg_config`).
XORG_CONFIG_TEMPLATE: Final = """\
# Written by lockdown-display-helper for one exam; removed when the exam ends.
Section "ServerFlags"
    Option "DontVTSwitch" "true"
    Option "DontZap" "true"
    Option "DontZoom" "true"
    Option "AutoAddGPU" "false"
    Option "BlankTime" "0"
    Option "StandbyTime" "0"
    Option "SuspendTime" "0"
    Option "OffTime" "0"
{input}EndSection
Section "Device"
    Identifier "exam-device"
    Driver "{driver}"
{device}EndSection
Section "Monitor"
    Identifier "exam-monitor"
{monitor}EndSection
Section "Screen"
    Identifier "exam-screen"
    Device "exam-device"
    Monitor "exam-monitor"
    DefaultDepth 24
{screen}EndSection
"""
#: The dummy driver's screen: one 1280x800 mode (the tests' desktop size).
_DUMMY_DEVICE: Final = "    VideoRam 65536\n"
_DUMMY_MONITOR: Final = (
    "    HorizSync 5.0-1000.0\n"
    "    VertRefresh 5.0-200.0\n"
    '    Modeline "1280x800" 83.50 1280 1352 1480 1680 800 803 809 831\n'
)
_DUMMY_SCREEN: Final = (
    '    SubSection "Display"\n        Depth 24\n        Modes "1280x800"\n    EndSubSection\n'
)
#: On the fake terminals of a test machine nothing must grab the machine's input devices.
_NO_INPUT: Final = (
    '    Option "AutoAddDevices" "false"\n'
    '    Option "AutoEnableDevices" "false"\n'
    '    Option "AllowMouseOpenFail" "true"\n'
)
COOKIE_NAME: Final = b"MIT-MAGIC-COOKIE-1"
_FAMILY_LOCAL: Final = 256
_FAMILY_WILD: Final = 65535
START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 5.0


def xorg_config(*, fake_vt: bool, driver: str = "dummy") -> str:
    """The server configuration the helper writes (``driver``: "dummy" or "modesetting")."""
    dummy = driver == "dummy"
    return XORG_CONFIG_TEMPLATE.format(
        input=_NO_INPUT if fake_vt else "",
        driver=driver,
        device=_DUMMY_DEVICE if dummy else "",
        monitor=_DUMMY_MONITOR if dummy else "",
        screen=_DUMMY_SCREEN if dummy else "",
    )


def find_xorg(exists: Callable[[str], bool] = os.path.exists) -> str | None:
    """The Xorg binary (:data:`XORG_CANDIDATES`), None when none is installed."""
    return next((path for path in XORG_CANDIDATES if exists(path)), None)


def video_driver(modules: Path = Path("/usr/lib/xorg/modules/drivers")) -> str | None:
    """ "modesetting" on a machine with a kernel display device, else "dummy" if installed."""
    if Path("/dev/dri/card0").exists() and (modules / "modesetting_drv.so").exists():
        return "modesetting"
    if (modules / "dummy_drv.so").exists():
        return "dummy"
    return None


@dataclass(frozen=True)
class ServerPlan:
    """How the helper starts one server (all of it decided here, none by the caller)."""

    xorg: str
    folder: Path
    auth_fd: int
    display_fd: int
    vt: int
    share_vt: bool

    @property
    def config(self) -> Path:
        return self.folder / "xorg.conf"

    @property
    def log(self) -> Path:
        return self.folder / "Xorg.log"


def server_argv(plan: ServerPlan) -> list[str]:
    """The Xorg command line of :class:`ServerPlan`."""
    argv = [
        plan.xorg,
        "-displayfd",
        str(plan.display_fd),
        "-auth",
        f"/proc/self/fd/{plan.auth_fd}",
        "-config",
        str(plan.config),
        "-logfile",
        str(plan.log),
        "-nolisten",
        "tcp",
        "-nolisten",
        "local",
        "-noreset",
        "-novtswitch",
        "-keeptty",
        "-verbose",
        "0",
    ]
    if plan.share_vt:
        argv.append("-sharevts")
    argv.append(f"vt{plan.vt}")
    return argv


def _entry(family: int, address: bytes, number: bytes, cookie: bytes) -> bytes:
    parts = [struct.pack(">H", family)]
    for field_ in (address, number, COOKIE_NAME, cookie):
        parts.append(struct.pack(">H", len(field_)) + field_)
    return b"".join(parts)


def authority(cookie: bytes, display_number: int | None = None) -> bytes:
    """Xauthority entries for ``cookie``: the local host (python-xlib) and a wild card.

    ``display_number`` None leaves the number empty (any display: what the server reads
    before it knows its number).
    """
    number = b"" if display_number is None else str(display_number).encode()
    host = socket.gethostname().encode()
    return _entry(_FAMILY_LOCAL, host, number, cookie) + _entry(_FAMILY_WILD, b"", number, cookie)


def memory_file(name: str, data: bytes, *, inheritable: bool) -> int:
    """A memory file (``memfd``) holding ``data``, positioned at its start."""
    flags = 0 if inheritable else os.MFD_CLOEXEC
    fd = os.memfd_create(name, flags)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


# -- restore records ------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreRecord:
    """What a running helper changed: its server and the terminal to switch back to."""

    helper_pid: int
    server_pid: int
    display: str
    vt: int
    previous_vt: int
    vt_kind: str
    folder: str


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_xorg(pid: int) -> bool:
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    return os.path.basename(exe) == "Xorg"


def _server_in(folder: str) -> int:
    """The Xorg whose command line names ``folder`` (a helper that died before it wrote
    its server's pid), else 0."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(arg.startswith(folder.encode() + b"/") for arg in argv) and _is_xorg(
            int(entry.name)
        ):
            return int(entry.name)
    return 0


def stop_process(pid: int, timeout: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM, then SIGKILL after ``timeout``; True when the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, timeout)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.02)
    return not _alive(pid)


class RestoreRecords:
    """The helpers' restore records (one JSON file per helper pid, root-only folder)."""

    def __init__(self, folder: Path = RESTORE_DIR) -> None:
        self.folder = folder

    def _path(self, helper_pid: int) -> Path:
        return self.folder / f"{helper_pid}.json"

    def write(self, record: RestoreRecord) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        path = self._path(record.helper_pid)
        partial = path.with_suffix(".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, json.dumps(asdict(record)).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.replace(path)

    def remove(self, helper_pid: int) -> None:
        self._path(helper_pid).unlink(missing_ok=True)

    def leftovers(self) -> list[RestoreRecord]:
        """Records of helpers that are no longer running."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            try:
                record = RestoreRecord(**json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                path.unlink(missing_ok=True)
                continue
            if not _alive(record.helper_pid) or record.helper_pid == os.getpid():
                found.append(record)
        return found

    def undo_leftovers(self, vt: VtAdapter) -> list[dict[str, Any]]:
        """Stop the servers of dead helpers, switch their terminals back, drop the records."""
        done = []
        for record in self.leftovers():
            stopped = False
            pid = record.server_pid or _server_in(record.folder)
            if pid > 0 and _alive(pid) and _is_xorg(pid):
                stopped = stop_process(pid)
            switched = False
            if record.vt_kind == vt.kind and record.previous_vt > 0:
                try:
                    if vt.active() == record.vt:
                        vt.activate(record.previous_vt)
                        switched = True
                except VtError:
                    pass
            shutil.rmtree(record.folder, ignore_errors=True)
            self.remove(record.helper_pid)
            done.append(
                {
                    "display": record.display,
                    "server_pid": record.server_pid,
                    "server_stopped": stopped,
                    "vt_switched_back": switched,
                }
            )
        return done


def describe_argv(argv: Sequence[str]) -> str:
    """The command for a log line."""
    return " ".join(argv)
