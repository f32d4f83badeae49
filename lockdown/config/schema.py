"""Every Lockdown option, declared once: type, default, description, who may set it.

This is the one settings schema. ``docs/settings.md`` is generated from it
(``make docs``) and a test fails when the file is stale. Code reads options only
through :class:`lockdown.config.settings.Settings`, which refuses undeclared keys.

``exam=True`` means an exam configuration may set the option; the rest are for the
organisation file (IT staff) only. The organisation file can also lock any option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from lockdown.config.types import (
    Bool,
    Choice,
    Duration,
    Float,
    Int,
    List,
    OptionType,
    Record,
    Str,
    Url,
)


@dataclass(frozen=True)
class Option:
    key: str
    type: OptionType
    default: Any
    doc: str
    exam: bool = True


HEX64: Final = Str(r"[0-9a-fA-F]{64}", "64 hexadecimal digits (a SHA-256)")
PERMISSION: Final = Choice({"ask": "ask the candidate", "allow": "grant", "deny": "refuse"})
POLICY: Final = Choice(
    {
        "allow": "do nothing",
        "warn": "journal it and tell the candidate, the exam goes on",
        "deny": "refuse to start the exam (and journal it)",
    }
)
URL_RULE: Final = Record(
    fields={
        "active": Bool(),
        "kind": Choice({"regex": "a regular expression", "glob": "a wildcard pattern (* and ?)"}),
        "expression": Str(max_length=2048),
        "action": Choice({"allow": "let it load", "block": "refuse it"}),
    },
    defaults={"active": True, "kind": "glob"},
)

OPTIONS: Final[tuple[Option, ...]] = (
    # -- config ---------------------------------------------------------------------
    Option(
        "config.allow_unsigned",
        Bool(),
        False,
        "Accept exam configuration files that carry no signature. Organisation file only.",
        exam=False,
    ),
    Option(
        "config.trusted_keys",
        List(Str(r"ed25519:[A-Za-z0-9+/]{43}=", "an ed25519:<base64> public key")),
        (),
        "Public keys whose signatures on exam configuration files are trusted "
        "(as printed by `lockdown keys generate`). Organisation file only.",
        exam=False,
    ),
    Option(
        "config.allow_seb",
        Bool(),
        True,
        "Open Safe Exam Browser .seb files (their Config Key is checked by the exam server). "
        "Organisation file only.",
        exam=False,
    ),
    Option(
        "config.plain_http_hosts",
        List(Str(r"[A-Za-z0-9.\-]{1,253}", "a host name")),
        (),
        "Hosts besides this computer that lockdown:// links may download an exam "
        "configuration from over plain http (each such download is journalled). "
        "Organisation file only.",
        exam=False,
    ),
    # -- network ----------------------------------------------------------------------
    Option(
        "network.proxy",
        Url(),
        "",
        "Proxy for Lockdown's own downloads (exam configurations); empty: none. Proxy "
        "settings in the environment are never used. Organisation file only.",
        exam=False,
    ),
    Option(
        "network.ca_certificates",
        Str(max_length=4096),
        "",
        "A PEM file of extra certificate authorities trusted for Lockdown's own downloads, "
        "besides the built-in ones; empty: none. Certificate settings in the environment "
        "are never used. Organisation file only.",
        exam=False,
    ),
    # -- accessibility ----------------------------------------------------------------
    Option(
        "accessibility.assistive_technology",
        Bool(),
        False,
        "Let assistive technology (screen readers, on-screen keyboards) reach the exam "
        "through the accessibility bus. Off, no program can read or write page text that "
        "way. Organisation file only.",
        exam=False,
    ),
    # -- browser --------------------------------------------------------------------
    Option("browser.start_url", Url(), "", "The page the exam starts on."),
    Option(
        "browser.url_filter",
        Bool(),
        True,
        "Filter every request by `browser.url_rules`; off lets every URL load.",
    ),
    Option(
        "browser.url_rules",
        List(URL_RULE),
        (),
        "URL filter rules (Safe Exam Browser semantics): block rules first, then allow "
        "rules, everything else blocked. The start URL's origin is allowed unless "
        "`browser.allow_start_origin` is off.",
    ),
    Option(
        "browser.allow_start_origin",
        Bool(),
        True,
        "Allow every URL on the start URL's origin without a rule.",
    ),
    Option(
        "browser.new_window_policy",
        Choice(
            {
                "same_window": "links that open a new window open in the exam window",
                "block": "links that open a new window are refused",
            }
        ),
        "same_window",
        "What `window.open` and `target=_blank` links do.",
    ),
    Option(
        "browser.webrtc",
        Bool(),
        False,
        "Allow WebRTC peer connections (calls in the exam page). They can only go through a "
        "TURN server over TCP on a host the URL rules allow (never UDP, never direct), and "
        "each one is journalled. Off: none at all.",
    ),
    Option("browser.allow_reload", Bool(), True, "Allow reloading the exam page."),
    Option(
        "browser.allow_drop",
        Bool(),
        False,
        "Accept text and files dragged from other programs into the exam (each drop is "
        "journalled). Off: such drops are refused and journalled; drags inside the exam "
        "page still work.",
    ),
    Option(
        "browser.allow_downloads",
        Bool(),
        False,
        "Allow downloads, into a folder of the session only.",
    ),
    Option("browser.zoom", Float(0.25, 5.0), 1.0, "Initial page zoom factor."),
    Option(
        "browser.user_agent_suffix",
        Str(max_length=200),
        "",
        "Text appended to the user agent after `Lockdown/<version>`.",
    ),
    Option(
        "browser.send_browser_exam_key",
        Bool(),
        False,
        "Send the Safe Exam Browser `X-SafeExamBrowser-ConfigKeyHash` and "
        "`X-SafeExamBrowser-RequestHash` headers.",
    ),
    Option(
        "browser.exam_key_salt",
        Str(r"[0-9a-fA-F]*", "hexadecimal digits"),
        "",
        "Salt of the Browser Exam Key (hex), as in Safe Exam Browser's `examKeySalt`.",
    ),
    Option("browser.permission.camera", PERMISSION, "deny", "Page access to the camera."),
    Option("browser.permission.microphone", PERMISSION, "deny", "Page access to the microphone."),
    Option("browser.permission.screen_share", PERMISSION, "deny", "Page screen sharing."),
    Option("browser.permission.notifications", PERMISSION, "deny", "Page notifications."),
    Option("browser.permission.geolocation", PERMISSION, "deny", "Page access to location."),
    Option("browser.permission.clipboard_read", PERMISSION, "deny", "Page reading the clipboard."),
    # -- kiosk ----------------------------------------------------------------------
    Option("kiosk.exam_duration", Duration(), 0.0, "Exam time shown counting down; 0 hides it."),
    Option("kiosk.toolbar.clock", Bool(), True, "Show a clock in the toolbar."),
    Option("kiosk.toolbar.time_remaining", Bool(), True, "Show the exam time remaining."),
    Option("kiosk.toolbar.battery", Bool(), True, "Show the battery state."),
    Option("kiosk.toolbar.network", Bool(), True, "Show the network state."),
    Option("kiosk.toolbar.reload", Bool(), True, "Show a reload button (when reload is allowed)."),
    Option("kiosk.toolbar.zoom", Bool(), True, "Show zoom in, zoom out and reset buttons."),
    Option("kiosk.toolbar.quit", Bool(), True, "Show a quit button (when quitting is allowed)."),
    Option("kiosk.cover_other_screens", Bool(), True, "Cover every screen but the primary one."),
    # -- quit -----------------------------------------------------------------------
    Option(
        "quit.allow",
        Bool(),
        True,
        "Let the candidate quit (with the quit password when one is set); "
        "off leaves only the quit URL and the proctor's end.",
    ),
    Option("quit.url", Url(), "", "Loading this URL ends the exam."),
    Option(
        "quit.password_hash",
        Str(r"[0-9a-fA-F]{64}", "64 hexadecimal digits (a SHA-256)"),
        "",
        "Lower-case hex SHA-256 of the UTF-8 quit password (Safe Exam Browser compatible); "
        "empty for no password.",
    ),
    # -- guards ---------------------------------------------------------------------
    Option(
        "guards.clipboard",
        Choice(
            {
                "allow": "the system clipboard works as usual",
                "block": "no copy and paste at all",
                "isolated": "copy and paste work inside the exam only",
            }
        ),
        "isolated",
        "Clipboard policy.",
    ),
    Option("guards.screenshots", Bool(), True, "Block screenshots of the exam."),
    Option("guards.keyboard_lock", Bool(), True, "Hold the keyboard: no app switching."),
    Option(
        "guards.keyboard_allow",
        List(Str(max_length=100)),
        (),
        'Key combinations kept for assistive technology while the keyboard is held, e.g. "Insert".',
    ),
    Option("guards.focus", Bool(), True, "Bring the exam back when it loses focus."),
    Option(
        "guards.shared_display",
        Bool(),
        True,
        "On a shared X display, undo what hides, moves or covers the exam window (desktop "
        "switch, unmap, minimise, resize, a window above it) and check the keyboard and "
        "pointer grabs.",
    ),
    Option(
        "guards.force_grab",
        Choice(
            {
                "unmap": "unmap the windows of the program that holds the grab",
                "disconnect": "disconnect the program that holds the grab from the display",
                "off": "only journal who holds the grab",
            }
        ),
        "unmap",
        "What happens when another program holds the keyboard or pointer grab on a shared X "
        "display. The window manager and the desktop shell are never touched.",
    ),
    Option(
        "guards.wayland",
        Choice(
            {
                "warn": "journal which guards cannot work and tell the candidate; the exam goes on",
                "refuse": "require a display of Lockdown's own: the exam does not start on a "
                "shared Wayland desktop",
            }
        ),
        "warn",
        "What happens on a shared Wayland desktop, where the exam runs under XWayland "
        "(recognised by the X server's own XWAYLAND extension): compositor shortcuts, native "
        "Wayland windows, capture and injected input are out of the guards' reach.",
    ),
    Option(
        "guards.prohibited_apps",
        Choice(
            {
                "allow": "do not look for prohibited apps",
                "ask": "ask the candidate to close them; journal one started later",
                "close": "offer to close them; terminate one started later",
            }
        ),
        "close",
        "What to do about prohibited applications (see lockdown/resources/prohibited_apps.toml).",
    ),
    Option(
        "guards.prohibited_apps_extra",
        List(Str(max_length=200)),
        (),
        "More executable names to treat as prohibited.",
    ),
    Option(
        "guards.permitted_apps",
        List(Str(max_length=200)),
        (),
        "Executable names taken off the prohibited list for this exam.",
    ),
    Option(
        "guards.display_isolation",
        Choice(
            {
                "required": "the exam runs only on a display server of its own (Linux); "
                "where none can start, it does not start",
                "preferred": "a display server of its own where one can start, else the "
                "shared display, journalled as the weaker mode",
                "off": "always the candidate's shared display",
            }
        ),
        "preferred",
        "Run the exam on an X server that only Lockdown can reach (Linux).",
    ),
    Option("guards.max_displays", Int(1, 16), 1, "How many screens may be attached."),
    Option("guards.virtual_machine", POLICY, "deny", "Running inside a virtual machine."),
    Option("guards.remote_session", POLICY, "deny", "Running in a remote session."),
    Option(
        "guards.unavailable",
        Choice(
            {
                "refuse": "a guard that cannot start stops the exam from starting",
                "continue": "the exam starts and the gap is journalled",
            }
        ),
        "refuse",
        "What happens when a guard cannot start on this machine.",
    ),
    # -- proctoring -----------------------------------------------------------------
    Option("proctoring.camera", Bool(), False, "Record the camera."),
    Option("proctoring.microphone", Bool(), False, "Record the microphone (audio proctoring)."),
    Option("proctoring.screen", Bool(), False, "Record the screen (screen capture)."),
    Option(
        "proctoring.camera_source",
        Str(max_length=1024),
        "0",
        'Camera: a device index ("0"), a device name, a video file path, or "pattern" for '
        "a generated test pattern.",
    ),
    Option("proctoring.camera_width", Int(160, 3840), 640, "Camera frame width."),
    Option("proctoring.camera_height", Int(120, 2160), 480, "Camera frame height."),
    Option("proctoring.camera_fps", Float(1.0, 60.0), 15.0, "Camera frames per second."),
    Option(
        "proctoring.microphone_device",
        Str(max_length=200),
        "",
        "Microphone name (as listed by `lockdown environment`); empty for the default input.",
    ),
    Option("proctoring.audio_rate", Int(8000, 48000), 16000, "Audio sample rate in Hz."),
    Option("proctoring.screen_fps", Float(0.1, 30.0), 1.0, "Screen frames per second."),
    Option(
        "proctoring.screen_activity_fps",
        Float(0.0, 30.0),
        2.0,
        "Screen frames per second at most while the screen changes (0: only screen_fps).",
    ),
    Option(
        "proctoring.camera_max_kbps",
        Int(0, 20000),
        96,
        "Bitrate cap of the camera video in kbit/s (0: quality only, no cap).",
    ),
    Option(
        "proctoring.screen_max_width", Int(320, 7680), 1280, "Screen frames scaled to this width."
    ),
    Option(
        "proctoring.screen_area",
        Choice({"primary": "the primary screen", "all": "all screens side by side"}),
        "primary",
        "Which screens to record.",
    ),
    Option(
        "proctoring.segment_length", Duration(2.0, 600.0), 30.0, "Length of each recorded segment."
    ),
    Option(
        "proctoring.recipient_key",
        Str(r"(x25519:[A-Za-z0-9+/]{43}=)?", "an x25519:<base64> public key"),
        "",
        "Who can open the recordings: the public key (from `lockdown keys generate "
        "--recipient`) the session keys are wrapped for. A proctored exam without one does "
        "not start. Organisation file only.",
        exam=False,
    ),
    Option(
        "proctoring.spool_max_mb",
        Int(50, 1_000_000),
        4096,
        "Size cap of the local recording spool in MiB.",
        exam=False,
    ),
    # -- checks ---------------------------------------------------------------------
    Option(
        "checks.time_limit",
        Duration(1.0, 600.0),
        30.0,
        "How long each step of the system check may take; a step past it fails.",
    ),
    Option(
        "checks.clock_warn",
        Duration(0.5, 3600.0),
        2.0,
        "Clock offset from the proctoring service's time above which the check warns.",
    ),
    Option(
        "checks.clock_fail",
        Duration(1.0, 86400.0),
        120.0,
        "Clock offset from the proctoring service's time above which the check fails.",
    ),
    Option(
        "checks.min_free_disk_mb",
        Int(100, 1_000_000),
        1024,
        "Free disk (MiB) the check asks for at least, whatever the exam records.",
    ),
    Option(
        "checks.disk_margin",
        Float(1.0, 10.0),
        1.5,
        "Free disk asked for: this many times the exam's length times the recording rate "
        "(never under `checks.min_free_disk_mb`).",
    ),
    Option(
        "checks.exam_hours",
        Float(0.25, 24.0),
        3.0,
        "Exam length (hours) the free-disk check assumes when `kiosk.exam_duration` is 0.",
    ),
    Option(
        "checks.upload_test_kb",
        Int(16, 4096),
        1024,
        "Size of the upload test sent to the proctoring service, in KiB.",
    ),
    Option(
        "checks.before_exam",
        Bool(),
        True,
        "Show the system check screen before a proctored exam starts; the exam starts only "
        "when every blocking step passes and the candidate presses Continue.",
    ),
    Option(
        "checks.bandwidth_margin",
        Float(1.0, 10.0),
        2.0,
        "Upload rate, in multiples of the recording rate, below which the check warns that "
        "uploads may lag (below 1x: recordings finish uploading after the exam). A warning "
        "only: the candidate may go on.",
    ),
    # -- session --------------------------------------------------------------------
    Option(
        "session.start_target",
        Str(max_length=4096),
        "",
        "What the exam session of the login screen (`lockdown session`) opens: an exam "
        "link or the path of an exam configuration file. Empty: the candidate is asked for "
        "the link. Organisation file only.",
        exam=False,
    ),
    # -- service --------------------------------------------------------------------
    Option(
        "service.url",
        Url(),
        "",
        "Proctoring service endpoint (https; http only on loopback).",
    ),
    Option(
        "service.token_key",
        Str(r"(ed25519:[A-Za-z0-9+/]{43}=)?", "an ed25519:<base64> public key"),
        "",
        "The proctoring service's public key that signs its tokens (launch, session, upload, "
        "probe); written by `lockdown-server exam create`.",
    ),
    Option(
        "service.recipient_key",
        Str(r"(x25519:[A-Za-z0-9+/]{43}=)?", "an x25519:<base64> public key"),
        "",
        "The proctoring service's recipient key: the session's data and MAC keys are also "
        "wrapped for it, so the service can decrypt the recordings and verify their chains; "
        "written by `lockdown-server exam create`.",
    ),
    Option(
        "service.probe_token",
        Str(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", "a service token", max_length=4096),
        "",
        "The exam's probe token: it lets the system check make a test upload to the service "
        "before the candidate has a session; written by `lockdown-server exam create`.",
    ),
    Option(
        "service.launch_token",
        Str(r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", "a service token", max_length=4096),
        "",
        "The candidate's launch token, exchanged for a session token at the start; present "
        "in the configuration the service hands out for one candidate's launch link.",
    ),
)
