"""The proctoring operation: start the recorders the exam switches on, stop them in revert.

``perform`` builds one recorder per stream switched on by ``proctoring.camera``,
``proctoring.microphone`` and ``proctoring.screen`` and starts each with the spool's
``add`` as its sink. A recorder whose device is missing still starts: it reports FAILED
in its health, journals why and keeps retrying, and the others record (the system check
decides beforehand whether the exam may start without it). Once each recorder's first
attempt to open its source is over, ``proctoring.started`` is journalled with the streams
that really record, and ``proctoring.not_started`` with the others and why (off the
calling thread: the exam's start does not wait for the devices).

``revert`` stops them, which finalizes and stores the last segments; it runs while the
kiosk is still up. All recorders are asked to stop at once and get one deadline together
(:data:`STOP_DEADLINE_S`, inside the session's wind-down deadline): a recorder whose
source or sink hangs journals ``recorder.stop_timeout`` and the revert goes on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from lockdown import log
from lockdown.capture.base import Health, Stream
from lockdown.capture.clock import CaptureClock
from lockdown.capture.recorders import (
    CameraRecorder,
    MicrophoneRecorder,
    ScreenRecorder,
    SegmentingRecorder,
)
from lockdown.events import Event, EventSink
from lockdown.lifecycle.base import Outcome
from lockdown.upload.base import SegmentStore

#: How long the recorders may take to stop, together (the session's wind-down allows
#: 20 s for the whole proctoring step, the spool's close included).
STOP_DEADLINE_S: Final = 10.0
#: How long ``proctoring.started`` waits for the recorders' first attempts to open.
START_WAIT_S: Final = 15.0

#: (setting that switches the stream on, stream)
SWITCHES: tuple[tuple[str, Stream], ...] = (
    ("proctoring.camera", Stream.CAMERA),
    ("proctoring.microphone", Stream.MICROPHONE),
    ("proctoring.screen", Stream.SCREEN),
)


def build_recorder(
    stream: Stream,
    settings: Mapping[str, Any],
    report: EventSink,
    *,
    clock: CaptureClock,
    first_seq: int = 0,
) -> SegmentingRecorder:
    """The recorder of ``stream`` configured from ``settings`` (proctoring.*)."""
    common: dict[str, Any] = {
        "report": report,
        "clock": clock,
        "segment_length": float(settings["proctoring.segment_length"]),
        "first_seq": first_seq,
    }
    if stream is Stream.CAMERA:
        return CameraRecorder(
            str(settings["proctoring.camera_source"]),
            width=int(settings["proctoring.camera_width"]),
            height=int(settings["proctoring.camera_height"]),
            fps=float(settings["proctoring.camera_fps"]),
            max_kbps=int(settings["proctoring.camera_max_kbps"]),
            **common,
        )
    if stream is Stream.MICROPHONE:
        return MicrophoneRecorder(
            str(settings["proctoring.microphone_device"]),
            rate=int(settings["proctoring.audio_rate"]),
            **common,
        )
    return ScreenRecorder(
        area=str(settings["proctoring.screen_area"]),
        max_width=int(settings["proctoring.screen_max_width"]),
        fps=float(settings["proctoring.screen_fps"]),
        activity_fps=float(settings["proctoring.screen_activity_fps"]),
        **common,
    )


class ProctoringOperation:
    """Records the streams the exam switches on, into ``spool``, for the exam's duration.

    Args:
        settings: the session's frozen settings.
        report: the journal sink.
        spool: where finished segments go (``spool.add``); its ``next_seq`` (when it has
            one) continues the numbering after a restart.
        streams: record only these (default: the ones the settings switch on).
        clock: the capture clock (default: a new one journalling to ``report``).
        stop_deadline: how long :meth:`revert` waits for the recorders to stop.
    """

    name = "proctoring"

    def __init__(
        self,
        settings: Mapping[str, Any],
        report: EventSink,
        spool: SegmentStore,
        *,
        streams: tuple[Stream, ...] | None = None,
        clock: CaptureClock | None = None,
        stop_deadline: float = STOP_DEADLINE_S,
    ) -> None:
        self._settings = settings
        self._report = report
        self._spool = spool
        self._streams = streams
        self.clock = clock or CaptureClock(report)
        self.stop_deadline = stop_deadline
        self.recorders: list[SegmentingRecorder] = []
        self._announce_lock = threading.Lock()
        self._announced = True
        self._watcher: threading.Thread | None = None

    def streams(self) -> tuple[Stream, ...]:
        """The streams this operation records."""
        if self._streams is not None:
            return self._streams
        return tuple(stream for key, stream in SWITCHES if self._settings[key])

    def perform(self) -> Outcome:
        streams = self.streams()
        if not streams:
            log.capture.info("Proctoring records nothing in this exam")
            return Outcome.SUCCESS
        next_seq: Callable[[Stream], int] | None = getattr(self._spool, "next_seq", None)
        try:
            for stream in streams:
                first = next_seq(stream) if next_seq is not None else 0
                self.recorders.append(
                    build_recorder(
                        stream, self._settings, self._report, clock=self.clock, first_seq=first
                    )
                )
        except Exception as exc:
            log.capture.exception("Cannot set up the recorders")
            self._report(Event("proctoring.failed", {"reason": str(exc)}))
            self.recorders.clear()
            return Outcome.FAILED
        self._announced = False
        for recorder in self.recorders:
            recorder.start(self._spool.add)
        self._watcher = threading.Thread(
            target=self._announce_when_opened, name="proctoring-start", daemon=True
        )
        self._watcher.start()
        return Outcome.SUCCESS

    def _announce_when_opened(self) -> None:
        deadline = time.monotonic() + START_WAIT_S
        for recorder in list(self.recorders):
            recorder.first_attempt.wait(max(0.0, deadline - time.monotonic()))
        self._announce()

    def _announce(self) -> None:
        """Journal, once, which streams really record and which do not (and why)."""
        with self._announce_lock:
            if self._announced:
                return
            self._announced = True
            started: list[str] = []
            not_started: dict[str, str] = {}
            for recorder in self.recorders:
                health = recorder.health()
                if recorder.ran:
                    started.append(recorder.kind.value)
                elif not recorder.first_attempt.is_set():
                    not_started[recorder.kind.value] = "still opening its source"
                else:
                    not_started[recorder.kind.value] = health.reason or health.state.value
            if started:
                self._report(Event("proctoring.started", {"streams": started}))
            if not_started:
                log.capture.error("Not recording: %s", not_started)
                self._report(Event("proctoring.not_started", {"streams": not_started}))

    def revert(self) -> Outcome:
        outcome = Outcome.SUCCESS
        self._announce()
        deadline = time.monotonic() + self.stop_deadline
        for recorder in self.recorders:
            recorder.request_stop()
        for recorder in reversed(self.recorders):
            try:
                if not recorder.stop(timeout=max(0.0, deadline - time.monotonic())):
                    outcome = Outcome.FAILED
            except Exception:
                log.capture.exception("Stopping the %s recorder", recorder.kind.value)
                outcome = Outcome.FAILED
        if self.recorders:
            self._report(
                Event(
                    "proctoring.stopped",
                    {r.kind.value: {"segments": r.stats.segments} for r in self.recorders},
                )
            )
        self.recorders.clear()
        return outcome

    def health(self) -> dict[Stream, Health]:
        """Each running recorder's health (for the UI and the session status)."""
        return {r.kind: r.health() for r in self.recorders}
