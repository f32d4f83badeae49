"""The exam's own X server, from our (unprivileged) side: find the helper, start, stop.

:func:`helper_command` says how this machine reaches the privileged display helper
(:mod:`lockdown.platform.display_helper`): an installed build runs the installed helper,
directly as root or through ``pkexec`` with the polkit rule the package installs; a
development build only when ``LOCKDOWN_DEV_DISPLAY_HELPER=1`` and as root (the tests).
:func:`start` runs it with two pipes: its standard output tells us the display and the
cookie; its standard input is a pipe only we hold (never inherited), so when this process
ends, however it ends, the helper reads the end of the pipe and stops the server.

The cookie never touches a file: it goes into a memory file of this process
(``memfd``, close-on-exec) and ``XAUTHORITY`` names it as ``/proc/self/fd/N``, a path
that means this process's own descriptor in every process that reads it. Another process
of the candidate's cannot open our ``/proc/PID/fd`` while we are not dumpable
(``PR_SET_DUMPABLE=0``, :mod:`lockdown.platform.trust`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lockdown import build, log
from lockdown.platform import exam_server

#: The installed helper and the polkit action the package installs (packaging/linux/).
HELPER_PATH: Final = Path("/usr/libexec/lockdown/lockdown-display-helper")
POLKIT_ACTION: Final = Path("/usr/share/polkit-1/actions/org.lockdown.display-helper.policy")
XSESSION_FILE: Final = Path("/usr/share/xsessions/lockdown-exam.desktop")
START_TIMEOUT_S: Final = exam_server.START_TIMEOUT_S + 10


class ExamDisplayUnavailable(RuntimeError):
    """The exam's own display cannot be had here; the message says why."""


@dataclass(frozen=True)
class HelperCommand:
    """How the helper is started here (None from :func:`helper_command`: it is not)."""

    argv: tuple[str, ...]
    #: "root" (we are root), "pkexec" (polkit asks), "development" (a test as root)
    how: str


def helper_command(
    *,
    installed: bool | None = None,
    euid: int | None = None,
    exists: Callable[[Path], bool] = Path.exists,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] | None = None,
) -> tuple[HelperCommand | None, str]:
    """How to start the helper here, and why not when it cannot be (a pure plan)."""
    installed = build.current().installed if installed is None else installed
    euid = os.geteuid() if euid is None else euid
    if not sys.platform.startswith("linux"):
        return None, "a display of its own exists only on Linux"
    if not installed:
        if build.dev_switch("DISPLAY_HELPER", environ) != "1":
            return None, "a development build starts the display helper only in tests"
        if euid != 0:
            return None, "the display helper runs as root (development build: run as root)"
        return (
            HelperCommand(
                (sys.executable, "-m", "lockdown.platform.display_helper"), "development"
            ),
            "",
        )
    if not exists(HELPER_PATH):
        return None, f"the display helper is not installed ({HELPER_PATH})"
    if euid == 0:
        return HelperCommand((str(HELPER_PATH),), "root"), ""
    pkexec = which("pkexec")
    if pkexec is None:
        return None, "pkexec is not installed (polkit), so the display helper cannot run"
    if not exists(POLKIT_ACTION):
        return None, f"the polkit rule for the display helper is missing ({POLKIT_ACTION})"
    return HelperCommand((pkexec, str(HELPER_PATH)), "pkexec"), ""


def availability(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``lockdown environment`` says: the mode available here and why."""
    env = os.environ if environ is None else environ
    command, reason = helper_command(environ=env)
    xorg = exam_server.find_xorg()
    checks: dict[str, Any] = {
        "helper": command.how if command else None,
        "xorg": xorg,
        "video_driver": exam_server.video_driver(),
        "xsession": XSESSION_FILE.exists(),
        "wayland": bool(env.get("WAYLAND_DISPLAY")),
    }
    if command is None:
        return {"mode": "shared", "reason": reason, **checks}
    if xorg is None:
        return {"mode": "shared", "reason": "Xorg is not installed", **checks}
    if checks["video_driver"] is None:
        return {"mode": "shared", "reason": "no Xorg video driver installed", **checks}
    return {"mode": "isolated", "reason": f"display helper available ({command.how})", **checks}


@dataclass
class ExamDisplay:
    """A running exam server: its display, terminal and our copy of the cookie."""

    display: str
    vt: int
    previous_vt: int
    vt_kind: str
    server_pid: int
    server: str
    restored: list[dict[str, Any]]
    helper: subprocess.Popen[bytes]
    how: str
    authority_fd: int
    #: called (on the helper's reader thread) when the server exits on its own
    on_server_exit: Callable[[int | None], None] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    _reader: threading.Thread | None = None

    @property
    def authority(self) -> str:
        """``XAUTHORITY`` for this process: its own memory file."""
        return f"/proc/self/fd/{self.authority_fd}"

    def environ(self) -> dict[str, str]:
        return {"DISPLAY": self.display, "XAUTHORITY": self.authority}

    def describe(self) -> dict[str, Any]:
        """What ``display.isolated`` says."""
        return {
            "server": self.server,
            "display": self.display,
            "vt": self.vt,
            "previous_vt": self.previous_vt,
            "vt_kind": self.vt_kind,
            "server_pid": self.server_pid,
            "helper": self.how,
            "restored": self.restored,
        }

    def _read(self) -> None:
        out = self.helper.stdout
        assert out is not None
        for raw in out:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            self.events.append(event)
            if event.get("event") == "server_exited":
                log.init.error("The exam's X server exited (status %s)", event.get("status"))
                if self.on_server_exit is not None:
                    self.on_server_exit(event.get("status"))

    def watch(self) -> None:
        """Read the helper's later events on a thread of its own."""
        self._reader = threading.Thread(target=self._read, name="exam-display-helper", daemon=True)
        self._reader.start()

    def stop(self, timeout: float = 15.0) -> bool:
        """Ask the helper to stop the server and switch back; True when it did."""
        stdin = self.helper.stdin
        if stdin is not None:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.write(b"stop\n")
                stdin.flush()
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.close()
        try:
            self.helper.wait(timeout)
        except subprocess.TimeoutExpired:
            self.helper.kill()
            self.helper.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        if self.helper.stdout is not None:
            self.helper.stdout.close()
        with contextlib.suppress(OSError):
            os.close(self.authority_fd)
        return any(e.get("event") == "stopped" for e in self.events)


def start(command: HelperCommand, timeout: float = START_TIMEOUT_S) -> ExamDisplay:
    """Run the helper and wait for its ``ready``; raise :class:`ExamDisplayUnavailable`."""
    started = time.monotonic()
    try:
        helper = subprocess.Popen(
            list(command.argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise ExamDisplayUnavailable(f"cannot run the display helper ({exc.strerror})") from exc
    assert helper.stdout is not None
    first = b""
    deadline = time.monotonic() + timeout
    fd = helper.stdout.fileno()
    while not first.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            first += chunk
    try:
        event = json.loads(first.split(b"\n", 1)[0]) if first else {}
    except ValueError:
        event = {}
    if event.get("event") != "ready":
        reason = str(event.get("reason") or "the display helper did not answer in time")
        _end(helper)
        raise ExamDisplayUnavailable(reason)
    cookie = bytes.fromhex(str(event["cookie"]))
    number = int(str(event["display"]).lstrip(":"))
    fd_auth = exam_server.memory_file(
        "lockdown-xauth", exam_server.authority(cookie, number), inheritable=False
    )
    del cookie
    shown = ExamDisplay(
        display=str(event["display"]),
        vt=int(event["vt"]),
        previous_vt=int(event["previous_vt"]),
        vt_kind=str(event["vt_kind"]),
        server_pid=int(event["server_pid"]),
        server=str(event.get("server", "Xorg")),
        restored=list(event.get("restored", [])),
        helper=helper,
        how=command.how,
        authority_fd=fd_auth,
    )
    log.init.info(
        "Exam display %s on terminal %d (%s) in %.2f s",
        shown.display,
        shown.vt,
        shown.vt_kind,
        time.monotonic() - started,
    )
    return shown


def _end(helper: subprocess.Popen[bytes]) -> None:
    if helper.stdin is not None:
        with contextlib.suppress(OSError):
            helper.stdin.close()
    try:
        helper.wait(15)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait(5)
    if helper.stdout is not None:
        helper.stdout.close()
