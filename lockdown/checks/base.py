"""The system-check contract: a check, its result, and what it is given to look at.

A :class:`Check` looks at one thing (the clock, the disk, the upload …) and reports a
:class:`CheckResult`; it imports no UI and never decides what happens next. Candidate
texts are ids of :mod:`lockdown.texts` (the message, and a remedy when something is
wrong). Measured values go in ``measured`` (numbers with their unit in the name:
``offset_s``, ``free_mb``), everything else a support person may want in ``details``.
Checks that share a measurement (the upload test and the bandwidth it gives) leave it
in the :class:`CheckContext` under a name.

Qt-free and device-free: a check that needs a device (camera, microphone) lives in its
own module of this package and is listed like any other; a GUI runner drives the same
checks with its own progress callback.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


class Status(enum.Enum):
    PASS = "pass"  # noqa: S105 (a status, not a password)
    #: something is not as it should be, the exam may still go on
    WARN = "warn"
    FAIL = "fail"
    #: not checked here, with a reason (no service known, the exam does not need it)
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """What one check found.

    Attributes:
        status: PASS / WARN / FAIL / SKIP.
        message_id: the text (an id of :mod:`lockdown.texts`) that says what was found.
        values: the placeholders of the message and the remedy.
        remedy_id: the text that says how to fix it (None when nothing is to fix).
        measured: measured values, units in the names (``offset_s``, ``rate_kbps``).
        details: anything else worth showing support staff (JSON-able).
    """

    status: Status
    message_id: str
    values: Mapping[str, Any] = field(default_factory=dict)
    remedy_id: str | None = None
    measured: Mapping[str, float | int | None] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Service:
    """The proctoring service the exam names, and the exam's probe token (may be empty)."""

    url: str
    probe_token: str = ""


@dataclass
class CheckContext:
    """What checks look at: the effective settings, the exam's streams, the service.

    ``shared`` holds measurements checks pass on (the upload test's, for the bandwidth);
    it is written from the runner's worker threads one check at a time.
    """

    settings: Mapping[str, Any]
    #: the streams the exam records ("camera", "microphone", "screen")
    streams: tuple[str, ...]
    #: where the recording spool goes (the free-disk check looks at its file system)
    spool_folder: Path
    #: None when no service is known (no exam, or an exam without one)
    service: Service | None = None
    #: the exam configuration checked for (None: the built-in "all three streams" case)
    exam_origin: str | None = None
    #: the built-in demo (its camera is the test pattern, allowed in any build)
    demo: bool = False
    shared: dict[str, Any] = field(default_factory=dict)
    #: set when the runner gives up on the check (its time limit passed)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def proctored(self) -> bool:
        return bool(self.streams)


class Check(Protocol):
    """One step of the system check."""

    @property
    def id(self) -> str:
        """Stable identifier (``clock``, ``upload``): the JSON report and the service use it."""
        ...

    @property
    def title_id(self) -> str:
        """The step's name for people (an id of :mod:`lockdown.texts`)."""
        ...

    @property
    def blocking(self) -> bool:
        """A FAIL stops the exam (False: warning only, like the bandwidth)."""
        ...

    @property
    def main_thread(self) -> bool:
        """Must run on the runner's own thread (it asks the toolkit); others get a worker."""
        ...

    @property
    def time_limit(self) -> float | None:
        """Seconds this check may take; None: the runner's default."""
        ...

    def run(self, ctx: CheckContext) -> CheckResult:
        """Look, and say what was found; may raise (the runner reports it as a FAIL)."""
        ...


class CheckDefaults:
    """The usual static part of a check; each check class sets ``id`` and ``title_id``."""

    id: str = ""
    title_id: str = ""
    blocking: bool = True
    main_thread: bool = False
    time_limit: float | None = None
