"""The prohibited-process watcher: find prohibited apps running, journal and close them.

Phases of one exam:

1. Before the exam, :func:`scan_running` lists the prohibited apps running now (the
   pre-exam dialog asks the candidate to close them; see
   :class:`lockdown.guards.system.SystemGuardsOperation`).
2. During the exam, :class:`ProcessWatcherGuard` learns of every process start from an
   exec source — on Linux the kernel's process connector (pushed, no polling), otherwise
   a cheap pid-list diff every 100 ms — inspects only the new process, matches it against
   the list (:mod:`lockdown.guards.appslist`), journals ``guards.prohibited_app`` and,
   when the policy is ``close``, terminates it (SIGTERM, then SIGKILL after a grace
   period; a process that survives is journalled as ``guards.prohibited_app_survived``).
3. The guard touches only the candidate's processes (:class:`CandidateScope`): those of
   our own user and, where logind says, our own login session. A matching process of
   another user or session is journalled (``action: report``) and never signalled. It
   never touches the processes we started (our descendants: the web engine's helpers),
   and never the system's essential processes (recognised by their real executable,
   :meth:`~lockdown.guards.appslist.Matcher.is_essential`). Our *ancestors* get no
   exemption: a recorder that starts ``lockdown`` is a recorder.
4. A process the X server saw reading the screen (:mod:`lockdown.guards.capture_watch`,
   X RECORD) is handed over with :meth:`ProcessWatcherGuard.capture_seen` and treated as
   the prohibited app ``x11-screen-capture`` whatever its name, under the same policy;
   name and argument matching stays as the second net.
5. Under ``close`` a matching process is stopped (SIGSTOP) the moment its ``exec`` is
   seen, before anything is written down, so a one-shot screenshot tool (``xwd -root``)
   is frozen before it can write its file; then it is journalled, recorded, sent SIGTERM
   and SIGCONT (a pending SIGTERM ends it before it runs another instruction), and
   SIGKILL after the grace period.

Crash safety: a terminated process cannot be brought back, so its "undo" is evidence.
With a :class:`TerminationLedger` over a :class:`~lockdown.guards.restore.RestoreLog`,
a ``process_terminated`` restore record (pid, name, exe, app, reason) is written durably
BEFORE the first signal; at the end of the session :meth:`TerminationLedger.finish`
journals ``guards.terminated_summary`` and then drops the records. If the run dies
first, :func:`lockdown.guards.restore.undo_leftovers` journals the leftovers at the
next start.

A flood (an app restarting in a loop) is rate-limited per app in the journal; the
summary keeps the count. With a restore log the count of the starts held back is written
to disk as it grows (:class:`lockdown.guards.ratelimit.RestoreHeldCounts`), so a
``kill -9`` of Lockdown loses none: the next start journals the leftover count.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import psutil

from lockdown import log
from lockdown.events import Event, EventSink
from lockdown.guards.appslist import (
    AppList,
    Match,
    Matcher,
    OsName,
    ProcessFacts,
    ProhibitedApp,
    current_os,
)
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.guards.restore import RestoreLog, RestoreRecord

NAME: Final = "prohibited_apps"
POLL_INTERVAL: Final = 0.1
#: Polling only: how often every process is re-matched (catches exec without a new pid).
RESCAN_INTERVAL: Final = 2.0
#: Polling only: how long a new pid is watched for an ``exec`` (fork first, exec later).
SETTLE_SECONDS: Final = 2.0
GRACE_SECONDS: Final = 2.0
RATE_INTERVAL: Final = 10.0
EVENT_DETECTED: Final = "guards.prohibited_app"
EVENT_CLOSED: Final = "guards.prohibited_app_closed"
EVENT_SURVIVED: Final = "guards.prohibited_app_survived"
EVENT_BACKEND: Final = "guards.process_watcher"

EVENT_FAILED: Final = "guards.process_watcher_failed"
EVENT_SCOPE: Final = "guards.process_scope"
#: Development builds only: name this run's "login session" by an environment variable
#: (``LOCKDOWN_DEV_PROCESS_SESSION``), for tests on a machine without logind shared by
#: several test runs as one user. It narrows whose processes are closed: journalled.
DEV_SESSION_SWITCH: Final = "PROCESS_SESSION"
EVENT_TERMINATED_SUMMARY: Final = "guards.terminated_summary"
#: The restore-record kind of a process Lockdown terminated.
RECORD_KIND: Final = "process_terminated"
REASON_DURING: Final = "prohibited app started during the exam"
#: A process the X server saw reading the screen, whatever its name.
SCREEN_READER_APP: Final = ProhibitedApp(
    id="x11-screen-capture",
    name="A program reading the screen (seen at the X server)",
    category="screen_capture",
)
REASON_BEFORE: Final = "prohibited app closed before the exam at the candidate's request"

ExecCallback = Callable[[int, float], None]
OverflowCallback = Callable[[], None]
#: Called once, with the reason, when a source stops working for good.
FailureCallback = Callable[[str], None]


class ExecSource(Protocol):
    """Tells about new processes; ``backend`` and ``reason`` say how and why this way."""

    backend: str
    reason: str

    def start(
        self, on_exec: ExecCallback, on_overflow: OverflowCallback, on_failure: FailureCallback
    ) -> None: ...

    def stop(self) -> None: ...


# -- facts about processes ----------------------------------------------------------------


def _attr(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return default


_original_names: dict[str, str] = {}


def _extra_facts(os_name: OsName, exe: str) -> dict[str, str]:
    if not exe or os_name == "linux":
        return {}
    if os_name == "windows":
        if exe not in _original_names:
            from lockdown.platform import proc_windows

            _original_names[exe] = proc_windows.original_filename(exe) or ""
        return {"original_filename": _original_names[exe]}
    from lockdown.platform import proc_macos

    return {"bundle_id": proc_macos.bundle_id_for_exe(exe) or ""}


def _exe_stat(pid: int, os_name: OsName, exe: str) -> tuple[int, int]:
    """Owner and mode of the executable file itself (Linux: the inode behind
    ``/proc/PID/exe``, even when it was replaced on disk); (-1, 0) when unknown."""
    if os_name == "windows" or not exe:
        return -1, 0
    try:
        st = os.stat(f"/proc/{pid}/exe" if os_name == "linux" else exe)
    except OSError:
        return -1, 0
    return st.st_uid, st.st_mode


def inspect(pid: int, os_name: OsName | None = None) -> ProcessFacts | None:
    """What is known about ``pid``; None when it is gone (or a zombie)."""
    os_name = os_name or current_os()
    uid = -1
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if _attr(proc.status, "") == psutil.STATUS_ZOMBIE:
                return None  # exited, waiting for its parent: nothing left to match or close
            name = _attr(proc.name, "")
            ppid = _attr(proc.ppid, 0)
            created = _attr(proc.create_time, 0.0)
            exe = _attr(proc.exe, "")
            cmdline = tuple(_attr(proc.cmdline, ()))
            if os_name != "windows":
                uid = int(_attr(lambda: proc.uids().real, -1))
    except psutil.NoSuchProcess:
        return None
    owner, mode = _exe_stat(pid, os_name, exe)
    return ProcessFacts(
        pid=pid,
        name=name,
        exe=exe,
        cmdline=cmdline,
        ppid=ppid,
        create_time=created,
        uid=uid,
        exe_owner=owner,
        exe_mode=mode,
        **_extra_facts(os_name, exe),
    )


class LoginSessions(Protocol):
    """Which login session a process belongs to (logind's view; a fake in tests)."""

    def session_of(self, pid: int) -> str | None:
        """The session id of ``pid``; None when it is in none (or it cannot be told)."""
        ...


@dataclass(frozen=True)
class CandidateScope:
    """Which processes are the candidate's: our user's and, where logind says, our session's.

    ``uid`` None means any user and ``sessions`` None any session: only positive-control
    tests build such a scope. Windows compares no uid yet (psutil has none there).
    """

    uid: int | None
    sessions: LoginSessions | None = None
    #: our own login session (None: we are in none, so sessions are not compared)
    session: str | None = None
    #: where the sessions come from (journalled with the scope)
    origin: str = ""

    @classmethod
    def current(cls, sessions: LoginSessions | None = None) -> CandidateScope:
        """This process's real user and login session (logind's, on Linux).

        Inside a logind session the candidate is the session's user (``user-UID.slice``),
        so a Lockdown started as root by ``sudo`` still closes the candidate's apps, not
        root's. In a development build ``LOCKDOWN_DEV_PROCESS_SESSION`` replaces logind: only
        processes whose environment carries the same value are ours.
        """
        uid = os.getuid() if hasattr(os, "getuid") else None
        if sessions is None and current_os() == "linux":
            from lockdown import build
            from lockdown.platform.proc_linux import EnvironmentSessions, LogindSessions

            if token := build.dev_switch(DEV_SESSION_SWITCH):
                variable = f"LOCKDOWN_DEV_{DEV_SESSION_SWITCH}"
                log.guards.warning("Development switch %s: only its processes are ours", variable)
                return cls(
                    uid, EnvironmentSessions(variable), token, f"development switch {variable}"
                )
            sessions = LogindSessions()
        if sessions is None:
            return cls(uid)
        session = sessions.session_of(os.getpid())
        if session is None:
            return cls(uid, sessions, None, "no login session")
        # The candidate is the session's user, even if Lockdown runs as root in it.
        owner_of = getattr(sessions, "owner_of", None)
        owner = owner_of(os.getpid()) if callable(owner_of) else None
        return cls(owner if isinstance(owner, int) else uid, sessions, session, "logind")

    def as_payload(self) -> dict[str, Any]:
        return {"uid": self.uid, "session": self.session, "sessions": self.origin}

    def outside(self, facts: ProcessFacts) -> str:
        """Why ``facts`` is not the candidate's to touch; ``""`` when it is."""
        if self.uid is not None and facts.uid != self.uid:
            if facts.uid < 0:
                return "its owner cannot be read"
            return f"it runs as another user (uid {facts.uid})"
        if self.sessions is not None and self.session is not None:
            theirs = self.sessions.session_of(facts.pid)
            if theirs is not None and theirs != self.session:
                return f"it runs in another login session ({theirs})"
        return ""


class OwnTree:
    """Our own process and the processes we started (its descendants), never ancestors.

    Whoever started us is not ours: a recorder that launches ``lockdown`` is a recorder.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid if pid is not None else os.getpid()

    def contains(self, facts: ProcessFacts) -> bool:
        if facts.pid == self.pid:
            return True
        parent, steps = facts.ppid, 0
        while parent > 1 and steps < 64:
            if parent == self.pid:
                return True
            try:
                parent = psutil.Process(parent).ppid()
            except psutil.Error:
                return False
            steps += 1
        return False


def snapshot(os_name: OsName | None = None) -> list[ProcessFacts]:
    """What is known about every process running now: one walk of the process table for
    the checks that each look at all of them (prohibited apps, remote-control servers,
    virtual-machine tools)."""
    os_name = os_name or current_os()
    return [facts for pid in psutil.pids() if (facts := inspect(pid, os_name)) is not None]


def scan_running(
    matcher: Matcher,
    own: OwnTree | None = None,
    processes: Iterable[ProcessFacts] | None = None,
    *,
    scope: CandidateScope | None = None,
    elsewhere: list[tuple[Match, str]] | None = None,
) -> list[Match]:
    """The candidate's prohibited apps running now (never our tree or essential processes).

    ``processes``: a :func:`snapshot` already taken (default: the processes now).
    Matching processes outside ``scope`` (default: :meth:`CandidateScope.current`) are
    not returned; they go to ``elsewhere`` with the reason, to be reported.
    """
    own = own or OwnTree()
    scope = scope or CandidateScope.current()
    found = []
    for facts in processes if processes is not None else snapshot(matcher.os):
        if matcher.is_essential(facts) or own.contains(facts):
            continue
        match = matcher.match(facts)
        if match is None:
            continue
        if why := scope.outside(facts):
            if elsewhere is not None:
                elsewhere.append((match, why))
            continue
        found.append(match)
    return found


# -- exec sources ---------------------------------------------------------------------------


def _psutil_pids() -> set[int]:
    return set(psutil.pids())


def _psutil_name(pid: int) -> str | None:
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return None


class PollingExecSource:
    """Diffs the pid list every ``interval`` seconds; re-matches everything now and then.

    A program is usually started by a fork (a new pid still running the parent's
    program) followed by an ``exec``; a poll can fall between the two. So a new pid is
    watched for ``settle`` seconds and reported again when its name changes (an exec).
    """

    def __init__(
        self,
        reason: str,
        interval: float = POLL_INTERVAL,
        list_pids: Callable[[], set[int]] | None = None,
        rescan_interval: float = RESCAN_INTERVAL,
        settle: float = SETTLE_SECONDS,
    ) -> None:
        self.reason = reason
        self.interval = interval
        self.rescan_interval = rescan_interval
        self.settle = settle
        self._name_of: Callable[[int], str | None] = _psutil_name
        if list_pids is None:
            if current_os() == "linux":
                from lockdown.platform.proc_linux import proc_comm, proc_pids

                list_pids = proc_pids
                self._name_of = proc_comm
                self.backend = "poll-proc"
            else:
                list_pids = _psutil_pids
                self.backend = "poll-psutil"
        else:
            self.backend = "poll"
        self._list_pids = list_pids
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(
        self, on_exec: ExecCallback, on_overflow: OverflowCallback, on_failure: FailureCallback
    ) -> None:
        """Poll in a thread; a failed poll is logged and retried, so ``on_failure`` is unused."""
        self._stop.clear()
        known = self._list_pids()
        self._thread = threading.Thread(
            target=self._run, args=(known, on_exec, on_overflow), name="proc-poll", daemon=True
        )
        self._thread.start()

    def _run(self, known: set[int], on_exec: ExecCallback, on_overflow: OverflowCallback) -> None:
        next_rescan = time.monotonic() + self.rescan_interval
        young: dict[int, tuple[float, str | None]] = {}  # pid -> (first seen, name then)
        while not self._stop.wait(self.interval):
            try:
                now_pids = self._list_pids()
                now = time.monotonic()
                for pid, (born, name) in list(young.items()):
                    if pid not in now_pids or now - born > self.settle:
                        del young[pid]
                        continue
                    current = self._name_of(pid)
                    if current != name:  # it exec'd since we looked
                        young[pid] = (born, current)
                        on_exec(pid, now)
                for pid in sorted(now_pids - known):
                    young[pid] = (now, self._name_of(pid))
                    on_exec(pid, now)
                known = now_pids
                if now >= next_rescan:
                    next_rescan = now + self.rescan_interval
                    on_overflow()
            except Exception:
                log.guards.exception("Process poll failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def choose_exec_source(os_name: OsName | None = None, *, allow_netlink: bool = True) -> ExecSource:
    """The best exec source here; the fallback says why it is a fallback."""
    os_name = os_name or current_os()
    if os_name == "linux":
        if not allow_netlink:
            return PollingExecSource("netlink disabled by the caller; polling /proc every 100 ms")
        from lockdown.platform.proc_linux import ExecSourceUnavailable, NetlinkExecSource

        source = NetlinkExecSource()
        try:
            source.open()
        except ExecSourceUnavailable as exc:
            log.guards.info("Process watcher falls back to polling: %s", exc)
            return PollingExecSource(f"{exc}; polling /proc every 100 ms instead")
        return source
    return PollingExecSource(
        f"no process-start notification implemented for {os_name}; polling every 100 ms"
    )


def probe() -> GuardInfo:
    """Which backend the watcher would use here (opens and closes the netlink socket)."""
    source = choose_exec_source()
    if hasattr(source, "open"):
        source.stop()
        return GuardInfo(NAME, source.backend, Availability.FULL, source.reason)
    return GuardInfo(NAME, source.backend, Availability.PARTIAL, source.reason)


# -- journal rate limit -----------------------------------------------------------------------


def rate_limited(sink: EventSink, interval: float, restore: RestoreLog | None = None) -> EventSink:
    """Per-app flood control (:class:`lockdown.guards.ratelimit.RateLimitedSink`).

    Each journalled event stands for one start, a summary for ``suppressed`` starts; with
    ``restore`` the count held back is on disk as it grows (a crash loses none).
    """
    try:
        from lockdown.guards.ratelimit import RateLimitedSink, RestoreHeldCounts
    except ImportError:  # built without the desktop guards: journal every event
        log.guards.warning("No journal rate limit available; every event is journalled")
        return sink
    held = RestoreHeldCounts(restore) if restore is not None else None
    return RateLimitedSink(sink, interval, key_field="key", held=held)


def _flush(sink: EventSink) -> None:
    for method in ("flush", "close"):
        fn = getattr(sink, method, None)
        if callable(fn):
            fn()
            return


# -- closing processes ---------------------------------------------------------------------------


def _gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _wait_gone(proc: psutil.Process, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(proc):
            return True
        time.sleep(0.02)
    return _gone(proc)


@dataclass(frozen=True)
class CloseResult:
    match: Match
    #: terminated | killed | gone | survived
    how: str
    reason: str = ""
    #: whether a signal was sent (the process was touched)
    signalled: bool = field(default=False, compare=False)

    @property
    def closed(self) -> bool:
        return self.how != "survived"


def termination_data(match: Match, reason: str) -> dict[str, Any]:
    """What a ``process_terminated`` restore record (and the summary) says."""
    facts = match.process
    return {
        "pid": facts.pid,
        "name": facts.name,
        "exe": facts.exe,
        "app": match.app.id,
        "reason": reason,
        "create_time": facts.create_time,
    }


class TerminationLedger:
    """The processes Lockdown terminated in one session, each recorded before the signal.

    Without a :class:`RestoreLog` it still keeps the list (for the summary) but writes
    nothing to disk. Thread-safe: the watcher closes processes from several threads.
    """

    def __init__(self, restore: RestoreLog | None = None) -> None:
        self.restore = restore
        self._lock = threading.Lock()
        self._next = 0
        self._pending: dict[int, tuple[dict[str, Any], RestoreRecord | None]] = {}
        self._done: list[tuple[dict[str, Any], RestoreRecord | None]] = []

    def before(self, match: Match, reason: str) -> int:
        """Write the record (durably, when there is a restore log); call BEFORE signalling.

        Returns a token for :meth:`after`. A failed write is logged and the close goes
        on: the candidate's exam matters more than the evidence of one termination.
        """
        data = termination_data(match, reason)
        record: RestoreRecord | None = None
        if self.restore is not None:
            try:
                record = self.restore.record(RECORD_KIND, data)
            except OSError as exc:
                log.guards.error("Cannot write the restore record for pid %s: %s", data["pid"], exc)
        with self._lock:
            self._next += 1
            self._pending[self._next] = (data, record)
            return self._next

    def after(self, token: int, result: CloseResult) -> None:
        """Keep the entry when a signal went out; drop it when the process was not touched."""
        with self._lock:
            data, record = self._pending.pop(token)
            if result.signalled:
                self._done.append(({**data, "how": result.how}, record))
                return
        if record is not None and self.restore is not None:
            self.restore.done(record)

    @property
    def entries(self) -> list[dict[str, Any]]:
        """The processes terminated so far (pid, name, exe, app, reason, create_time, how)."""
        with self._lock:
            return [dict(data) for data, _ in self._done]

    def finish(self, sink: EventSink | None) -> None:
        """End of the session: journal the summary (when any), THEN drop the records."""
        with self._lock:
            done, self._done = self._done, []
        if done and sink is not None:
            entries = [data for data, _ in done]
            sink(Event(EVENT_TERMINATED_SUMMARY, {"count": len(entries), "processes": entries}))
            log.guards.info("Lockdown terminated %d process(es) this session", len(entries))
        if self.restore is not None:
            for _, record in done:
                if record is not None:
                    self.restore.done(record)


def _same_process(proc: psutil.Process, facts: ProcessFacts) -> bool:
    return not facts.create_time or abs(proc.create_time() - facts.create_time) <= 0.01


def stop_now(facts: ProcessFacts) -> bool:
    """SIGSTOP ``facts.pid`` at once (POSIX), unless its pid was reused; True when sent."""
    if not hasattr(signal, "SIGSTOP"):
        return False
    try:
        proc = psutil.Process(facts.pid)
        if not _same_process(proc, facts):
            return False
        proc.send_signal(signal.SIGSTOP)
    except psutil.Error:
        return False
    return True


def close_process(
    match: Match,
    grace: float = GRACE_SECONDS,
    ledger: TerminationLedger | None = None,
    reason: str = REASON_DURING,
    scope: CandidateScope | None = None,
) -> CloseResult:
    """SIGTERM (or WM_CLOSE-like terminate), SIGKILL after ``grace``; never a reused pid.

    With a ``ledger`` the termination is recorded before the first signal. The owner is
    read again just before: a process outside ``scope`` (default: the candidate's) is not
    touched. A stopped process (see :func:`stop_now`) gets SIGCONT after the SIGTERM.
    """
    facts = match.process
    token: int | None = None
    sent = False
    result = CloseResult(match, "survived", "the close did not finish", signalled=True)
    scope = scope or CandidateScope.current()
    try:
        proc = psutil.Process(facts.pid)
        if not _same_process(proc, facts):
            return CloseResult(match, "gone", "the process ended and its pid was reused")
        if _gone(proc):  # exited (a zombie waiting for its parent): nothing to close
            return CloseResult(match, "gone")
        now = inspect(facts.pid, current_os())
        if now is None:
            return CloseResult(match, "gone")
        if why := scope.outside(now):
            return CloseResult(match, "survived", f"not touched: {why}")
        if ledger is not None:
            token = ledger.before(match, reason)
        proc.terminate()
        sent = True
        if hasattr(signal, "SIGCONT"):
            proc.send_signal(signal.SIGCONT)  # a stopped process handles the SIGTERM now
        if _wait_gone(proc, grace):
            result = CloseResult(match, "terminated", signalled=True)
        else:
            proc.kill()
            if _wait_gone(proc, 1.0):
                result = CloseResult(
                    match, "killed", f"ignored the request to quit for {grace:g} s", True
                )
            else:
                result = CloseResult(match, "survived", "still running after SIGKILL", True)
    except psutil.NoSuchProcess:
        result = CloseResult(match, "gone", signalled=sent)
    except psutil.AccessDenied:
        result = CloseResult(
            match,
            "survived",
            "not allowed to close it (it runs as another user or the system)",
            sent,
        )
    finally:
        if token is not None and ledger is not None:
            ledger.after(token, result)
    return result


def close_all(
    matches: Iterable[Match],
    grace: float = GRACE_SECONDS,
    ledger: TerminationLedger | None = None,
    reason: str = REASON_BEFORE,
    scope: CandidateScope | None = None,
) -> list[CloseResult]:
    """Close several processes in parallel (each waits its own grace period)."""
    results: list[CloseResult] = []
    lock = threading.Lock()
    scope = scope or CandidateScope.current()

    def one(m: Match) -> None:
        result = close_process(m, grace, ledger, reason, scope)
        with lock:
            results.append(result)

    threads = [threading.Thread(target=one, args=(m,), daemon=True) for m in matches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def close_payload(result: CloseResult) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "key": result.match.app.id,
        "app": result.match.app.id,
        "pid": result.match.process.pid,
        "how": result.how,
    }
    if result.reason:
        payload["reason"] = result.reason
    return payload


# -- the guard ---------------------------------------------------------------------------------


class ProcessWatcherGuard:
    """Journals (and with ``terminate`` closes) prohibited apps started during the exam.

    Each termination is recorded before its signal in ``ledger`` (shared with the
    pre-exam close by :class:`lockdown.guards.policy.SystemGuardsOperation`, which then
    finishes it) or, without one, in a ledger of its own over ``restore`` that
    :meth:`stop` finishes (journals ``guards.terminated_summary``, drops the records).
    """

    name = NAME

    def __init__(
        self,
        apps: AppList,
        *,
        terminate: bool,
        grace: float = GRACE_SECONDS,
        source_factory: Callable[[], ExecSource] = choose_exec_source,
        own_tree: OwnTree | None = None,
        rate_interval: float = RATE_INTERVAL,
        restore: RestoreLog | None = None,
        ledger: TerminationLedger | None = None,
        scope: CandidateScope | None = None,
    ) -> None:
        self.matcher = apps.matcher()
        self._scope = scope
        #: where held-back counts are written (the ledger's restore log by default)
        self._restore = restore if restore is not None else (ledger.restore if ledger else None)
        self.terminate = terminate
        self.grace = grace
        self._source_factory = source_factory
        self._own = own_tree
        self._rate_interval = rate_interval
        self._owns_ledger = ledger is None
        self.ledger = ledger if ledger is not None else TerminationLedger(restore)
        self._report: EventSink | None = None
        self._source: ExecSource | None = None
        self._sink: EventSink | None = None
        self._lock = threading.Lock()
        self._handled: set[tuple[int, float, str]] = set()
        self._closers: list[threading.Thread] = []
        self._failed: list[ExecSource] = []
        self._running = False

    def info(self) -> GuardInfo:
        return probe()

    @property
    def backend(self) -> str:
        return self._source.backend if self._source is not None else ""

    def start(self, report: EventSink) -> None:
        if self._running:
            return
        self._own = self._own or OwnTree()
        self._scope = self._scope or CandidateScope.current()
        report(Event(EVENT_SCOPE, self._scope.as_payload()))
        self._report = report
        self._sink = rate_limited(report, self._rate_interval, self._restore)
        try:
            source = self._source_factory()
        except Exception as exc:
            raise GuardUnavailable(f"no way to watch process starts here: {exc}") from exc
        self._source = source
        self._running = True
        report(Event(EVENT_BACKEND, {"backend": source.backend, "reason": source.reason}))
        log.guards.info("Process watcher: %s (%s)", source.backend, source.reason)
        try:
            source.start(self._on_exec, self._rescan, self._source_failed)
            self._rescan()  # apps already running when the exam starts
        except Exception as exc:
            self._running = False
            self._release(source)
            raise GuardUnavailable(f"cannot start the process watcher: {exc}") from exc

    def _release(self, source: ExecSource) -> None:
        """Stop a source that failed half-way (its thread, socket and pipe)."""
        self._source = None
        try:
            source.stop()
        except Exception:
            log.guards.exception("Could not release the process watcher's source")

    def _source_failed(self, reason: str) -> None:
        """The source died (from its own thread): journal the gap and poll instead."""
        with self._lock:
            failed = self._source
            if not self._running or failed is None:
                return
            self._failed.append(failed)
            fallback = PollingExecSource(f"{reason}; polling every 100 ms instead")
            self._source = fallback
            # Started under the lock, so a concurrent stop() cannot miss the new thread.
            try:
                fallback.start(self._on_exec, self._rescan, self._source_failed)
                started = ""
            except Exception as exc:
                self._source = None
                started = str(exc) or type(exc).__name__
        log.guards.error("Process watcher %s failed (%s); polling", failed.backend, reason)
        sink = self._sink
        if sink is not None:
            sink(Event(EVENT_FAILED, {"backend": failed.backend, "reason": reason}))
        if started:
            log.guards.error("The polling fallback did not start either: %s", started)
            if sink is not None:
                sink(Event(EVENT_FAILED, {"backend": fallback.backend, "reason": started}))
            return
        if sink is not None:
            sink(Event(EVENT_BACKEND, {"backend": fallback.backend, "reason": fallback.reason}))
        self._rescan()  # whatever started while nobody was watching

    def _on_exec(self, pid: int, seen_at: float) -> None:
        facts = inspect(pid, self.matcher.os)
        if facts is not None:
            self._consider(facts, seen_at)

    def capture_seen(self, pid: int, request: str) -> None:
        """The X server saw ``pid`` read the screen (``request``): the policy applies to
        it as to a listed screen-capture app (any thread)."""
        facts = inspect(pid, self.matcher.os)
        if facts is None or not self._running:
            return
        match = self.matcher.match(facts) or Match(
            SCREEN_READER_APP, facts, matched_on="x11_request", matched_name=request
        )
        self._consider_match(match, facts, time.monotonic())

    def rescan_after_gap(self, seconds: float) -> None:
        """The process stood still for ``seconds`` (stopped, suspended): look at every
        process again, journalled as ``guards.processes_rescanned``."""
        if not self._running:
            return
        sink = self._sink
        if sink is not None:
            sink(Event("guards.processes_rescanned", {"reason": "suspended", "gap": seconds}))
        log.guards.info("Rescanning the processes after %.3f s standing still", seconds)
        self._rescan()

    def _rescan(self) -> None:
        now = time.monotonic()
        alive = set(psutil.pids())
        with self._lock:
            self._handled = {h for h in self._handled if h[0] in alive}
        for pid in alive:
            self._on_exec(pid, now)

    def _consider(self, facts: ProcessFacts, seen_at: float) -> None:
        match = self.matcher.match(facts)
        if match is None:
            return
        self._consider_match(match, facts, seen_at)

    def _consider_match(self, match: Match, facts: ProcessFacts, seen_at: float) -> None:
        if not self._running:
            return
        assert self._own is not None and self._scope is not None
        if self.matcher.is_essential(facts) or self._own.contains(facts):
            log.guards.debug("Not touching protected process %s (%s)", facts.pid, facts.name)
            return
        key = (facts.pid, facts.create_time, match.app.id)
        with self._lock:
            if key in self._handled:
                return
            self._handled.add(key)
        elsewhere = self._scope.outside(facts)
        stopped = self.terminate and not elsewhere and stop_now(facts)
        action = "report" if elsewhere else "terminate" if self.terminate else "journal"
        payload: dict[str, Any] = {
            # rate-limited apart: another user's copies never hide the candidate's start
            "key": f"{match.app.id} elsewhere" if elsewhere else match.app.id,
            **match.as_payload(),
            "uid": facts.uid,
            "action": action,
            "backend": self.backend,
            "detected_ms": round((time.monotonic() - seen_at) * 1000, 1),
        }
        if elsewhere:
            payload["scope"] = elsewhere
        if stopped:
            payload["stopped"] = True
        log.guards.warning(
            "Prohibited app %s (pid %s) started; %s%s",
            match.app.name,
            facts.pid,
            action,
            f" ({elsewhere})" if elsewhere else "",
        )
        sink = self._sink
        if sink is not None:
            sink(Event(EVENT_DETECTED, payload))
        if action == "terminate":
            closer = threading.Thread(
                target=self._close, args=(match,), name=f"close-{facts.pid}", daemon=True
            )
            with self._lock:
                self._closers = [t for t in self._closers if t.is_alive()]
                self._closers.append(closer)
            closer.start()

    def _close(self, match: Match) -> None:
        result = close_process(match, self.grace, self.ledger, REASON_DURING, self._scope)
        sink = self._sink
        if sink is None:
            return
        if result.closed:
            sink(Event(EVENT_CLOSED, close_payload(result)))
        else:
            log.guards.error(
                "Prohibited app %s (pid %s) survived: %s",
                match.app.name,
                match.process.pid,
                result.reason,
            )
            sink(Event(EVENT_SURVIVED, close_payload(result)))

    def stop(self) -> None:
        if not self._running:
            return
        with self._lock:
            self._running = False
            sources = [*self._failed, *([self._source] if self._source is not None else [])]
            self._failed = []
            closers, self._closers = self._closers, []
        for source in sources:
            source.stop()
        for t in closers:
            t.join(timeout=self.grace + 5)
        if self._sink is not None:
            _flush(self._sink)
        if self._owns_ledger:
            self.ledger.finish(self._report)
        log.guards.info("Process watcher stopped")
