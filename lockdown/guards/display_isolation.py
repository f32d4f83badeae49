"""The exam on a display of its own: choose the mode, journal it, watch who connects.

Three parts, in the order a session uses them:

- :func:`choose_display` — before Qt exists (Qt connects to one display for good): with
  ``guards.display_isolation`` ``off`` the shared display; else the display helper starts
  the exam's own X server (:mod:`lockdown.platform.exam_display`) and ``DISPLAY`` /
  ``XAUTHORITY`` point this process at it. When it cannot, ``preferred`` falls back to
  the shared display with one line saying why, ``required`` refuses the exam
  (:class:`IsolationRequired`). A nested server (Xephyr) would be a window on the shared
  display: it counts as shared and is never used.
- :class:`DisplayIsolationOperation` — the first operation of the sequence: journals
  ``display.isolated`` (server, display, terminal) or ``display.shared`` (the reason) and,
  isolated, runs the :class:`ClientWatch` until the sequence reverts.
- :class:`ClientWatch` — lists the display's clients with the X Resource extension every
  second and whenever a window is created; a client that is not ours (this process, its
  descendants, the server) and not an allowed assistive-technology client is journalled
  as ``display.intruder`` with its pid and executable and disconnected (``XKillClient``;
  a client that owns no resource to name it by is ended by its pid).
- :func:`session_display` — ``lockdown session`` (a session a display manager started
  for the exam, nothing else in it): the display given must have no client but ours at
  start, else the session is refused (:class:`SessionDisplayNotEmpty`); it then counts as
  isolated and the same :class:`ClientWatch` keeps it that way.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from lockdown import build, log
from lockdown.errors import UserError
from lockdown.events import Event, EventSink
from lockdown.lifecycle.base import Outcome
from lockdown.platform import exam_display
from lockdown.platform.exam_display import ExamDisplay, ExamDisplayUnavailable
from lockdown.platform.xres import (
    KillOutcome,
    NewWindows,
    XClient,
    XResClients,
    XResUnavailable,
    proc_exists,
)
from lockdown.texts import text

POLICIES: Final = ("required", "preferred", "off")
WATCH_INTERVAL_S: Final = 1.0
#: How long a client whose process has ended (or has no pid) may stay before it counts,
#: and how long a client whose process was ended is given to go: the server lists a
#: connection for a moment after its process exits.
LEAVING_GRACE_S: Final = 1.0
#: Assistive-technology clients allowed on the exam display when the organisation's
#: ``accessibility.assistive_technology`` is on: the executable's (or, for a script, the
#: script's) file name, and only from a root-owned file under /usr.
ASSISTIVE_CLIENTS: Final = frozenset(
    {
        "at-spi-bus-launcher",
        "at-spi2-registryd",
        "orca",
        "onboard",
        "xbrlapi",
        "brltty",
        "espeakup",
    }
)


class IsolationRequired(UserError):
    """The exam requires a display of its own and this machine cannot give it one."""

    exit_code = 1


class SessionDisplayNotEmpty(UserError):
    """``lockdown session`` was run on a display that has other clients (a desktop)."""


@dataclass
class SessionDisplay:
    """The display a display manager started for ``lockdown session``: ours alone."""

    display: str
    #: clients not ours found at start (kept only under the development switch)
    foreign_at_start: list[dict[str, Any]] = field(default_factory=list)
    #: never called: the display manager owns the server (its loss is Xlib's I/O error)
    on_server_exit: Callable[[int | None], None] | None = None

    def describe(self) -> dict[str, Any]:
        """What ``display.isolated`` says."""
        return {
            "kind": "session",
            "server": "display manager",
            "display": self.display,
            "foreign_at_start": self.foreign_at_start,
        }


def session_display(
    display_name: str,
    allowed: Allowed,
    *,
    environ: Mapping[str, str] | None = None,
) -> SessionDisplay:
    """Check that ``display_name`` has no client but ours (see the module).

    Raises:
        SessionDisplayNotEmpty: another client is there (unless the development switch
            ``LOCKDOWN_DEV_SESSION_CLIENTS=disconnect`` leaves them to the watch).
        XResUnavailable: the display cannot be reached or listed.
    """
    xres = XResClients(display_name)
    try:
        foreign = [c for c in xres.clients() if allowed.why(c) is None]
    finally:
        xres.close()
    found = [c.describe() for c in foreign]
    if not foreign:
        return SessionDisplay(display_name)
    if build.dev_switch("SESSION_CLIENTS", environ) == "disconnect":
        log.guards.warning(
            "Development switch: %d client(s) already on %s are left to the watch",
            len(foreign),
            display_name,
        )
        return SessionDisplay(display_name, found)
    programs = ", ".join(sorted({os.path.basename(c.executable) or "unknown" for c in foreign}))
    log.init.error("The session display %s has other clients: %s", display_name, found)
    raise SessionDisplayNotEmpty(text("xsession.not_empty", count=len(foreign), programs=programs))


@dataclass
class DisplayChoice:
    """The display this session runs on and why."""

    mode: str
    reason: str
    policy: str
    display: ExamDisplay | SessionDisplay | None = None

    def record(self) -> tuple[str, dict[str, Any]]:
        """The journal record that says which mode the exam runs in."""
        if self.display is not None:
            return "display.isolated", {**self.display.describe(), "policy": self.policy}
        return "display.shared", {"reason": self.reason, "policy": self.policy}


def choose_display(
    policy: str,
    *,
    environ: dict[str, str] | None = None,
    start: Callable[[exam_display.HelperCommand], ExamDisplay] = exam_display.start,
) -> DisplayChoice:
    """Start the exam's own display as ``policy`` asks, before Qt (see the module)."""
    env: Any = os.environ if environ is None else environ
    if policy == "off":
        return DisplayChoice(
            "shared", "display isolation is off (guards.display_isolation)", policy
        )
    command, why = exam_display.helper_command(environ=env)
    if command is not None:
        try:
            shown = start(command)
        except ExamDisplayUnavailable as exc:
            why = str(exc)
        else:
            env.update(shown.environ())
            # Qt must take the exam's X server, never a Wayland compositor beside it
            env.pop("WAYLAND_DISPLAY", None)
            env["QT_QPA_PLATFORM"] = "xcb"
            shown.watch()
            return DisplayChoice("isolated", "", policy, shown)
    if policy == "required":
        log.init.error("The exam requires a display of its own: %s", why)
        raise IsolationRequired(text("display.isolation_required", reason=why))
    log.init.warning("The exam runs on the shared display: %s", why)
    return DisplayChoice("shared", why, policy)


def check_exam(choice: DisplayChoice, settings: Mapping[str, Any]) -> None:
    """Refuse an exam whose configuration requires isolation the session does not have."""
    if choice.mode != "isolated" and settings.get("guards.display_isolation") == "required":
        raise IsolationRequired(text("display.isolation_required", reason=choice.reason))


# -- who may connect ------------------------------------------------------------------------


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[-1].split()[1])


def descends_from(pid: int, ancestor: int) -> bool:
    """True when ``pid`` is ``ancestor`` or one of its descendants."""
    for _ in range(64):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        pid = _parent(pid)
    return False


def _root_owned_system_file(path: str) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_uid == 0 and path.startswith("/usr/") and not st.st_mode & 0o022


def assistive_name(client: XClient) -> str | None:
    """The assistive-technology program ``client`` is, or None (see
    :data:`ASSISTIVE_CLIENTS`)."""
    if client.pid is None:
        return None
    candidates = [client.executable]
    try:
        argv = Path(f"/proc/{client.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    candidates += [a.decode(errors="replace") for a in argv[1:3] if a.startswith(b"/")]
    for path in candidates:
        name = os.path.basename(path)
        if name in ASSISTIVE_CLIENTS and _root_owned_system_file(path):
            return name
    return None


@dataclass(frozen=True)
class Allowed:
    """Who may stay on the exam display: our process tree, and the assistive clients."""

    our_pid: int
    assistive: bool

    def why(self, client: XClient) -> str | None:
        """Why ``client`` may stay ("ours", "assistive: orca"), None when it may not."""
        if client.self_ or client.base == 0:
            return "server" if client.base == 0 else "ours"
        if client.pid is not None and descends_from(client.pid, self.our_pid):
            return "ours"
        if self.assistive:
            name = assistive_name(client)
            if name is not None:
                return f"assistive: {name}"
        return None


class ClientWatch:
    """Lists the display's clients every second and on every new window (one thread)."""

    def __init__(
        self,
        display_name: str,
        allowed: Allowed,
        report: EventSink,
        *,
        interval: float = WATCH_INTERVAL_S,
    ) -> None:
        self.display_name = display_name
        self.allowed = allowed
        self.report = report
        self.interval = interval
        self._stop_r, self._stop_w = os.pipe()
        self._thread: threading.Thread | None = None
        self._seen: dict[_Key, float] = {}
        self._acted: dict[_Key, float] = {}
        self._started: dict[_Key, int | None] = {}
        self._reported: set[tuple[_Key, str]] = set()
        self.scans = 0

    def start(self) -> None:
        """Connect (two connections of its own) and start the thread; raises
        :class:`XResUnavailable` when the display cannot be watched."""
        xres = XResClients(self.display_name)
        try:
            events = NewWindows(self.display_name)
        except XResUnavailable:
            xres.close()
            raise
        self._thread = threading.Thread(
            target=self._run, args=(xres, events), name="display-client-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        os.write(self._stop_w, b"x")
        self._thread.join(5)
        self._thread = None
        os.close(self._stop_r)
        os.close(self._stop_w)

    def _run(self, xres: XResClients, events: NewWindows) -> None:
        try:
            self._scan(xres)
            while True:
                ready, _, _ = select.select([self._stop_r, events.fileno()], [], [], self.interval)
                if self._stop_r in ready:
                    return
                if events.fileno() in ready:
                    events.drain()
                self._scan(xres)
        except (XResUnavailable, OSError) as exc:
            log.guards.warning("Display client watch: the exam display is gone (%s)", exc)
        finally:
            xres.close()
            events.close()

    def _scan(self, xres: XResClients) -> None:
        self.scans += 1
        now = time.monotonic()
        present: set[_Key] = set()
        for client in xres.clients():
            # keyed by base and pid: the server hands a freed base to the next client
            key = (client.base, client.pid)
            present.add(key)
            if self.allowed.why(client) is not None:
                continue
            first = self._seen.setdefault(key, now)
            if client.pid and key not in self._started:
                self._started[key] = _start_time(client.pid)
            if not _alive(client.pid) and now - first < LEAVING_GRACE_S:
                continue  # its process has ended: the server is closing the connection
            acted = self._acted.get(key)
            if acted is not None and now - acted < LEAVING_GRACE_S:
                continue  # its process was ended a moment ago: the connection is closing
            action = self._act(xres, client, key)
            if (key, action) not in self._reported:
                self._reported.add((key, action))
                log.guards.warning(
                    "Display client watch: %s (pid %s) is not ours: %s",
                    client.executable or "a client",
                    client.pid,
                    action,
                )
                self.report(
                    Event(
                        "display.intruder",
                        {**client.describe(), "action": action, "display": self.display_name},
                    )
                )
            if action in (KillOutcome.DISCONNECTED.value, KillOutcome.GONE.value):
                # closed there and then: the same key listed later is a new connection
                present.discard(key)
            else:
                self._acted[key] = now  # looked at again once the grace has passed
        self._seen = {k: t for k, t in self._seen.items() if k in present}
        self._acted = {k: t for k, t in self._acted.items() if k in present}
        self._started = {k: t for k, t in self._started.items() if k in present}
        self._reported = {(k, a) for k, a in self._reported if k in present}

    def _act(self, xres: XResClients, client: XClient, key: _Key) -> str:
        """Disconnect ``client``; a client that owns nothing to name it by has its process
        ended instead (only the process first seen: a pid may be reused); what was done."""
        outcome = xres.kill(client.base)
        if outcome is not KillOutcome.NO_RESOURCE or not client.pid:
            return outcome.value
        pid = client.pid
        if _alive(pid) and _start_time(pid) == self._started.get(key) and _end_process(pid):
            return "terminated"
        return "not_ended"


#: A client as the watch keys it: resource-id base and pid.
_Key = tuple[int, int | None]


def _alive(pid: int | None) -> bool:
    return pid is not None and pid > 0 and proc_exists(pid)


def _start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks after boot), None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _end_process(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return False
    return True


# -- the operation ---------------------------------------------------------------------------


class DisplayIsolationOperation:
    """Journals the display mode; on an isolated display runs the client watch."""

    name = "display_isolation"

    def __init__(
        self,
        choice: DisplayChoice | None,
        settings: Mapping[str, Any],
        report: EventSink,
        *,
        our_pid: int | None = None,
    ) -> None:
        self._choice = choice
        self._settings = settings
        self._report = report
        self._our_pid = os.getpid() if our_pid is None else our_pid
        self.watch: ClientWatch | None = None

    def perform(self) -> Outcome:
        choice = self._choice or DisplayChoice(
            "shared",
            "the session was started without a display choice (a shared display)",
            str(self._settings.get("guards.display_isolation", "preferred")),
        )
        kind, payload = choice.record()
        self._report(Event(kind, payload))
        if choice.display is None:
            return Outcome.SUCCESS
        if isinstance(choice.display, SessionDisplay) and choice.display.foreign_at_start:
            self._report(Event("session.dev_switch", {"name": "SESSION_CLIENTS"}))
        if build.dev_switch("DISPLAY_WATCH") == "off":
            # the positive control of the tests: an intruder given the cookie stays
            log.guards.warning("Development switch: the exam display's clients are not watched")
            self._report(Event("session.dev_switch", {"name": "DISPLAY_WATCH"}))
            return Outcome.SUCCESS
        allowed = Allowed(
            self._our_pid, bool(self._settings.get("accessibility.assistive_technology"))
        )
        self.watch = ClientWatch(choice.display.display, allowed, self._report)
        try:
            self.watch.start()
        except XResUnavailable as exc:
            log.guards.error("Cannot watch the exam display's clients: %s", exc)
            self._report(Event("display.watch_failed", {"reason": str(exc)}))
            self.watch = None
            return Outcome.FAILED
        log.init.info("Watching the clients of the exam display %s", choice.display.display)
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        if self.watch is not None:
            self.watch.stop()
            self.watch = None
        return Outcome.SUCCESS
