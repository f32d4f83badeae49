"""Remove what would open the exam browser to outside control before QtWebEngine starts.

Chromium opens a remote debugging port when ``QTWEBENGINE_REMOTE_DEBUGGING`` is set or
``--remote-debugging-port`` / ``--remote-debugging-pipe`` is among
``QTWEBENGINE_CHROMIUM_FLAGS``. :func:`scrub_environment` strips them (the caller journals
what it removed) and must run before the first web engine profile is made.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, MutableMapping
from typing import Final

from lockdown.errors import UserError

_REMOTE_FLAGS: Final = (
    "--remote-debugging-port",
    "--remote-debugging-pipe",
    "--remote-debugging-address",
)
_DANGEROUS_FLAGS: Final = (*_REMOTE_FLAGS, "--auto-open-devtools-for-tabs")


def scrub_environment(environ: MutableMapping[str, str]) -> list[str]:
    """Strip remote-debugging settings from ``environ``; return what was removed."""
    removed: list[str] = []
    if "QTWEBENGINE_REMOTE_DEBUGGING" in environ:
        value = environ.pop("QTWEBENGINE_REMOTE_DEBUGGING")
        removed.append(f"QTWEBENGINE_REMOTE_DEBUGGING={value}")
    flags = environ.get("QTWEBENGINE_CHROMIUM_FLAGS")
    if flags:
        try:
            parts = shlex.split(flags)
        except ValueError:
            parts = flags.split()
        kept = []
        for part in parts:
            if part.split("=", 1)[0] in _DANGEROUS_FLAGS:
                removed.append(part)
            else:
                kept.append(part)
        if len(kept) != len(parts):
            environ["QTWEBENGINE_CHROMIUM_FLAGS"] = " ".join(shlex.quote(p) for p in kept)
    return removed


def scrub_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split Chromium debugging switches off a command line (Qt passes argv to Chromium)."""
    kept = [a for a in argv if a.split("=", 1)[0] not in _DANGEROUS_FLAGS]
    removed = [a for a in argv if a.split("=", 1)[0] in _DANGEROUS_FLAGS]
    return kept, removed


class SandboxRefused(UserError):
    """Lockdown runs as root without the web engine sandbox being switched off knowingly."""


def sandbox_state(environ: Mapping[str, str], *, euid: int) -> str:
    """``"on"``, or ``"off"`` when the web engine sandbox is switched off (root only).

    Chromium refuses to run as root with its sandbox and then dies without a word. The
    sandbox may be off only for root, and only because someone set
    ``QTWEBENGINE_DISABLE_SANDBOX=1`` (the test harness, CI) — never silently.

    Raises:
        SandboxRefused: running as root with the sandbox on (it would die silently), or
            the sandbox switched off for a normal user.
    """
    flags = environ.get("QTWEBENGINE_CHROMIUM_FLAGS", "")
    off = environ.get("QTWEBENGINE_DISABLE_SANDBOX") == "1" or "--no-sandbox" in flags.split()
    if euid == 0 and not off:
        raise SandboxRefused(
            "Lockdown is running as root, where the web engine's sandbox cannot work; "
            "start Lockdown as the candidate's own user"
        )
    if euid != 0 and off:
        raise SandboxRefused(
            "the web engine sandbox is switched off (QTWEBENGINE_DISABLE_SANDBOX or "
            "--no-sandbox); remove that setting and start Lockdown again"
        )
    return "off" if off else "on"


#: Variables that switch Qt's accessibility bridge on, or point it at a bus.
_ACCESSIBILITY_VARIABLES: Final = ("QT_LINUX_ACCESSIBILITY_ALWAYS_ON", "AT_SPI_BUS_ADDRESS")
#: Where the bridge looks for the accessibility bus when it is off: nowhere.
NO_ACCESSIBILITY_BUS: Final = "unix:path=/nonexistent/lockdown-accessibility-off"


def accessibility(settings: Mapping[str, object], environ: MutableMapping[str, str]) -> bool:
    """Switch Qt's accessibility bridge off unless the organisation enables it.

    Any client on the session bus can turn the AT-SPI bridge on and then read or write
    page text through it. Off (the default), the bridge is pointed at a bus that does not
    exist, so it never watches the session bus, and the candidate's variables that force
    it on are removed. Must run before the QApplication is made. Returns whether
    assistive technology may reach the exam.
    """
    enabled = bool(settings.get("accessibility.assistive_technology", False))
    if enabled:
        return True
    for name in _ACCESSIBILITY_VARIABLES:
        environ.pop(name, None)
    if sys.platform.startswith("linux"):
        environ["AT_SPI_BUS_ADDRESS"] = NO_ACCESSIBILITY_BUS
    return False
