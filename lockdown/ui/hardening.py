"""The web engine's environment and command line, built by us from an allow-list.

The candidate controls the environment Lockdown starts in. QtWebEngine and Chromium read
many variables that change what runs or where it connects: ``QTWEBENGINE_CHROMIUM_FLAGS``
(``-remote-debugging-port``, ``--proxy-server``, ``--renderer-cmd-prefix``…),
``QTWEBENGINE_REMOTE_DEBUGGING``, ``QTWEBENGINEPROCESS_PATH``, ``QT_PLUGIN_PATH``,
``QT_QPA_PLATFORM_PLUGIN_PATH``, ``http_proxy`` and more. A deny-list of them is always one
spelling behind, so :func:`plan_engine` keeps only the variables of
:data:`ALLOWED_VARIABLES` (and a ``QT_QPA_PLATFORM`` from :data:`ALLOWED_PLATFORMS`),
removes every other, and sets ``QTWEBENGINE_CHROMIUM_FLAGS`` to the flags *we* choose
(:func:`engine_flags`). :func:`apply_plan` writes the result into the process
environment, which the engine's helper processes inherit; it must run before the Qt
application is made.

Variables the dynamic loader or the interpreter read when the process started
(:data:`LOADER_VARIABLES`: ``LD_PRELOAD``, ``LD_LIBRARY_PATH``, ``PYTHONPATH``,
``PYTHONHOME``…) cannot be undone by removing them: an installed build refuses the exam
(:class:`EnvironmentRefused`, exit code 2); a development build (where the test suite
sets ``PYTHONPATH``) removes them for the engine and journals them.

Development switches (never read by an installed build; journalled when set):
``LOCKDOWN_DEV_ENGINE_ENVIRONMENT=inherit`` keeps the candidate's environment and flags
as they are (the positive control of the trust-boundary tests),
``LOCKDOWN_DEV_CHROMIUM_FLAGS`` adds flags (a fake camera for tests), and
``LOCKDOWN_DEV_NETWORK_GATE=off`` starts the engine without the network gate.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Final

from lockdown.errors import UserError
from lockdown.texts import text

#: Variables the web engine may see, as they are.
ALLOWED_VARIABLES: Final = frozenset(
    {
        # the display and the session
        "DISPLAY",
        "XAUTHORITY",
        "WAYLAND_DISPLAY",
        "XDG_RUNTIME_DIR",
        "XDG_SESSION_TYPE",
        "HOME",
        "USER",
        "LOGNAME",
        "TMPDIR",
        "PATH",
        # display scaling (how big, never what runs)
        "QT_SCALE_FACTOR",
        "QT_SCREEN_SCALE_FACTORS",
        "QT_ENABLE_HIGHDPI_SCALING",
        "QT_FONT_DPI",
        # language and time
        "LANG",
        "LANGUAGE",
        "TZ",
        # the sound server the recorder and the engine talk to
        "PULSE_SERVER",
        "PULSE_RUNTIME_PATH",
        # Windows' own
        "SYSTEMROOT",
        "WINDIR",
        "PROGRAMDATA",
        "APPDATA",
        "LOCALAPPDATA",
        "USERPROFILE",
        "TEMP",
        "TMP",
    }
)
#: Kept only when the organisation lets assistive technology reach the exam.
ASSISTIVE_VARIABLES: Final = frozenset(
    {"DBUS_SESSION_BUS_ADDRESS", "AT_SPI_BUS_ADDRESS", "QT_LINUX_ACCESSIBILITY_ALWAYS_ON"}
)
#: Prefixes of variables the web engine may see (Lockdown's own read nothing of Qt's).
ALLOWED_PREFIXES: Final = ("LC_", "LOCKDOWN_")
#: Development builds only: the test harness's own certificate authority for ``https`` configs.
DEVELOPMENT_VARIABLES: Final = frozenset({"REQUESTS_CA_BUNDLE"})
#: ``QT_QPA_PLATFORM`` values that show the exam on this computer's screen (not ``vnc``).
ALLOWED_PLATFORMS: Final = frozenset({"xcb", "wayland", "offscreen", "windows", "cocoa"})
#: Read by the dynamic loader or the interpreter at start: removing them undoes nothing.
LOADER_VARIABLES: Final = (
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONUSERBASE",
)
#: Removed variables whose value is journalled (they steer the engine); others by name only.
ENGINE_CONTROL_PREFIXES: Final = ("QT", "CHROME", "GOOGLE_", "LD_", "PYTHON")
ENGINE_CONTROL_NAMES: Final = frozenset(
    {"http_proxy", "https_proxy", "all_proxy", "no_proxy", "auto_proxy", "SOCKS_SERVER"}
)
_VALUE_LIMIT: Final = 300
SANDBOX_VARIABLE: Final = "QTWEBENGINE_DISABLE_SANDBOX"
#: Where a PyInstaller bootloader keeps the LD_LIBRARY_PATH it was started with.
BOOTLOADER_ORIGINAL: Final = "LD_LIBRARY_PATH_ORIG"
FLAGS_VARIABLE: Final = "QTWEBENGINE_CHROMIUM_FLAGS"


class SandboxRefused(UserError):
    """Lockdown runs as root without the web engine sandbox being switched off knowingly."""


class EnvironmentRefused(UserError):
    """An installed build found variables that change what runs inside Lockdown."""


def sandbox_state(environ: Mapping[str, str], *, euid: int) -> str:
    """``"on"``, or ``"off"`` when the web engine sandbox is switched off (root only).

    Chromium refuses to run as root with its sandbox and then dies without a word. The
    sandbox may be off only for root, and only because someone set
    ``QTWEBENGINE_DISABLE_SANDBOX=1`` (the test harness, CI) — never silently.

    Raises:
        SandboxRefused: running as root with the sandbox on (it would die silently), or
            the sandbox switched off for a normal user.
    """
    flags = environ.get(FLAGS_VARIABLE, "")
    off = environ.get(SANDBOX_VARIABLE) == "1" or "--no-sandbox" in flags.split()
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


def engine_flags(*, sandbox_off: bool, proxy: str | None) -> list[str]:
    """The Chromium flags Lockdown chooses; nothing else reaches the engine's command line.

    ``proxy`` is the network gate (:mod:`lockdown.ui.netgate`): every connection of the
    engine, loopback included, goes through it, and WebRTC may not use UDP (which no
    proxy carries), so its TURN-over-TCP goes through the gate too.
    """
    flags = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--disable-quic",
    ]
    if proxy is not None:
        flags += [
            f"--proxy-server={proxy}",
            "--proxy-bypass-list=<-loopback>",
            "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
        ]
    if sandbox_off:
        flags.append("--no-sandbox")
    return flags


@dataclass(frozen=True)
class EnginePlan:
    """The environment and flags the engine starts with, and what was taken away."""

    environ: dict[str, str]
    flags: list[str]
    #: names of the removed variables
    removed: list[str] = field(default_factory=list)
    #: removed variables that steer the engine, with their values (journalled)
    refused: dict[str, str] = field(default_factory=dict)
    #: loader/interpreter variables present at start (journalled; refused when installed)
    loader: dict[str, str] = field(default_factory=dict)
    sandbox: str = "on"
    #: development switches in effect (name -> value)
    switches: dict[str, str] = field(default_factory=dict)

    def journal_payloads(self) -> list[tuple[str, dict[str, object]]]:
        """``(event type, payload)`` of what the session journal records about the start."""
        out: list[tuple[str, dict[str, object]]] = [
            ("kiosk.engine_started", {"flags": list(self.flags), "sandbox": self.sandbox})
        ]
        if self.removed:
            out.append(
                (
                    "kiosk.engine_environment_removed",
                    {"names": list(self.removed), "refused": dict(self.refused)},
                )
            )
        if self.loader:
            out.append(("kiosk.loader_variables", {"variables": dict(self.loader)}))
        out += [
            ("kiosk.dev_switch", {"name": name, "value": value})
            for name, value in sorted(self.switches.items())
        ]
        return out


def _steers_engine(name: str) -> bool:
    return name.upper().startswith(ENGINE_CONTROL_PREFIXES) or name in ENGINE_CONTROL_NAMES


def _allowed(name: str, value: str, *, installed: bool, assistive: bool = False) -> bool:
    if name in ALLOWED_VARIABLES or name.startswith(ALLOWED_PREFIXES):
        return True
    if assistive and name in ASSISTIVE_VARIABLES:
        return True
    if name == "QT_QPA_PLATFORM":
        return value in ALLOWED_PLATFORMS
    return not installed and name in DEVELOPMENT_VARIABLES


def plan_engine(
    environ: Mapping[str, str],
    *,
    euid: int,
    installed: bool,
    proxy: str | None,
    switches: Mapping[str, str] | None = None,
    assistive: bool = False,
    bundle: str | None = None,
) -> EnginePlan:
    """The engine's environment and flags from an allow-list (pure: nothing is changed).

    ``assistive`` (the organisation's ``accessibility.assistive_technology``) keeps the
    session bus and the accessibility variables assistive technology needs. ``bundle``
    is a frozen bundle's folder: the engine keeps ``LD_LIBRARY_PATH`` pointing there
    alone (its helper process loads the bundled libraries).

    ``switches`` are the development switches in effect (``ENGINE_ENVIRONMENT``,
    ``CHROMIUM_FLAGS``); an installed build passes none.

    Raises:
        EnvironmentRefused: an installed build started with a loader or interpreter
            variable (it changed what runs inside Lockdown before any check could run).
        SandboxRefused: see :func:`sandbox_state`.
    """
    used = {k: v for k, v in (switches or {}).items() if v and not installed}
    sandbox = sandbox_state(environ, euid=euid)
    loader = {n: environ[n][:_VALUE_LIMIT] for n in LOADER_VARIABLES if environ.get(n)}
    if bundle is not None and "LD_LIBRARY_PATH" in loader:
        # A frozen bundle's bootloader prepends its own folder to LD_LIBRARY_PATH and keeps
        # the value it was started with in LD_LIBRARY_PATH_ORIG: only that one is the
        # candidate's.
        original = environ.get(BOOTLOADER_ORIGINAL, "")
        if original:
            loader["LD_LIBRARY_PATH"] = original[:_VALUE_LIMIT]
        else:
            del loader["LD_LIBRARY_PATH"]
    if installed and loader:
        names = ", ".join(sorted(loader))
        raise EnvironmentRefused(text("engine.environment_refused", names=names))
    named = {f"LOCKDOWN_DEV_{k.upper()}": v for k, v in used.items()}
    if used.get("engine_environment") == "inherit":
        flags = environ.get(FLAGS_VARIABLE, "").split()
        if sandbox == "off" and "--no-sandbox" not in flags:
            flags.append("--no-sandbox")
        return EnginePlan(dict(environ), flags, loader=loader, sandbox=sandbox, switches=named)
    kept: dict[str, str] = {}
    removed: list[str] = []
    refused: dict[str, str] = {}
    for name, value in environ.items():
        if _allowed(name, value, installed=installed, assistive=assistive):
            kept[name] = value
            continue
        removed.append(name)
        if _steers_engine(name):
            refused[name] = value[:_VALUE_LIMIT]
    if bundle is not None:
        kept["LD_LIBRARY_PATH"] = bundle
        removed = [n for n in removed if n not in ("LD_LIBRARY_PATH", BOOTLOADER_ORIGINAL)]
        refused.pop("LD_LIBRARY_PATH", None)
    if sandbox == "off":
        kept[SANDBOX_VARIABLE] = "1"
        removed = [n for n in removed if n != SANDBOX_VARIABLE]
        refused.pop(SANDBOX_VARIABLE, None)
    flags = engine_flags(sandbox_off=sandbox == "off", proxy=proxy)
    extra = used.get("chromium_flags")
    if extra:
        flags += extra.split()
    kept[FLAGS_VARIABLE] = " ".join(flags)  # Qt splits at spaces, without any quoting
    return EnginePlan(
        kept,
        flags,
        removed=sorted(removed),
        refused=dict(sorted(refused.items())),
        loader=loader,
        sandbox=sandbox,
        switches=named,
    )


def apply_plan(plan: EnginePlan, environ: MutableMapping[str, str]) -> None:
    """Make ``environ`` (the process environment) exactly the plan's environment."""
    for name in [n for n in environ if n not in plan.environ]:
        del environ[name]
    for name, value in plan.environ.items():
        if environ.get(name) != value:
            environ[name] = value


def prepare_engine(
    environ: MutableMapping[str, str], *, euid: int, assistive: bool = False
) -> EnginePlan:
    """Start the network gate, then plan and apply the engine's environment and flags.

    Call before the Qt application is made (Qt reads its plugin variables then, the web
    engine its flags when the first profile is made).
    """
    from lockdown import build
    from lockdown.ui import netgate

    switches = {
        name: build.dev_switch(name) or ""
        for name in ("engine_environment", "chromium_flags", "network_gate")
    }
    gate_off = switches["network_gate"] == "off" or switches["engine_environment"] == "inherit"
    gate = None if gate_off else netgate.start()
    try:
        plan = plan_engine(
            environ,
            euid=euid,
            installed=build.current().installed,
            proxy=gate.proxy_url if gate is not None else None,
            switches=switches,
            assistive=assistive,
            bundle=getattr(sys, "_MEIPASS", None) if getattr(sys, "frozen", False) else None,
        )
    except UserError:
        if gate is not None:
            netgate.stop()
        raise
    apply_plan(plan, environ)
    return plan


#: Variables that switch Qt's accessibility bridge on, or point it at a bus.
_ACCESSIBILITY_VARIABLES: Final = ("QT_LINUX_ACCESSIBILITY_ALWAYS_ON", "AT_SPI_BUS_ADDRESS")
#: Where the bridge looks for the accessibility bus when it is off: nowhere.
NO_ACCESSIBILITY_BUS: Final = "unix:path=/nonexistent/lockdown-accessibility-off"


def accessibility(settings: Mapping[str, object], environ: MutableMapping[str, str]) -> bool:
    """Switch Qt's accessibility bridge off unless the organisation enables it.

    Any client on the session bus can turn the AT-SPI bridge on and then read or write
    page text through it. Off (the default), the bridge is pointed at a bus that does not
    exist, so it never watches the session bus, and the candidate's variables that force
    it on are removed. Must run before the QApplication is made (after
    :func:`prepare_engine`). Returns whether assistive technology may reach the exam.
    """
    enabled = bool(settings.get("accessibility.assistive_technology", False))
    if enabled:
        return True
    for name in _ACCESSIBILITY_VARIABLES:
        environ.pop(name, None)
    if sys.platform.startswith("linux"):
        environ["AT_SPI_BUS_ADDRESS"] = NO_ACCESSIBILITY_BUS
    return False
