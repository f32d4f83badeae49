"""The pre-exam system guards: VM and remote-session policy, prohibited apps, the watcher.

:class:`SystemGuardsOperation` is one step of the session sequence. ``perform``:

1. scores the machine for a virtual machine and judges the session for remote access;
   each verdict meets its policy (``guards.virtual_machine`` / ``guards.remote_session``:
   allow does nothing, warn journals and lets the exam go on, deny journals and ABORTS
   with a message id);
2. lists the prohibited apps running (and on macOS the apps holding Screen Recording
   permission) and, when there are any, hands them to the prompt the UI provides (the
   pre-exam dialog), which rescans until they are gone or the candidate cancels —
   cancelled means ABORTED; no prompt means ABORTED too;
3. starts the process watcher guard (journal, and terminate with the ``close`` policy).
   A watcher that cannot start meets ``guards.unavailable``: refuse ABORTS, continue
   journals the gap.

Given a :class:`~lockdown.guards.prefetch.PrecheckPrefetch`, steps 1 and the first scan
of 2 take the results its worker thread computed while the web engine started (the
same checks, a moment earlier); the decisions stay here, in the operation's place.

Once the rest succeeded, the suspension watchdog (:mod:`lockdown.guards.watchdog`) starts;
after a gap in its tick the watcher rescans the process table. ``revert`` stops the
watchdog and the watcher, then journals ``guards.terminated_summary`` (the
processes Lockdown terminated, before and during the exam) and drops their restore
records. With ``restore`` (a :class:`~lockdown.guards.restore.RestoreLog`) each
termination is recorded on disk before its signal, so a run that dies leaves the
evidence for :func:`~lockdown.guards.restore.undo_leftovers` at the next start.
Candidate-facing texts are in :mod:`lockdown.texts`.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lockdown import log
from lockdown.events import Event, EventSink
from lockdown.guards import remote as remote_guard
from lockdown.guards import vm as vm_guard
from lockdown.guards.appslist import AppList, Match, OsName, current_os
from lockdown.guards.base import GuardUnavailable
from lockdown.guards.prefetch import PrecheckPrefetch
from lockdown.guards.processes import (
    REASON_BEFORE,
    CandidateScope,
    CloseResult,
    OwnTree,
    ProcessWatcherGuard,
    TerminationLedger,
    close_all,
    close_payload,
    scan_running,
)
from lockdown.guards.restore import RestoreLog
from lockdown.guards.tcc import TccGrant, screen_capture_grants
from lockdown.guards.watchdog import SuspendWatchdog
from lockdown.lifecycle.base import Outcome


class Policy(enum.Enum):
    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"


@dataclass(frozen=True)
class PolicyResult:
    outcome: Outcome
    #: the text to show the candidate (an id of :mod:`lockdown.texts`), if any
    message_id: str | None = None


def apply_policy(
    kind: str, policy: str, detected: bool, details: Mapping[str, Any], sink: EventSink
) -> PolicyResult:
    """allow: nothing; warn: journal, go on; deny: journal, ABORTED."""
    rule = Policy(policy)
    if not detected or rule is Policy.ALLOW:
        return PolicyResult(Outcome.SUCCESS)
    short = {"virtual_machine": "vm", "remote_session": "remote"}.get(kind, kind)
    sink(Event(f"guards.{kind}", {"policy": rule.value, **details}))
    if rule is Policy.WARN:
        log.guards.warning("%s detected; policy warn: the exam goes on", kind)
        return PolicyResult(Outcome.SUCCESS, f"guards.{short}.warned")
    log.guards.warning("%s detected; policy deny: the exam does not start", kind)
    return PolicyResult(Outcome.ABORTED, f"guards.{short}.denied")


@dataclass(frozen=True)
class PrecheckFindings:
    running: tuple[Match, ...] = ()
    #: macOS: apps holding Screen Recording permission (reported like a running capture app)
    capture_permitted: tuple[TccGrant, ...] = ()
    #: matching processes that are not the candidate's (another user or session), and why:
    #: reported, never closed, never in the candidate's way
    elsewhere: tuple[tuple[Match, str], ...] = ()

    @property
    def clear(self) -> bool:
        return not self.running and not self.capture_permitted

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "apps": [m.as_payload() for m in self.running],
            "screen_recording_permission": [g.as_dict() for g in self.capture_permitted],
        }
        if self.elsewhere:
            out["elsewhere"] = [
                {**m.as_payload(), "uid": m.process.uid, "scope": why} for m, why in self.elsewhere
            ]
        return out


@dataclass
class ProhibitedAppsPrecheck:
    """What the pre-exam dialog drives: scan, and (when the policy allows) close."""

    apps: AppList
    sink: EventSink
    can_close: bool
    tcc: Callable[[], tuple[TccGrant, ...]] = lambda: ()
    own: OwnTree = field(default_factory=OwnTree)
    grace: float = 2.0
    #: records each termination before its signal (None: nothing recorded)
    ledger: TerminationLedger | None = None
    #: whose processes may be closed (None: the candidate's, :meth:`CandidateScope.current`)
    scope: CandidateScope | None = None

    def scan(self) -> PrecheckFindings:
        elsewhere: list[tuple[Match, str]] = []
        mine = scan_running(self.apps.matcher(), self.own, scope=self.scope, elsewhere=elsewhere)
        return PrecheckFindings(tuple(mine), tuple(self.tcc()), tuple(elsewhere))

    def close(self, matches: tuple[Match, ...] | list[Match]) -> list[CloseResult]:
        """Close these processes (only with the ``close`` policy); journal each result."""
        if not self.can_close:
            raise PermissionError("the exam's policy does not allow closing apps")
        results = close_all(matches, self.grace, self.ledger, REASON_BEFORE, self.scope)
        for result in results:
            kind = "closed" if result.closed else "survived"
            self.sink(Event(f"guards.prohibited_app_{kind}", close_payload(result)))
        return results


#: The UI's side: show the findings, let the candidate close apps / rescan; True once
#: everything is clear, False when the candidate cancels.
ProhibitedAppsPrompt = Callable[[ProhibitedAppsPrecheck, PrecheckFindings], bool]


def default_tcc(os_name: OsName, exclude: tuple[str, ...]) -> Callable[[], tuple[TccGrant, ...]]:
    if os_name != "macos":
        return lambda: ()
    return lambda: screen_capture_grants(exclude=exclude).grants


class SystemGuardsOperation:
    """VM and remote-session policy, prohibited-apps pre-check, process watcher."""

    name = "system_guards"

    def __init__(
        self,
        settings: Mapping[str, Any],
        sink: EventSink,
        *,
        prompt: ProhibitedAppsPrompt | None = None,
        apps: AppList | None = None,
        os_name: OsName | None = None,
        vm_detector: Callable[[], vm_guard.VmVerdict] = vm_guard.detect,
        remote_detector: Callable[[], remote_guard.RemoteVerdict] | None = None,
        tcc: Callable[[], tuple[TccGrant, ...]] | None = None,
        watcher_factory: Callable[[AppList, bool], ProcessWatcherGuard] | None = None,
        own_bundle_ids: tuple[str, ...] = ("org.lockdown.Lockdown",),
        restore: RestoreLog | None = None,
        scope: CandidateScope | None = None,
        prefetched: PrecheckPrefetch | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._prompt = prompt
        os_name = os_name or current_os()
        self._os_name: OsName = os_name
        self._apps_given = apps
        self._prefetched = prefetched
        self._apps_loaded: AppList | None = None
        if prefetched is None:  # with a prefetch, the list comes from its thread
            self._apps_loaded = (apps or AppList.load(os_name=os_name)).for_settings(settings)
        self._vm = vm_detector
        self._remote = remote_detector or (lambda: remote_guard.detect(self._apps))
        self._tcc = tcc or default_tcc(os_name, own_bundle_ids)
        #: every process closed before or during the exam, recorded before its signal
        self.ledger = TerminationLedger(restore)
        self._scope = scope
        self._watcher_factory = watcher_factory or (
            lambda apps, terminate: ProcessWatcherGuard(
                apps, terminate=terminate, ledger=self.ledger, scope=self._scope
            )
        )
        self.watcher: ProcessWatcherGuard | None = None
        #: notices when the whole process stood still; the watcher then rescans
        self.watchdog = SuspendWatchdog(self._after_gap)
        #: the text id to show when perform() did not succeed
        self.message_id: str | None = None
        #: the values of that text's placeholders
        self.message_values: dict[str, Any] = {}
        #: text ids to show although the exam goes on (policy warn)
        self.warnings: list[str] = []

    @property
    def _apps(self) -> AppList:
        if self._apps_loaded is None:
            source = self._apps_given or AppList.load(os_name=self._os_name)
            self._apps_loaded = source.for_settings(self._settings)
        return self._apps_loaded

    def perform(self) -> Outcome:
        outcome = self._perform()
        if outcome is Outcome.SUCCESS:
            self.watchdog.start(self._sink)
        return outcome

    def capture_seen(self, pid: int, request: str) -> None:
        """The X server saw ``pid`` read the screen: hand it to the prohibited-app policy
        (any thread; nothing happens when the policy is ``allow``)."""
        watcher = self.watcher
        if watcher is not None:
            watcher.capture_seen(pid, request)

    def _after_gap(self, seconds: float) -> None:
        watcher = self.watcher
        if watcher is not None:
            watcher.rescan_after_gap(seconds)

    def _perform(self) -> Outcome:
        pre = self._prefetched.result() if self._prefetched is not None else None
        if pre is not None:
            # computed on a worker thread while the web engine started (same checks)
            self._apps_loaded = pre.apps
            log.guards.debug("Pre-checks from %.2f s ago", time.monotonic() - pre.at)
            vm, first_scan = pre.vm, pre.findings
        else:
            vm, first_scan = self._vm(), None
        result = apply_policy(
            "virtual_machine",
            self._settings["guards.virtual_machine"],
            vm.virtual,
            vm.as_dict(),
            self._sink,
        )
        if not self._note(result):
            return result.outcome
        remote = pre.remote if pre is not None else self._remote()
        if pre is None:
            log.phase("pre-checks")
        result = apply_policy(
            "remote_session",
            self._settings["guards.remote_session"],
            remote.remote,
            remote.as_dict(),
            self._sink,
        )
        if not self._note(result):
            return result.outcome
        policy = self._settings["guards.prohibited_apps"]
        if policy == "allow":
            return Outcome.SUCCESS
        outcome = self._precheck(can_close=policy == "close", first=first_scan)
        if outcome is not Outcome.SUCCESS:
            return outcome
        return self._start_watcher(terminate=policy == "close")

    def _note(self, result: PolicyResult) -> bool:
        if result.outcome is not Outcome.SUCCESS:
            self.message_id = result.message_id
            return False
        if result.message_id:
            self.warnings.append(result.message_id)
        return True

    def _precheck(self, *, can_close: bool, first: PrecheckFindings | None = None) -> Outcome:
        check = ProhibitedAppsPrecheck(
            self._apps, self._sink, can_close, self._tcc, ledger=self.ledger, scope=self._scope
        )
        findings = first if first is not None and self._scope is None else check.scan()
        if findings.elsewhere:
            self._sink(Event("guards.prohibited_apps_elsewhere", findings.as_dict()))
        if findings.clear:
            return Outcome.SUCCESS
        self._sink(Event("guards.prohibited_apps_running", findings.as_dict()))
        cleared = self._prompt(check, findings) if self._prompt is not None else False
        final = check.scan() if cleared else findings
        self._sink(
            Event(
                "guards.prohibited_apps_precheck",
                {"cleared": final.clear, "cancelled": not cleared, **final.as_dict()},
            )
        )
        if final.clear:
            return Outcome.SUCCESS
        self.message_id = "guards.prohibited.not_closed"
        return Outcome.ABORTED

    def _start_watcher(self, *, terminate: bool) -> Outcome:
        guard = self._watcher_factory(self._apps, terminate)
        try:
            guard.start(self._sink)
        except GuardUnavailable as exc:
            choice = self._settings["guards.unavailable"]
            self._sink(
                Event(
                    "guards.unavailable",
                    {"guard": guard.name, "reason": str(exc), "policy": choice},
                )
            )
            log.guards.error("Process watcher cannot start: %s (policy %s)", exc, choice)
            if choice == "refuse":
                self.message_id = "guards.unavailable"
                self.message_values = {"guard": guard.name, "reason": str(exc)}
                return Outcome.ABORTED
            return Outcome.SUCCESS
        self.watcher = guard
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        self.watchdog.stop()
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
        self.ledger.finish(self._sink)
        return Outcome.SUCCESS
