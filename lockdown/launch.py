"""What ``lockdown open TARGET`` opens, and the single running session.

TARGET is one of:

- a file path: a Lockdown exam configuration (TOML, signed) or a Safe Exam Browser
  ``.seb`` file (told apart by content);
- ``https://…`` (or ``http://`` on this computer only): a configuration to download;
- ``lockdown://host/path`` / ``lockdowns://host/path``: the same over http / https (the
  links exam platforms put on their pages);
- ``seb://host/path`` / ``sebs://host/path``: a ``.seb`` file over http / https.

Only one session runs at a time: the running one listens on a local socket
(:class:`InstanceServer`); a second ``lockdown`` hands its target over
(:func:`hand_over`), the running one refuses it and tells its candidate, and the second
exits with one line.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from lockdown import log
from lockdown.config import examfile
from lockdown.config.settings import ConfigError, Organisation, Settings, layer
from lockdown.errors import UserError
from lockdown.ui.urlfilter import strip_fragment

MAX_DOWNLOAD: Final = examfile.MAX_CONFIG_BYTES
FETCH_TIMEOUT_S: Final = 15.0
_LINK_SCHEMES: Final = {
    "lockdown": "http",
    "lockdowns": "https",
    "seb": "http",
    "sebs": "https",
}
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})

PasswordPrompt = Callable[[int], str | None]


class LaunchError(UserError):
    """The target cannot be opened (missing file, unreachable link, not a configuration)."""


@dataclass(frozen=True)
class Target:
    """A resolved target: a local file or a URL to download, and whether it is a .seb."""

    kind: str  # "file" or "url"
    location: str
    seb_hint: bool


def resolve(target: str) -> Target:
    """Turn what the candidate (or a link) gave into a file path or a download URL."""
    scheme = target.split(":", 1)[0].lower() if "://" in target else ""
    if scheme in _LINK_SCHEMES:
        parts = urlsplit(target)
        if not parts.hostname:
            raise LaunchError(f"{target}: the link names no server; ask for a new exam link")
        url = urlunsplit((_LINK_SCHEMES[scheme], parts.netloc, parts.path, parts.query, ""))
        return Target("url", url, seb_hint=scheme.startswith("seb"))
    if scheme == "https" or (scheme == "http" and urlsplit(target).hostname in _LOOPBACK):
        return Target("url", strip_fragment(target), seb_hint=target.lower().endswith(".seb"))
    if scheme:
        raise LaunchError(
            f"{target}: cannot open {scheme}:// links; give a file, an https:// URL or a "
            "lockdown:// or seb:// link"
        )
    return Target("file", target, seb_hint=target.lower().endswith(".seb"))


def fetch(url: str) -> bytes:
    """Download a configuration; every failure is one line that says what to do."""
    import requests  # only when a configuration is downloaded (~80 ms to import)

    try:
        response = requests.get(url, timeout=FETCH_TIMEOUT_S, stream=True, allow_redirects=True)
    except requests.RequestException as exc:
        reason = type(exc).__name__.replace("Error", " error").strip()
        raise LaunchError(
            f"{url}: cannot download the exam configuration ({reason}); check the internet "
            "connection and the link"
        ) from None
    with response:
        if response.status_code != 200:
            raise LaunchError(
                f"{url}: the server answered {response.status_code} {response.reason}; "
                "the exam link is wrong or expired, ask for a new one"
            )
        data = b""
        for chunk in response.iter_content(64 * 1024):
            data += chunk
            if len(data) > MAX_DOWNLOAD:
                raise LaunchError(f"{url}: larger than an exam configuration; check the link")
    return data


@dataclass(frozen=True)
class LoadedExam:
    """A verified exam: frozen settings, exam keys, where it came from, its title."""

    settings: Settings
    keys: Any
    origin: str
    title: str
    kind: str  # "lockdown" or "seb"


def _seb_module() -> Any:
    try:
        from lockdown.config import seb
    except ImportError:  # pragma: no cover - seb import lands with the config package
        return None
    return seb


def _examkeys() -> Any:
    try:
        from lockdown.config import examkeys
    except ImportError:  # pragma: no cover
        return None
    return examkeys


def load_exam(target: str, organisation: Organisation, *, password: PasswordPrompt) -> LoadedExam:
    """Read, verify and layer the exam configuration named by ``target``."""
    resolved = resolve(target)
    if resolved.kind == "url":
        log.config.info("Downloading the exam configuration from %s", resolved.location)
        data = fetch(resolved.location)
    else:
        data = examfile.read_file(Path(resolved.location))
    origin = resolved.location
    seb = _seb_module()
    is_seb = seb is not None and (seb.looks_like_seb(data) or resolved.seb_hint)
    keys_module = _examkeys()
    if is_seb:
        seb.check_allowed(organisation, origin=origin)
        cfg = seb.load_seb(data, origin=origin, password=password)
        settings = layer(organisation, cfg.values)
        keys = keys_module.keys_for_seb(cfg) if keys_module is not None else None
        return LoadedExam(settings, keys, origin, "", "seb")
    if resolved.seb_hint:
        raise ConfigError(f"{origin}: Safe Exam Browser files cannot be opened by this build")
    config = examfile.load_bytes(data, organisation, origin=origin)
    settings = layer(organisation, config.values)
    keys = (
        keys_module.keys_for_values(config.values, settings["browser.exam_key_salt"])
        if keys_module is not None
        else None
    )
    return LoadedExam(settings, keys, origin, config.meta.title, "lockdown")


def check_startable(settings: Mapping[str, Any], origin: str) -> None:
    if not settings["browser.start_url"]:
        raise ConfigError(f"{origin}: browser.start_url is not set; the exam has no start page")


# -- single instance -----------------------------------------------------------------------


def instance_name() -> str:
    """The local socket name of this user's running session."""
    override = os.environ.get("LOCKDOWN_INSTANCE_NAME")
    if override:
        return override
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid()) if hasattr(os, "getuid") else "user"
    return f"lockdown-session-{user}"


def hand_over(target: str, name: str | None = None, timeout_ms: int = 3000) -> str | None:
    """Give ``target`` to a running session; its answer, or None when none runs."""
    socket = QLocalSocket()
    socket.connectToServer(name or instance_name())
    if not socket.waitForConnected(500):
        return None
    socket.write(target.encode("utf-8")[:4096] + b"\n")
    socket.flush()
    socket.waitForBytesWritten(timeout_ms)
    answer = b""
    if socket.waitForReadyRead(timeout_ms):
        answer = bytes(socket.readAll().data())
    socket.disconnectFromServer()
    return answer.decode("utf-8", "replace").strip() or "refused"


class InstanceServer(QObject):
    """Listens for a second ``lockdown`` and refuses what it hands over."""

    #: a second instance tried to open this target (the target text)
    refused = Signal(str)

    def __init__(self, name: str | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name or instance_name()
        self._server = QLocalServer(self)
        self._server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self._server.newConnection.connect(self._connection)

    def listen(self) -> bool:
        if self._server.listen(self.name):
            return True
        # a stale socket left by a crash (hand_over found nobody answering)
        QLocalServer.removeServer(self.name)
        ok = self._server.listen(self.name)
        if not ok:
            log.init.warning("Single-instance socket %s: %s", self.name, self._server.errorString())
        return ok

    def close(self) -> None:
        self._server.close()

    def _connection(self) -> None:
        while (socket := self._server.nextPendingConnection()) is not None:
            socket.readyRead.connect(lambda s=socket: self._read(s))

    def _read(self, socket: QLocalSocket) -> None:
        data = bytes(socket.readAll().data())
        if not data.endswith(b"\n"):
            return
        target = data.decode("utf-8", "replace").strip()
        socket.write(b"refused: one session at a time\n")
        socket.flush()
        socket.disconnectFromServer()
        log.init.warning("A second instance asked to open %s; refused", target)
        self.refused.emit(target)
