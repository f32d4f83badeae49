"""What ``lockdown open TARGET`` opens, and the single running session.

TARGET is one of (the link grammar, documented in ``docs/trust-boundary.md``):

- a file path: a Lockdown exam configuration (TOML, signed) or a Safe Exam Browser
  ``.seb`` file (``.seb`` by name or content);
- ``lockdowns://HOST/PATH[?query]``: a signed Lockdown configuration over https;
- ``lockdown://HOST/PATH[?query]``: the same over plain http, for this computer's
  loopback addresses only (and hosts the organisation lists in
  ``config.plain_http_hosts``, journalled);
- ``sebs://…`` / ``seb://…``: a ``.seb`` file over https / http, as Safe Exam Browser does;
- ``https://…`` (or ``http://`` on this computer only): a configuration to download, a
  ``.seb`` when the path ends in ``.seb``.

A downloaded body must be the kind its link promises: no content sniffing across kinds.
Downloads trust nothing from the environment (no proxy, CA bundle or ``.netrc`` of the
candidate's): proxy and extra certificate authorities come from the organisation file
only. No redirect from https to http is followed, and the size limit is a file's.

Only one session runs at a time: the running one listens on a local socket
(:class:`InstanceServer`); a second ``lockdown`` hands its target over
(:func:`hand_over`), the running one refuses it and tells its candidate, and the second
exits with one line.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from lockdown import log
from lockdown.config import examfile
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import ConfigError, Organisation, layer
from lockdown.errors import UserError
from lockdown.ui.urlfilter import strip_fragment

if TYPE_CHECKING:
    import requests

MAX_DOWNLOAD: Final = examfile.MAX_CONFIG_BYTES
FETCH_TIMEOUT_S: Final = 15.0
MAX_REDIRECTS: Final = 5
ConfigKind = Literal["lockdown", "seb"]
#: link scheme -> (transport scheme, the kind of configuration it promises)
LINK_SCHEMES: Final[Mapping[str, tuple[str, ConfigKind]]] = {
    "lockdowns": ("https", "lockdown"),
    "lockdown": ("http", "lockdown"),
    "sebs": ("https", "seb"),
    "seb": ("http", "seb"),
}
LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})

PasswordPrompt = Callable[[int], str | None]


class LaunchError(UserError):
    """The target cannot be opened (missing file, unreachable link, not a configuration)."""


@dataclass(frozen=True)
class Target:
    """A resolved target: a local file or a URL to download, and the kind it promises.

    ``kind`` is None for a local file (told apart by name and content);
    ``plain_http_host`` names a host of the organisation's list that a ``lockdown://``
    link reaches over plain http (journalled).
    """

    source: Literal["file", "url"]
    location: str
    kind: ConfigKind | None
    plain_http_host: str | None = None


def _is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1); never a name that resolves."""
    name = (host or "").lower().strip("[]")
    if name in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def shown(text: str, limit: int = 200) -> str:
    """``text`` for a one-line message: secrets redacted, control characters escaped, cut."""
    text = log.redact(text)
    cut = text[:limit] + ("…" if len(text) > limit else "")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in cut)


def resolve(target: str, organisation: Organisation | None = None) -> Target:
    """Turn what the candidate (or a link) gave into a file path or a download URL.

    Raises:
        LaunchError: a scheme Lockdown does not open, a link without a host or with a
            malformed one, or a ``lockdown://`` link to a host that is neither this
            computer nor listed.
    """
    try:
        return _resolve(target, organisation if organisation is not None else Organisation())
    except ValueError as exc:  # urllib's own refusals: a bad IPv6 address or port
        raise LaunchError(f"{shown(target)}: not a valid link ({exc}); check the link") from None


def _resolve(target: str, org: Organisation) -> Target:
    scheme = target.split(":", 1)[0].lower() if "://" in target else ""
    if scheme in LINK_SCHEMES:
        parts = urlsplit(target)
        if not parts.hostname:
            raise LaunchError(f"{shown(target)}: the link names no server; ask for a new exam link")
        transport, kind = LINK_SCHEMES[scheme]
        url = urlunsplit((transport, parts.netloc, parts.path, parts.query, ""))
        plain = None
        if scheme == "lockdown" and not _is_loopback(parts.hostname):
            listed = {h.lower() for h in org.values.get("config.plain_http_hosts", ())}
            if parts.hostname.lower() not in listed:
                raise LaunchError(
                    f"{shown(target)}: lockdown:// links download over plain http and are for this "
                    "computer only; ask your exam organiser for a lockdowns:// link"
                )
            plain = parts.hostname.lower()
        return Target("url", url, kind, plain)
    if scheme == "https" or (scheme == "http" and _is_loopback(urlsplit(target).hostname)):
        url = strip_fragment(target)
        promised: ConfigKind = "seb" if urlsplit(url).path.lower().endswith(".seb") else "lockdown"
        return Target("url", url, promised)
    if scheme:
        raise LaunchError(
            f"{shown(target)}: cannot open {shown(scheme, 20)}:// links; give a file, an https:// URL or a "
            "lockdowns:// or sebs:// link"
        )
    return Target("file", target, "seb" if target.lower().endswith(".seb") else None)


def _session(organisation: Organisation) -> requests.Session:
    """A requests session that trusts nothing from the environment."""
    from lockdown.session.http import trusted_session

    return trusted_session(organisation.values)


def _redirect_target(url: str, location: str) -> str:
    """The next URL of a redirect, refused when it would leave https or this computer."""
    following = strip_fragment(urljoin(url, location))
    old, new = urlsplit(url), urlsplit(following)
    if new.scheme == "https":
        return following
    if new.scheme == "http" and old.scheme == "http" and _is_loopback(new.hostname):
        return following
    if new.scheme == "http" and old.scheme == "http" and new.hostname == old.hostname:
        return following  # a listed plain-http host redirecting within itself
    raise LaunchError(
        f"{shown(url)}: the server redirected to {shown(following)}, which is not https; refused — "
        "ask your exam organiser for a working https link"
    )


def fetch(url: str, organisation: Organisation | None = None) -> bytes:
    """Download a configuration; every failure is one line that says what to do."""
    import requests  # only when a configuration is downloaded (~80 ms to import)

    session = _session(organisation if organisation is not None else Organisation())
    current = url
    with session:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                response = session.get(
                    current, timeout=FETCH_TIMEOUT_S, stream=True, allow_redirects=False
                )
            except requests.RequestException as exc:
                reason = type(exc).__name__.replace("Error", " error").strip()
                raise LaunchError(
                    f"{shown(current)}: cannot download the exam configuration ({reason}); check "
                    "the internet connection and the link"
                ) from None
            with response:
                if response.is_redirect:
                    current = _redirect_target(current, response.headers.get("location", ""))
                    log.config.info("Following a redirect to %s", log.redact(current))
                    continue
                if response.status_code != 200:
                    raise LaunchError(
                        f"{shown(current)}: the server answered {response.status_code} "
                        f"{response.reason}; the exam link is wrong or expired, ask for a new one"
                    )
                data = b""
                for chunk in response.iter_content(64 * 1024):
                    data += chunk
                    if len(data) > MAX_DOWNLOAD:
                        raise LaunchError(
                            f"{shown(current)}: larger than an exam configuration; check the link"
                        )
                return data
    raise LaunchError(f"{shown(url)}: more than {MAX_REDIRECTS} redirects; check the link")


def _wrong_kind(origin: str, promised: ConfigKind) -> ConfigError:
    if promised == "lockdown":
        return ConfigError(
            f"{origin}: the link promised a Lockdown exam configuration but the server sent "
            "a Safe Exam Browser file; refused — ask your exam organiser for a correct link"
        )
    return ConfigError(
        f"{origin}: the link promised a Safe Exam Browser file but the server sent something "
        "else; refused — ask your exam organiser for a correct link"
    )


def load_exam(
    target: str, organisation: Organisation, *, password: PasswordPrompt, mode: str = "shared"
) -> LoadedExam:
    """Read, verify and layer the exam configuration named by ``target``."""
    from lockdown.config import examkeys, seb

    resolved = resolve(target, organisation)
    notes: list[tuple[str, dict[str, Any]]] = []
    if resolved.source == "url":
        log.config.info("Downloading the exam configuration from %s", log.redact(resolved.location))
        if resolved.plain_http_host:
            notes.append(("config.plain_http", {"host": resolved.plain_http_host}))
        data = fetch(resolved.location, organisation)
    else:
        data = examfile.read_file(Path(resolved.location))
    origin = log.redact(resolved.location)
    looks_seb = seb.looks_like_seb(data)
    if resolved.source == "url" and resolved.kind is not None:
        is_seb = resolved.kind == "seb"
        if looks_seb != is_seb:
            raise _wrong_kind(origin, resolved.kind)
    else:
        is_seb = looks_seb or resolved.kind == "seb"
    if is_seb:
        seb.check_allowed(organisation, origin=origin)
        cfg = seb.load_seb(data, origin=origin, password=password)
        settings = layer(organisation, cfg.values)
        keys = examkeys.keys_for_seb(cfg, settings, mode)
        return LoadedExam(settings, keys, origin, "", "seb", organisation, tuple(notes))
    config = examfile.load_bytes(data, organisation, origin=origin)
    settings = layer(organisation, config.values)
    keys = examkeys.keys_for_values(config.values, settings, mode)
    return LoadedExam(
        settings, keys, origin, config.meta.title, "lockdown", organisation, tuple(notes)
    )


def check_startable(settings: Mapping[str, Any], origin: str) -> None:
    if not settings["browser.start_url"]:
        raise ConfigError(f"{origin}: browser.start_url is not set; the exam has no start page")


# -- single instance -----------------------------------------------------------------------


def instance_name() -> str:
    """The local socket name of this user's running session."""
    from lockdown import build

    override = os.environ.get("LOCKDOWN_INSTANCE_NAME")
    if override and not build.current().installed:
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
