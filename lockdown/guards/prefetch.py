"""The pre-exam checks, computed on a worker thread while the web engine starts.

:class:`PrecheckPrefetch` starts at once a plain thread (no Qt) that imports the guard
modules, loads the prohibited-apps list and runs what
:class:`~lockdown.guards.policy.SystemGuardsOperation` would otherwise run first on the
GUI thread: the virtual-machine score, the remote-session verdict and the first scan for
prohibited apps (:class:`Prechecks`). The operation still runs in its place in the
sequence and decides there; it only takes these results instead of computing them, and
computes them itself when the prefetch failed or took too long. Nothing here changes
the machine; the process watcher, started by the operation, rescans on its start, so an
app started after the prefetched scan is still seen.

When the exam records, the thread also imports the capture modules (OpenCV, PyAV,
NumPy), so the recording step does not wait for them on the GUI thread.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from lockdown import log

if TYPE_CHECKING:
    from lockdown.guards.appslist import AppList
    from lockdown.guards.policy import PrecheckFindings
    from lockdown.guards.remote import RemoteVerdict
    from lockdown.guards.vm import VmVerdict

#: How long the operation waits for the prefetch before computing the checks itself.
WAIT_S: Final = 30.0
#: The modules a recording exam needs, imported ahead on the worker thread.
RECORDING_MODULES: Final = ("lockdown.capture.operation", "lockdown.upload.spool")


@dataclass(frozen=True)
class Prechecks:
    """What the system guards would have computed first, and when it was computed."""

    apps: AppList
    vm: VmVerdict
    remote: RemoteVerdict
    findings: PrecheckFindings
    #: time.monotonic() when the scan finished
    at: float

    def let_start(self, settings: Mapping[str, Any]) -> bool:
        """True when the system guards will let the start go on without asking: nothing
        found that a ``deny`` policy refuses, and no prohibited app running."""
        if self.vm.virtual and settings["guards.virtual_machine"] == "deny":
            return False
        if self.remote.remote and settings["guards.remote_session"] == "deny":
            return False
        return settings["guards.prohibited_apps"] == "allow" or self.findings.clear


def _records(settings: Mapping[str, Any]) -> bool:
    return any(
        settings[key] for key in ("proctoring.camera", "proctoring.microphone", "proctoring.screen")
    )


class PrecheckPrefetch:
    """Runs the pre-exam checks on a worker thread from construction on."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = settings
        self._result: Prechecks | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="precheck-prefetch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._compute()
        except Exception:
            log.guards.exception("Pre-checks ahead of the start failed; computed in place")
        finally:
            self._done.set()
            log.phase("pre-checks")
        if _records(self._settings):
            for name in RECORDING_MODULES:
                try:
                    importlib.import_module(name)
                except Exception:  # the recording step imports it again and says why
                    log.capture.debug("Importing %s ahead failed", name, exc_info=True)

    def _compute(self) -> Prechecks:
        from lockdown.guards import remote, vm
        from lockdown.guards.appslist import AppList, current_os
        from lockdown.guards.policy import PrecheckFindings, default_tcc
        from lockdown.guards.processes import OwnTree, scan_running, snapshot

        os_name = current_os()
        apps = AppList.load(os_name=os_name).for_settings(self._settings)
        processes = snapshot(os_name)  # one walk of the process table for the three checks
        at = time.monotonic()  # the findings are as old as the walk
        machine = vm.detect([facts.name for facts in processes])
        session = remote.detect(apps, os_name, processes)
        elsewhere: list[Any] = []
        running = scan_running(apps.matcher(), OwnTree(), processes=processes, elsewhere=elsewhere)
        tcc = default_tcc(os_name, ("org.lockdown.Lockdown",))
        findings = PrecheckFindings(tuple(running), tuple(tcc()), tuple(elsewhere))
        return Prechecks(apps, machine, session, findings, at)

    def ready(self) -> Prechecks | None:
        """The checks when they are done (never waits)."""
        return self._result if self._done.is_set() else None

    def result(self, timeout: float = WAIT_S) -> Prechecks | None:
        """The checks (None when they failed or took longer than ``timeout``)."""
        if not self._done.wait(timeout):
            log.guards.warning("Pre-checks ahead of the start took over %.0f s", timeout)
            return None
        return self._result
