"""Category loggers, JSON logging for machines and a filter that keeps secrets out of logs."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime
from typing import Final

#: The categories every module logs under (``lockdown.<category>``).
CATEGORIES: Final = ("init", "web", "guards", "capture", "upload", "session", "checks", "config")

init = logging.getLogger("lockdown.init")
web = logging.getLogger("lockdown.web")
guards = logging.getLogger("lockdown.guards")
capture = logging.getLogger("lockdown.capture")
upload = logging.getLogger("lockdown.upload")
session = logging.getLogger("lockdown.session")
checks = logging.getLogger("lockdown.checks")
config = logging.getLogger("lockdown.config")

REDACTED: Final = "<redacted>"

_SECRET_PATTERNS: Final = (
    # key=value / key: value pairs whose key names a secret
    re.compile(
        r"(?i)\b((?:access_|refresh_|session_|auth_|api_|bearer_)?(?:token|password|passwd|pwd|"
        r"secret|api_key|apikey|private_key|session_key|signing_key|authorization)"
        r"[\"']?\s*[:=]\s*[\"']?)((?:bearer\s+|basic\s+)?[^\s\"',;&}]+)"
    ),
    re.compile(r"(?i)\b(bearer\s+)([A-Za-z0-9._~+/=-]{8,})"),
    re.compile(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----)"),
)

_registered: set[str] = set()
_registered_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Never log ``value`` (a session token, a password typed by a candidate, a key)."""
    if len(value) >= 4:
        with _registered_lock:
            _registered.add(value)


def redact(text: str) -> str:
    """Return ``text`` with every known secret and secret-looking value replaced."""
    for pattern in _SECRET_PATTERNS:
        if pattern.groups == 2 and "PRIVATE KEY" in pattern.pattern:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(2)}", text)
        else:
            text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    with _registered_lock:
        secrets = sorted(_registered, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class SecretFilter(logging.Filter):
    """Rewrites each record's message so no secret reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        if record.exc_info and record.exc_text is None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: created, levelname, name, module, funcName, lineno, message."""

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, object] = {
            "created": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "levelname": record.levelname,
            "name": record.name,
            "module": record.module,
            "funcName": record.funcName,
            "lineno": record.lineno,
            "message": record.getMessage(),
        }
        if record.exc_info:
            obj["traceback"] = record.exc_text or redact(self.formatException(record.exc_info))
        return json.dumps(obj, ensure_ascii=False)


#: The start-up phases :func:`phase` announces, in the order they usually end.
PHASES: Final = (
    "imports",
    "configuration",
    "window",
    "journal",
    "engine start",
    "pre-checks",
    "guards",
    "page load",
    "exam page shown",
)


def phase(name: str) -> None:
    """Announce that start-up phase ``name`` is done (``bench/bench_kiosk.py`` reads it)."""
    init.info("Start-up phase %s done", name)


_HUMAN_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)-17s %(message)s"


def setup(*, json_logging: bool = False, level: int = logging.INFO) -> logging.Handler:
    """Install one stderr handler on the ``lockdown`` logger tree and return it."""
    root = logging.getLogger("lockdown")
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_logging else logging.Formatter(_HUMAN_FORMAT))
    handler.addFilter(SecretFilter())
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler
