"""Start and stop a private Xvfb (optionally with openbox) for tests and the headless demo."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path


class ToolMissing(RuntimeError):
    """A system tool the tests need is not installed; `make test` installs it."""


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} is not installed; run `make test` (its bootstrap installs it)")
    return path


@dataclass
class Xvfb:
    """A private X server. ``screens`` is a list of WxH for RandR outputs (default one)."""

    width: int = 1280
    height: int = 800
    depth: int = 24
    display: str = ""
    proc: subprocess.Popen[bytes] | None = None
    wm: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> Xvfb:
        binary = need("Xvfb")
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
        deadline = time.monotonic() + 20
        with os.fdopen(read_fd, "rb") as fh:
            while time.monotonic() < deadline and not number.endswith(b"\n"):
                chunk = fh.read(1)
                if not chunk:
                    break
                number += chunk
        if not number.strip():
            self.stop()
            raise RuntimeError("Xvfb did not start (no display number)")
        self.display = ":" + number.decode().strip()
        self.env = {"DISPLAY": self.display, "XAUTHORITY": "/dev/null"}
        return self

    def start_wm(self) -> None:
        """Start openbox on this display and wait until it manages windows."""
        if self.wm is not None:
            return
        binary = need("openbox")
        env = {**os.environ, **self.env}
        self.wm = subprocess.Popen(
            [binary, "--sm-disable", "--config-file", "/dev/null"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if "window id" in out.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError("openbox did not start")

    def stop_wm(self) -> None:
        if self.wm is not None:
            self.wm.terminate()
            try:
                self.wm.wait(5)
            except subprocess.TimeoutExpired:
                self.wm.kill()
            self.wm = None

    def stop(self) -> None:
        self.stop_wm()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def run(
        self, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """Run an X client (xdotool, xclip, xrandr…) on this display."""
        return subprocess.run(
            list(argv),
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=check,
            timeout=timeout,
        )

    def screenshot(self, path: Path) -> Path:
        """Grab the whole screen with ffmpeg's x11grab into a PNG."""
        self.run(
            need("ffmpeg"),
            "-loglevel",
            "error",
            "-y",
            "-f",
            "x11grab",
            "-video_size",
            f"{self.width}x{self.height}",
            "-i",
            self.display,
            "-frames:v",
            "1",
            str(path),
            timeout=30,
        )
        return path
