"""A private PulseAudio daemon with a virtual microphone fed from a null sink."""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.xserver import need

CONFIG = """\
load-module module-native-protocol-unix auth-anonymous=1
load-module module-null-sink sink_name=vsink sink_properties=device.description=VirtualSink
load-module module-virtual-source source_name=vmic master=vsink.monitor source_properties=device.description=VirtualMic
set-default-sink vsink
set-default-source vmic
"""


@dataclass
class VirtualMicrophone:
    """Sound played into ``vsink`` comes out of the default input ``vmic``."""

    runtime: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lockdown-pulse-")))
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> VirtualMicrophone:
        binary = need("pulseaudio")
        self.runtime.chmod(0o700)
        config = self.runtime / "default.pa"
        config.write_text(CONFIG)
        self.env = {
            "XDG_RUNTIME_DIR": str(self.runtime),
            "PULSE_RUNTIME_PATH": str(self.runtime / "pulse"),
            "PULSE_SERVER": f"unix:{self.runtime / 'pulse' / 'native'}",
            "HOME": os.environ.get("HOME", str(self.runtime)),
        }
        env = {**os.environ, **self.env}
        subprocess.run(
            [
                binary,
                "-D",
                "--exit-idle-time=-1",
                "--system=false",
                "-n",
                "-F",
                str(config),
                "--log-target=stderr",
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.pactl("info", check=False).returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("pulseaudio did not come up")

    def pactl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pactl", *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            check=check,
            timeout=15,
        )

    def play(self, wav: Path, *, wait: bool = True) -> subprocess.Popen[bytes]:
        """Play a WAV file into the virtual sink (so the microphone hears it)."""
        proc = subprocess.Popen(
            ["paplay", "--device=vsink", str(wav)],
            env={**os.environ, **self.env},
        )
        if wait:
            proc.wait(60)
        return proc

    def stop(self) -> None:
        self.pactl("exit", check=False)
