"""The smoke tests' stderr oracle: listed noise passes, anything else is reported."""

from __future__ import annotations

import json

from tests.support import smoke


def _record(level: str, message: str) -> str:
    return json.dumps(
        {"created": "t", "levelname": level, "name": "lockdown.init", "message": message}
    )


def test_quiet_records_and_listed_lines_pass() -> None:
    stderr = "\n".join(
        [
            _record("INFO", "Starting kiosk…"),
            _record("WARNING", "virtual_machine detected; policy warn: the exam goes on"),
            "Sandboxing disabled by user.",
            "GLX: No DRI3 Extension.",
            "[1:2:1201/110251.452454:ERROR:../../../qtwebengine/src/3rdparty/chromium/dbus/"
            "bus.cc:408] Failed to connect to the bus: Failed to connect to socket",
            "",
        ]
    )
    assert smoke.unexpected_stderr(stderr) == []


def test_tracebacks_qt_warnings_and_unlisted_warnings_are_reported() -> None:
    lines = [
        "Traceback (most recent call last):",
        "QXcbIntegration: Cannot create platform OpenGL context, neither GLX nor EGL are enabled",
        'qt.qpa.plugin: Could not load the Qt platform plugin "xcb"',
        _record("WARNING", "Displays guard: a second screen appeared"),
        _record("ERROR", "virtual_machine detected; policy warn: but logged as an error"),
    ]
    assert smoke.unexpected_stderr("\n".join(lines)) == lines
