"""A private Xvfb for running the kiosk without a display (the headless demo, the bench)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field

from lockdown.errors import UserError


class NoDisplay(UserError):
    """No display and no Xvfb to make one."""


def has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


@dataclass
class Xvfb:
    """Start with :meth:`start`, stop with :meth:`stop`; ``env`` holds ``DISPLAY``."""

    width: int = 1280
    height: int = 800
    depth: int = 24
    display: str = ""
    proc: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 20.0) -> Xvfb:
        binary = shutil.which("Xvfb")
        if binary is None:
            raise NoDisplay(
                "no display and Xvfb is not installed; install xvfb (make setup does) "
                "or run on a desktop"
            )
        read_fd, write_fd = os.pipe()
        self.proc = subprocess.Popen(
            [
                binary,
                "-displayfd",
                str(write_fd),
                "-screen",
                "0",
                f"{self.width}x{self.height}x{self.depth}",
                "-nolisten",
                "tcp",
                "+extension",
                "RANDR",
                "-noreset",
            ],
            pass_fds=(write_fd,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write_fd)
        number = b""
        deadline = time.monotonic() + timeout
        with os.fdopen(read_fd, "rb") as fh:
            while time.monotonic() < deadline and not number.endswith(b"\n"):
                chunk = fh.read(1)
                if not chunk:
                    break
                number += chunk
        if not number.strip():
            self.stop()
            raise NoDisplay("Xvfb did not start (no display number); check that xvfb works")
        self.display = ":" + number.decode().strip()
        self.env = {"DISPLAY": self.display, "XAUTHORITY": "/dev/null"}
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None
