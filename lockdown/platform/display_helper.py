"""``lockdown-display-helper``: the privileged helper that runs the exam's own X server.

Installed with a polkit rule that lets the active local user run it through ``pkexec``
(``packaging/linux/``). It takes **no arguments and reads no paths from its caller**;
everything it runs is fixed in :mod:`lockdown.platform.exam_server`. In order:

1. Undo what a helper that died left behind (its server, its terminal) from the restore
   records, then write this helper's record before anything changes.
2. Start Xorg on a free virtual terminal with a fresh cookie (a memory file the server
   inherits), wait until it accepts connections (``-displayfd``), switch to its terminal.
3. Tell the caller on standard output, one JSON object per line: ``ready`` (display,
   terminal, the cookie in hex, the server's pid, what was restored), later
   ``server_exited`` when the server dies on its own, and ``stopped`` at the end.
4. Watch standard input, a pipe whose other end only the caller holds: ``stop`` or the
   end of the pipe (the caller exited or was killed, ``kill -9`` included: a parent-death
   signal would not survive ``pkexec``) stops the server and switches back.

Exit codes: 0 stopped as asked, 1 the server could not start, 2 called with arguments,
3 the server died on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any, Final

from lockdown import build
from lockdown.platform import exam_server
from lockdown.platform.exam_server import RestoreRecord, RestoreRecords, ServerPlan
from lockdown.platform.vt_linux import FakeVt, LinuxVt, VtAdapter, VtError

#: Where the helper keeps each server's configuration and log (root-only folders).
WORK_DIR: Final = Path("/run/lockdown")
_SAFE_PATH: Final = "/usr/sbin:/usr/bin:/sbin:/bin"


class _Stop(Exception):
    """A signal asked the helper to stop."""


def _emit(event: str, **values: Any) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        sys.stdout.write(json.dumps({"event": event, **values}) + "\n")
        sys.stdout.flush()


def _on_signal(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def _wait_number(read_fd: int, proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The display number the server writes to ``-displayfd`` once it accepts clients."""
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.1)
        if ready:
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            got += chunk
            if got.endswith(b"\n"):
                return int(got.strip())
        elif proc.poll() is not None:
            break
    return None


def _log_tail(path: Path, lines: int = 3) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "no server log"
    errors = [line for line in text if "(EE)" in line and "Unable to locate" not in line]
    return " | ".join((errors or text)[-lines:]).strip()


def _real_active_vt() -> int | None:
    try:
        return LinuxVt().active()
    except VtError:
        return None


class Helper:
    """One run of the helper (see the module's docstring for the order)."""

    def __init__(self, vt: VtAdapter, records: RestoreRecords, work: Path = WORK_DIR) -> None:
        self.vt = vt
        self.records = records
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.folder: Path | None = None
        self.record: RestoreRecord | None = None

    def start(self) -> dict[str, Any]:
        """Start the server; the ``ready`` values, or raise ``RuntimeError(reason)``."""
        restored = self.records.undo_leftovers(self.vt)
        xorg = exam_server.find_xorg()
        if xorg is None:
            raise RuntimeError("Xorg is not installed (install xserver-xorg-core)")
        driver = exam_server.video_driver()
        if driver is None:
            raise RuntimeError("no Xorg video driver (install xserver-xorg-video-dummy)")
        fake = self.vt.kind == "fake"
        try:
            previous = self.vt.active()
            number = self.vt.free()
        except VtError as exc:
            raise RuntimeError(f"no virtual terminal for the exam ({exc.strerror})") from exc
        share = _real_active_vt() if fake else None
        self.work.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.folder = Path(tempfile.mkdtemp(prefix="exam-display-", dir=self.work))
        plan_config = exam_server.xorg_config(fake_vt=fake, driver=driver)
        (self.folder / "xorg.conf").write_text(plan_config)
        cookie = secrets.token_bytes(16)
        auth_fd = exam_server.memory_file(
            "lockdown-exam-auth", exam_server.authority(cookie), inheritable=True
        )
        read_fd, write_fd = os.pipe()
        self.record = RestoreRecord(
            os.getpid(), 0, "", number, previous, self.vt.kind, str(self.folder)
        )
        self.records.write(self.record)
        plan = ServerPlan(
            xorg=xorg,
            folder=self.folder,
            auth_fd=auth_fd,
            display_fd=write_fd,
            vt=share if fake and share is not None else number,
            share_vt=fake,
        )
        argv = exam_server.server_argv(plan)
        if fake and share is None:
            argv = argv[:-1]  # no console at all: nothing to name
        try:
            self.proc = subprocess.Popen(
                argv,
                pass_fds=(auth_fd, write_fd),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={"PATH": _SAFE_PATH},
                start_new_session=True,
            )
        finally:
            os.close(write_fd)
            os.close(auth_fd)
        self.record = replace(self.record, server_pid=self.proc.pid)
        self.records.write(self.record)
        try:
            display_number = _wait_number(read_fd, self.proc, exam_server.START_TIMEOUT_S)
        finally:
            os.close(read_fd)
        if display_number is None:
            raise RuntimeError(f"the exam's X server did not start ({_log_tail(plan.log)})")
        display = f":{display_number}"
        self.record = replace(self.record, display=display)
        self.records.write(self.record)
        try:
            self.vt.activate(number)
        except VtError as exc:
            raise RuntimeError(f"cannot switch to terminal {number} ({exc.strerror})") from exc
        return {
            "display": display,
            "vt": number,
            "previous_vt": previous,
            "vt_kind": self.vt.kind,
            "cookie": cookie.hex(),
            "server_pid": self.proc.pid,
            "server": os.path.basename(xorg),
            "driver": driver,
            "restored": restored,
        }

    def watch(self, stdin: int) -> tuple[str, int | None]:
        """Until the caller says ``stop`` or goes, or the server exits: (why, status)."""
        assert self.proc is not None
        pidfd = os.pidfd_open(self.proc.pid)
        try:
            buffered = b""
            while True:
                ready, _, _ = select.select([stdin, pidfd], [], [])
                if pidfd in ready:
                    return "server_exited", self.proc.wait()
                chunk = os.read(stdin, 256)
                if not chunk:
                    return "caller_gone", None
                buffered += chunk
                if b"stop" in buffered:
                    return "stop", None
                buffered = buffered[-8:]
        finally:
            os.close(pidfd)

    def stop(self) -> dict[str, Any]:
        """Stop the server, switch back, remove the folder and the record."""
        stopped = True
        if self.proc is not None and self.proc.poll() is None:
            stopped = exam_server.stop_process(self.proc.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(1)
        switched_to = None
        if self.record is not None:
            try:
                if self.vt.active() == self.record.vt and self.record.previous_vt > 0:
                    self.vt.activate(self.record.previous_vt)
                    switched_to = self.record.previous_vt
            except VtError:
                pass
            self.records.remove(self.record.helper_pid)
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
        return {"server_stopped": stopped, "vt_back": switched_to}


def choose_vt() -> VtAdapter:
    """The real console, or the fake one in a development build with ``FAKE_VT=1``."""
    if build.dev_switch("FAKE_VT") == "1":
        return FakeVt()
    return LinuxVt()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args:
        _emit("failed", reason="lockdown-display-helper takes no arguments")
        return 2
    if os.geteuid() != 0:
        _emit("failed", reason="lockdown-display-helper must run as root (through pkexec)")
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _on_signal)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    helper = Helper(choose_vt(), RestoreRecords())
    why, status = "failed", None
    try:
        try:
            ready = helper.start()
        except RuntimeError as exc:
            _emit("failed", reason=str(exc))
            return 1
        _emit("ready", **ready)
        why, status = helper.watch(sys.stdin.fileno())
        if why == "server_exited":
            _emit("server_exited", status=status)
    except _Stop as exc:
        why = f"signal {exc}"
    finally:
        done = helper.stop()
        _emit("stopped", reason=why, **done)
    return 3 if why == "server_exited" else 0


if __name__ == "__main__":
    raise SystemExit(main())
