"""A private Xvfb for tests (started by the package's own :mod:`lockdown.ui.headless`), with
openbox on demand, X clients run on it, and screenshots."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lockdown.ui import headless


class ToolMissing(RuntimeError):
    """A system tool the tests need is not installed; `make test` installs it."""


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise ToolMissing(f"{tool} is not installed; run `make test` (its bootstrap installs it)")
    return path


@dataclass
class Xvfb(headless.Xvfb):
    """A private X server (started by :class:`lockdown.ui.headless.Xvfb`), with openbox on
    demand, X clients run on it and full-screen screenshots."""

    wm: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Xvfb:
        need("Xvfb")
        super().start(timeout)
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
        super().stop()

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
