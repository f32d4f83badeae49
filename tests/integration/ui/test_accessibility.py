"""The accessibility bridge: off unless the organisation enables it, tried with a real bus.

Any client on the session bus can start the accessibility bus and switch it on, as a
screen reader does; Qt then exposes every widget's text to every client of that bus.
The test runs a real Qt window under a private ``dbus-run-session`` with the
accessibility bus launcher, then switches accessibility on from outside.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.xserver import Xvfb

pytestmark = [pytest.mark.x11]

ROOT = Path(__file__).resolve().parents[3]
LAUNCHER = Path("/usr/libexec/at-spi-bus-launcher")

# The exam side: our switch decides before the QApplication exists.
APP = """
import os, sys
from lockdown.ui.hardening import accessibility
accessibility({"accessibility.assistive_technology": sys.argv[1] == "on"}, os.environ)
from PySide6.QtCore import QTimer
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QApplication, QLabel
app = QApplication([])
label = QLabel("Question 1: what is 6 x 7?")
label.show()
def report():
    print("active" if QAccessible.isActive() else "inactive", flush=True)
    app.quit()
QTimer.singleShot(2500, report)
app.exec()
"""
# The candidate's side, on the same session bus: start the accessibility bus, wait for
# the app, switch accessibility on as a screen reader would.
SESSION = """
"$LAUNCHER" --launch-immediately >/dev/null 2>&1 &
sleep 0.5
"$PYTHON" -c "$APP" "$MODE" &
app=$!
sleep 1
dbus-send --session --print-reply --dest=org.a11y.Bus /org/a11y/bus \
  org.freedesktop.DBus.Properties.Set string:org.a11y.Status string:IsEnabled \
  variant:boolean:true >/dev/null
wait $app
"""


def _run(xserver: Xvfb, mode: str) -> str:
    env = {
        **os.environ,
        **xserver.env,
        "QT_QPA_PLATFORM": "xcb",
        "PYTHONPATH": str(ROOT),
        "LAUNCHER": str(LAUNCHER),
        "PYTHON": sys.executable,
        "APP": APP,
        "MODE": mode,
        # the candidate's own variable that forces the bridge on
        "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1",
    }
    env.pop("AT_SPI_BUS_ADDRESS", None)
    done = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", SESSION],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr


@pytest.mark.skipif(
    not LAUNCHER.exists() or shutil.which("dbus-run-session") is None,
    reason="needs at-spi2-core and dbus (`make test` installs them)",
)
def test_a_bus_client_cannot_switch_accessibility_on_unless_the_organisation_allows(
    xserver: Xvfb,
) -> None:
    # positive control: with the organisation's option on, the outside switch works
    assert _run(xserver, "on") == "active"
    assert _run(xserver, "off") == "inactive"
