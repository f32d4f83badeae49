"""Recorders: a worker thread per stream that captures, analyses, encodes and segments.

:class:`SegmentingRecorder` holds what every stream shares: the worker thread, the
segment bookkeeping (sequence numbers, capture-clock start and end), a delivery thread
that hands finished segments to the sink (the spool) so a slow disk never stalls capture,
the health state, and the retry with back-off when a device cannot be opened or is lost.
:class:`CameraRecorder`, :class:`MicrophoneRecorder` and :class:`ScreenRecorder` add their
source and analysers. A failure in one recorder never touches the others.

Nothing a recorder meets ends it silently: any exception leaving its source's open or
its capture loop sets FAILED with the reason, is journalled and retried with back-off.
It never hangs the caller either: :meth:`SegmentingRecorder.stop` has a deadline, and the
hand-off to the sink is bounded (a segment that cannot be handed over is journalled).

Journal events (payload always has ``stream``): ``recorder.started`` (``backend``),
``recorder.unavailable`` (``reason``, ``retry_in``), ``recorder.lost`` (``reason``),
``recorder.failed`` (``reason``, ``error``, ``phase``, ``retry_in``),
``recorder.recovered`` (``backend``), ``recorder.segment_lost`` (``segment``, ``reason``),
``recorder.stop_timeout`` (``seconds``, ``waiting_for``, ``in_progress``, ``storing``,
``lost``), ``recorder.stalled`` (``seconds``, ``in_progress``) and ``recorder.resumed``,
``recorder.stopped`` (``segments``, ``bytes``), the microphone's
``microphone.dropped`` and ``microphone.resynced``, and the ``hint.*`` events of
:mod:`lockdown.capture.analyzers`.
"""

from __future__ import annotations

import bisect
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import numpy as np

from lockdown import log
from lockdown.capture.analyzers import (
    FaceCheck,
    Finding,
    HintReporter,
    TooDarkCheck,
    VoiceActivity,
    downscale_gray,
)
from lockdown.capture.base import Health, Segment, SegmentSink, State, Stream
from lockdown.capture.clock import CaptureClock
from lockdown.capture.encoder import (
    AUDIO_MIME,
    VIDEO_MIME,
    AudioSegmentEncoder,
    EncoderError,
    Frame,
    Samples,
    VideoSegmentEncoder,
    VP9Encoder,
)
from lockdown.capture.sources import (
    MIC_RING_SECONDS,
    AudioBlock,
    FrameSource,
    MicrophoneSource,
    ScreenSource,
    SourceError,
    SourceLost,
    open_camera,
)
from lockdown.events import Event, EventSink

_DONE: Final = object()
#: How long :meth:`SegmentingRecorder.stop` waits for its threads by default.
STOP_TIMEOUT_S: Final = 8.0
#: Finished segments that may wait for the sink; one more waits :data:`HANDOFF_TIMEOUT_S`
#: for room, then it is dropped and journalled (the sink has taken nothing for minutes).
MAX_PENDING: Final = 8
HANDOFF_TIMEOUT_S: Final = 1.0
#: A running recorder that captured nothing for this long is stalled (a source read that
#: does not return); the microphone's own stall check (3 s, 9 s at the start) comes first.
STALL_AFTER_S: Final = 10.0
#: Longest reason text journalled for an unexpected error.
_REASON_CHARS: Final = 300


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``initial``, doubling, at most ``maximum`` seconds."""

    initial: float = 1.0
    maximum: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.maximum, self.initial * 2 ** min(attempt, 16)))


@dataclass
class RecorderStats:
    """Counters for progress reports and the benchmark."""

    segments: int = 0
    bytes: int = 0
    units: int = 0
    seconds: float = 0.0
    lost_segments: int = 0
    #: unexpected errors that ended a recording attempt (each retried), and the last one
    failures: int = 0
    last_failure: str = ""
    #: seconds from a segment's last capture to the sink having stored it
    latencies: list[float] = field(default_factory=list)


def unexpected(exc: BaseException) -> str:
    """The reason text of an error no source or encoder expected (its type named)."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    text = " ".join(str(exc).split())
    reason = f"unexpected error ({name}: {text})" if text else f"unexpected error ({name})"
    return reason if len(reason) <= _REASON_CHARS else reason[: _REASON_CHARS - 1] + "…"


class Tally:
    """Counts journalled as one event at most every ``interval`` seconds (the first at
    once); :meth:`flush` journals what is still counted, so nothing is left out."""

    def __init__(self, emit: Callable[[dict[str, float]], None], interval: float) -> None:
        self._emit = emit
        self.interval = interval
        self._counts: dict[str, float] = {}
        self._last = -float("inf")
        self.totals: dict[str, float] = {}

    def add(self, now: float, **counts: float) -> None:
        for key, value in counts.items():
            if value:
                self._counts[key] = self._counts.get(key, 0) + value
                self.totals[key] = self.totals.get(key, 0) + value
        if self._counts and now - self._last >= self.interval:
            self._last = now
            self.flush()

    def flush(self) -> None:
        counts, self._counts = self._counts, {}
        if counts:
            self._emit(counts)


class _OpenSegment:
    def __init__(
        self,
        seq: int,
        start: float,
        encoder: VideoSegmentEncoder | AudioSegmentEncoder,
        clock: CaptureClock,
    ):
        self.seq = seq
        self.start = start
        self.encoder = encoder
        #: the capture clock's epoch: every stamp of the segment maps to UTC in it
        self.epoch = clock.epoch
        self.start_utc = clock.utc(start, epoch=self.epoch)
        #: the stamp of the last capture in it
        self.last = start


class SegmentingRecorder:
    """The shared machinery; subclasses implement ``_open``, ``_loop`` and ``_close``.

    Args:
        report: the journal sink.
        clock: the session's capture clock.
        segment_length: seconds per segment.
        first_seq: the first sequence number (continues a spool's numbering).
        backoff: retry delays after a source could not be opened, was lost or failed.
        hint_interval: at most one hint of a kind this often.
        stop_timeout: how long :meth:`stop` waits for the capture and hand-over threads.
        max_pending: finished segments that may wait for the sink.
        handoff_timeout: how long a finished segment waits for room among them.
        stall_after: seconds without a capture before a running recorder is stalled.
    """

    kind_value: Stream = Stream.CAMERA
    mime: str = VIDEO_MIME

    def __init__(
        self,
        *,
        report: EventSink,
        clock: CaptureClock | None = None,
        segment_length: float = 30.0,
        first_seq: int = 0,
        backoff: Backoff | None = None,
        hint_interval: float = 30.0,
        stop_timeout: float = STOP_TIMEOUT_S,
        max_pending: int = MAX_PENDING,
        handoff_timeout: float = HANDOFF_TIMEOUT_S,
        stall_after: float = STALL_AFTER_S,
    ) -> None:
        self._report = report
        self.clock = clock or CaptureClock()
        self.segment_length = segment_length
        self._next_seq = first_seq
        self._backoff = backoff or Backoff()
        self.hints = HintReporter(report, self.kind_value, self.clock, interval=hint_interval)
        self.stats = RecorderStats()
        self.stop_timeout = stop_timeout
        self._handoff_timeout = handoff_timeout
        self._stall_after = stall_after
        #: when the source last gave something (monotonic; 0: not open)
        self._captured = 0.0
        #: why the recorder is stalled ("" while it is not)
        self._stalled = ""
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._delivery: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, max_pending))
        self._sink: SegmentSink | None = None
        self._segment: _OpenSegment | None = None
        #: (start mono, seq) of recent segments, to map a hint's onset into a segment
        self._starts: list[tuple[float, int]] = []
        #: capture stamp of each handed-over segment's end, for the latency figure
        self._ends: dict[int, float] = {}
        self._lock = threading.Lock()
        #: held while a segment is handed over, and while the stop gives up on capture
        self._handoff_lock = threading.Lock()
        #: the stop gave up on the capture thread: nothing it finishes later is handed over
        self._late = threading.Event()
        #: the stop gave up on the hand-over thread: it takes nothing more from the queue
        self._cut_off = threading.Event()
        #: the seq the sink is storing right now (None between segments)
        self._storing: int | None = None
        self._source_health = Health(State.STOPPED)
        self._spool_problem = ""
        self._stop_problem = ""
        self.backend = ""
        #: how many times the source was (re)opened, successfully or not
        self.attempts = 0
        #: set once the first attempt to open the source is over (either way)
        self.first_attempt = threading.Event()
        #: the source opened at least once (``recorder.started`` was journalled)
        self.ran = False

    # -- Recorder protocol ------------------------------------------------------------

    @property
    def kind(self) -> Stream:
        return self.kind_value

    def start(self, sink: SegmentSink) -> None:
        if self._worker is not None:
            raise RuntimeError(f"{self.kind.value} recorder already started")
        log.init.info("Starting the %s recorder", self.kind.value)
        self._sink = sink
        self._stopping.clear()
        self._delivery = threading.Thread(
            target=self._deliver, name=f"{self.kind.value}-delivery", daemon=True
        )
        self._worker = threading.Thread(
            target=self._run, name=f"{self.kind.value}-recorder", daemon=True
        )
        self._delivery.start()
        self._worker.start()

    def request_stop(self) -> None:
        """Ask the capture thread to stop, without waiting (:meth:`stop` waits)."""
        self._stopping.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop, hand the last segments to the sink, within ``timeout`` seconds (default
        :attr:`stop_timeout`); False when a thread did not finish in time.

        Past the deadline the stop goes on regardless, and journals
        ``recorder.stop_timeout``: what it waited for (``capture``: a source read that
        never returns; ``delivery``: a sink that blocks), the segment in progress that
        is lost with the capture thread (``in_progress``), the one the sink was storing
        and may still store (``storing``), and the finished ones that were never handed
        over (``lost``, each also a ``recorder.segment_lost``). The threads are daemons
        left behind; what they do later is never handed over.
        """
        worker, delivery = self._worker, self._delivery
        if worker is None or delivery is None:
            return True
        limit = self.stop_timeout if timeout is None else timeout
        deadline = time.monotonic() + max(0.0, limit)
        self._stopping.set()
        # A quarter of the time is kept for the hand-over: a capture thread that hangs
        # does not cost the segments it finished before.
        worker.join(max(0.0, deadline - limit / 4 - time.monotonic()))
        waiting: list[str] = []
        in_progress: int | None = None
        if worker.is_alive():
            waiting.append("capture")
            with self._handoff_lock:
                self._late.set()
                segment = self._segment
                in_progress = segment.seq if segment is not None else None
        with contextlib.suppress(queue.Full):
            self._queue.put(_DONE, timeout=max(0.0, deadline - time.monotonic()))
        delivery.join(max(0.0, deadline - time.monotonic()))
        lost: list[int] = []
        storing: int | None = None
        if delivery.is_alive():
            waiting.append("delivery")
            with self._lock:  # against the hand-over thread taking its next segment
                self._cut_off.set()
                storing = self._storing
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not _DONE:
                    lost.append(item.seq)
        self._worker = self._delivery = None
        if waiting:
            reason = f"did not stop within {limit:g} s (waiting for {' and '.join(waiting)})"
            log.capture.error("The %s recorder %s", self.kind.value, reason)
            if in_progress is not None:
                self._lose(in_progress, "the capture did not stop in time")
            for seq in lost:
                self._lose(seq, "not handed to the spool before the stop deadline")
            self._event(
                "recorder.stop_timeout",
                seconds=limit,
                waiting_for=waiting,
                in_progress=in_progress,
                storing=storing,
                lost=lost,
            )
            with self._lock:
                self._stop_problem = reason
            self._set_source(Health(State.FAILED, reason, self.backend))
        else:
            self._set_source(Health(State.STOPPED, backend=self.backend))
        self._event("recorder.stopped", segments=self.stats.segments, bytes=self.stats.bytes)
        log.capture.info(
            "Stopped the %s recorder: %d segments, %d bytes",
            self.kind.value,
            self.stats.segments,
            self.stats.bytes,
        )
        return not waiting

    def health(self) -> Health:
        with self._lock:
            health = self._source_health
            if self._stop_problem:
                return Health(State.FAILED, self._stop_problem, health.backend)
            if self._stalled and health.state is State.RUNNING:
                return Health(State.FAILED, self._stalled, health.backend)
            if self._spool_problem and health.state is State.RUNNING:
                return Health(State.DEGRADED, self._spool_problem, health.backend)
            return health

    # -- for subclasses ---------------------------------------------------------------

    def _open(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def _new_encoder(self) -> VideoSegmentEncoder | AudioSegmentEncoder:
        raise NotImplementedError

    def _units_duration(self, segment: _OpenSegment, end: float) -> tuple[int, float]:
        raise NotImplementedError

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _wait_until(self, mono: float) -> bool:
        """Sleep until ``mono``; False when the recorder is stopping."""
        delay = mono - time.monotonic()
        if delay > 0:
            return not self._stopping.wait(delay)
        return not self._stopping.is_set()

    def _begin(self, mono: float) -> _OpenSegment:
        """A new segment starting at ``mono`` (the current one must be finished)."""
        segment = _OpenSegment(self._next_seq, mono, self._new_encoder(), self.clock)
        self._next_seq += 1
        self._segment = segment
        self._starts.append((mono, segment.seq))
        del self._starts[:-64]
        return segment

    def _current(self, mono: float, period: float = 0.0) -> _OpenSegment:
        """The segment a capture at ``mono`` belongs in (rolled over when due, and where
        the capture clock saw a suspend: no segment spans one)."""
        segment = self._segment
        if segment is not None and segment.epoch != self.clock.epoch:
            self._finish(segment.last + period)
            segment = None
        if segment is not None and mono - segment.start >= self.segment_length:
            self._finish(mono)
            segment = None
        if segment is None:
            segment = self._begin(mono)
        segment.last = mono
        self._captured = time.monotonic()
        return segment

    def _finish(self, end: float) -> None:
        """Finalize the open segment (ending at capture stamp ``end``) and hand it over;
        a segment that cannot be finalized is journalled as lost."""
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            data = segment.encoder.finish()
            units, duration = self._units_duration(segment, end)
        except Exception as exc:
            reason = str(exc) if isinstance(exc, EncoderError) else unexpected(exc)
            with contextlib.suppress(Exception):
                segment.encoder.abandon()
            self._lose(segment.seq, reason)
            return
        if units == 0:
            return
        self._handoff(
            Segment(
                stream=self.kind,
                seq=segment.seq,
                start_utc=segment.start_utc,
                end_utc=segment.start_utc + timedelta(seconds=duration),
                duration=duration,
                units=units,
                mime=self.mime,
                data=data,
            ),
            segment.start + duration,
        )

    def _handoff(self, segment: Segment, end: float) -> None:
        """Queue ``segment`` for the sink: wait at most the hand-off timeout for room,
        then drop it, journalled (capture never waits on a blocked sink for longer)."""
        with self._handoff_lock:
            if self._late.is_set():
                # the stop gave up on this thread and journalled its segment as lost
                log.capture.warning(
                    "%s segment %d finished after the stop deadline: not stored",
                    self.kind.value,
                    segment.seq,
                )
                return
            self._ends[segment.seq] = end
            try:
                self._queue.put(segment, timeout=self._handoff_timeout)
            except queue.Full:
                self._ends.pop(segment.seq, None)
                waiting = self._queue.qsize()
                reason = f"the spool took no segment for a while ({waiting} waiting)"
                with self._lock:
                    self._spool_problem = reason
                self._lose(segment.seq, reason)

    def _hint(self, finding: Finding | None, mono: float) -> None:
        if finding is None:
            return
        onset = float(finding.details.pop("onset", mono))
        index = bisect.bisect_right(self._starts, (onset, float("inf"))) - 1
        start, seq = self._starts[max(0, index)] if self._starts else (onset, self._next_seq)
        self.hints(finding, mono=onset, segment=seq, offset=onset - start)

    # -- internals ----------------------------------------------------------------------

    def _event(self, kind: str, **payload: Any) -> None:
        try:
            self._report(Event(kind, {"stream": self.kind.value, **payload}))
        except Exception:
            log.capture.exception("Could not journal %s", kind)

    def _set_source(self, health: Health) -> None:
        with self._lock:
            self._source_health = health

    def _lose(self, seq: int, reason: str) -> None:
        self.stats.lost_segments += 1
        log.capture.error("%s segment %d lost: %s", self.kind.value, seq, reason)
        self._event("recorder.segment_lost", segment=seq, reason=reason)

    def _run(self) -> None:
        """The capture thread: record until stopped; nothing that goes wrong ends it
        silently (an error of the loop itself is journalled and retried too)."""
        crashes = 0
        try:
            while not self._stopping.is_set():
                try:
                    self._record()
                except Exception as exc:  # a fault in the machinery itself, not a source's
                    log.capture.exception("%s recorder thread failed", self.kind.value)
                    delay = self._backoff.delay(crashes)
                    crashes += 1
                    self._failed(unexpected(exc), exc, delay, "recorder")
                    self.first_attempt.set()
                    self._stopping.wait(delay)
        finally:
            self.first_attempt.set()

    def _failed(self, reason: str, exc: BaseException, retry_in: float, phase: str) -> None:
        self.stats.failures += 1
        self.stats.last_failure = reason
        self._set_source(Health(State.FAILED, reason, self.backend))
        log.capture.error(
            "%s recorder failed (%s): %s; retrying in %.0f s",
            self.kind.value,
            phase,
            reason,
            retry_in,
        )
        self._event(
            "recorder.failed",
            reason=reason,
            error=type(exc).__name__,
            phase=phase,
            retry_in=retry_in,
        )

    def _record(self) -> None:
        attempt = 0
        ever_ran = self.ran
        last_reason = ""
        lost_at = 0.0
        while not self._stopping.is_set():
            self.attempts += 1
            try:
                self._open()
            except Exception as exc:
                delay = self._backoff.delay(attempt)
                attempt += 1
                if not isinstance(exc, (SourceError, EncoderError, OSError)):
                    with contextlib.suppress(Exception):
                        self._close()
                    reason = unexpected(exc)
                    if reason != last_reason:  # journalled once per reason, like the others
                        log.capture.exception("Opening the %s source", self.kind.value)
                        self._failed(reason, exc, delay, "open")
                        last_reason = reason
                    else:
                        self.stats.failures += 1
                        self._set_source(Health(State.FAILED, reason, self.backend))
                    self.first_attempt.set()
                    self._stopping.wait(delay)
                    continue
                reason = str(exc)
                self._set_source(
                    Health(State.DEGRADED if ever_ran else State.FAILED, reason, self.backend)
                )
                if reason != last_reason:
                    log.capture.warning(
                        "%s recorder: %s; retrying in %.0f s", self.kind.value, reason, delay
                    )
                    self._event("recorder.unavailable", reason=reason, retry_in=delay)
                    last_reason = reason
                self.first_attempt.set()
                self._stopping.wait(delay)
                continue
            last_reason = ""
            self._captured = time.monotonic()
            self._set_source(Health(State.RUNNING, backend=self.backend))
            if ever_ran:
                self._event(
                    "recorder.recovered",
                    backend=self.backend,
                    after=round(time.monotonic() - lost_at, 1),
                )
            else:
                self._event("recorder.started", backend=self.backend)
            ever_ran = self.ran = True
            self.first_attempt.set()
            problem = ""
            failure: BaseException | None = None
            began = time.monotonic()
            try:
                self._loop()
            except (SourceLost, EncoderError) as exc:
                problem = str(exc)
            except Exception as exc:
                log.capture.exception("%s recorder crashed", self.kind.value)
                problem, failure = unexpected(exc), exc
            finally:
                try:
                    self._finish(self.clock.now())
                except Exception as exc:  # _finish journals its own losses; belt and braces
                    log.capture.exception("Finishing the %s segment", self.kind.value)
                    problem, failure = problem or unexpected(exc), failure or exc
                try:
                    self._close()
                except Exception:
                    log.capture.exception("Closing the %s source", self.kind.value)
            if not problem:
                continue
            lost_at = time.monotonic()
            # A loop that ran a while starts the back-off over; one that fails at once
            # backs off further each time (a crash loop costs little).
            attempt = 0 if lost_at - began >= self._backoff.maximum else attempt
            delay = self._backoff.delay(attempt)
            attempt += 1
            if failure is not None:
                self._failed(problem, failure, delay, "recording")
            else:
                log.capture.error("%s recorder lost its source: %s", self.kind.value, problem)
                self._set_source(Health(State.DEGRADED, problem, self.backend))
                self._event("recorder.lost", reason=problem)
            last_reason = problem
            self._stopping.wait(delay)

    def _watch(self) -> None:
        """Journal a running recorder whose source stopped giving anything (a read that
        does not return: nothing else would tell), and its coming back."""
        if self._stopping.is_set():
            return
        with self._lock:
            running = self._source_health.state is State.RUNNING
        idle = time.monotonic() - self._captured
        if not self._stalled and running and self._captured and idle >= self._stall_after:
            segment = self._segment
            self._stalled = f"no capture for {idle:.0f} s (the source does not answer)"
            log.capture.error("The %s recorder stalled: %s", self.kind.value, self._stalled)
            self._event(
                "recorder.stalled",
                seconds=round(idle, 1),
                in_progress=segment.seq if segment is not None else None,
            )
        elif self._stalled and idle < self._stall_after:
            self._stalled = ""
            log.capture.info("The %s recorder captures again", self.kind.value)
            self._event("recorder.resumed")

    def _deliver(self) -> None:
        every = max(0.05, min(1.0, self._stall_after / 4))
        while not self._cut_off.is_set():
            try:
                item = self._queue.get(timeout=every)
            except queue.Empty:
                self._watch()
                continue
            self._watch()
            if item is _DONE:
                return
            segment: Segment = item
            sink = self._sink
            assert sink is not None
            with self._lock:
                if self._cut_off.is_set():  # taken just as the stop gave up on this thread
                    self._lose(segment.seq, "not handed to the spool before the stop deadline")
                    return
                self._storing = segment.seq
            try:
                sink(segment)
            except Exception as exc:  # SpoolError above all; never let it kill delivery
                reason = f"spool: {exc}"
                with self._lock:
                    self._spool_problem = reason
                self._lose(segment.seq, reason)
                continue
            finally:
                self._storing = None
            done = time.monotonic()
            self.stats.segments += 1
            self.stats.bytes += len(segment.data)
            self.stats.units += segment.units
            self.stats.seconds += segment.duration
            end = self._ends.pop(segment.seq, None)
            if end is not None:
                self.stats.latencies.append(done - end)
            with self._lock:
                if self._spool_problem:
                    self._spool_problem = ""
                    log.capture.info("%s segments are stored again", self.kind.value)


class _VideoRecorder(SegmentingRecorder):
    fps: float = 15.0
    #: the VP9 encoder kept across segments (a new one for a new size or after an error)
    _codec: VP9Encoder | None = None

    def _segment_encoder(
        self, width: int, height: int, fps: float, **options: Any
    ) -> VideoSegmentEncoder:
        codec = self._codec
        if codec is None or codec.broken or (codec.width, codec.height) != (width, height):
            codec = self._codec = VP9Encoder(width, height, fps, **options)
        return codec.segment()

    def _units_duration(self, segment: _OpenSegment, end: float) -> tuple[int, float]:
        frames = segment.encoder.frames if isinstance(segment.encoder, VideoSegmentEncoder) else 0
        return frames, round(max(0.0, end - segment.start), 3)

    def _encode(self, frame: Frame, mono: float) -> None:
        segment = self._current(mono, 1.0 / self.fps)
        encoder = segment.encoder
        assert isinstance(encoder, VideoSegmentEncoder)
        if frame.shape[1] != encoder.width or frame.shape[0] != encoder.height:
            # The source changed size (a screen was added): start a new segment.
            self._finish(mono)
            segment = self._current(mono)
            encoder = segment.encoder
            assert isinstance(encoder, VideoSegmentEncoder)
        encoder.add(frame, mono - segment.start)


class CameraRecorder(_VideoRecorder):
    """Camera frames at ``fps``, with the too-dark and face hints.

    Args:
        source: ``proctoring.camera_source`` (index, name, video file or "pattern").
        analysis_interval: seconds between two looks for darkness.
        face_interval: seconds between two looks for faces while the count is settled
            (the costlier analyser, ~20 ms a look at 320 px: every 2.5 s is 0.8 % of a
            core). A new count is first seen up to this long after it began.
        face_confirm_interval: seconds between looks while a new count waits out its
            persistence (so a change is confirmed, or a glance away dropped, on time).
        face_persistence: seconds a face count must hold before it is a hint.
        dark_frames: consecutive dark looks before a too-dark hint.
        opener: opens the source (default: :func:`open_camera` of ``source``).
    """

    kind_value = Stream.CAMERA

    def __init__(
        self,
        source: str,
        *,
        width: int = 640,
        height: int = 480,
        fps: float = 15.0,
        max_kbps: int = 96,
        analysis_interval: float = 0.5,
        face_interval: float = 2.5,
        face_confirm_interval: float = 1.0,
        face_persistence: float = 3.0,
        dark_frames: int = 3,
        opener: Callable[[], FrameSource] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._spec = source
        self._opener = opener
        self.width = width
        self.height = height
        self.fps = fps
        self._max_kbps = max_kbps
        self._analysis_interval = analysis_interval
        self._face_interval = face_interval
        self._face_confirm_interval = min(face_interval, face_confirm_interval)
        self._next_face = 0.0
        self._source: FrameSource | None = None
        self.dark = TooDarkCheck(dark_frames)
        self.faces = FaceCheck(face_persistence)

    def _open(self) -> None:
        if self._opener is not None:
            self._source = self._opener()
        else:
            self._source = open_camera(
                self._spec, width=self.width, height=self.height, fps=self.fps
            )
        self.backend = self._source.description

    def _close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _new_encoder(self) -> VideoSegmentEncoder:
        return self._segment_encoder(
            self.width - self.width % 2,
            self.height - self.height % 2,
            self.fps,
            max_kbps=self._max_kbps,
            # One thread encodes a 640x480 frame in ~5 ms, 8 % less CPU than two
            # (no hand-over between threads); a camera frame comes every 67 ms.
            threads=1,
        )

    def _loop(self) -> None:
        source = self._source
        assert source is not None
        period = 1.0 / self.fps
        next_frame = time.monotonic()
        next_look = next_frame
        while True:
            if source.paced and not self._wait_until(next_frame):
                return
            if self.stopping:
                return
            frame = source.read()
            mono = self.clock.now()
            next_frame = max(next_frame + period, mono - period)
            self._encode(frame, mono)
            if mono >= next_look:
                next_look = mono + self._analysis_interval
                self._analyse(frame, mono)

    def _analyse(self, frame: Frame, mono: float) -> None:
        gray = downscale_gray(frame)
        self._hint(self.dark.feed(gray, mono), mono)
        if self.dark.dark_frames or mono < self._next_face:
            return  # faces cannot be seen in the dark; the dark hint says it
        self._hint(self.faces.feed(gray, mono), mono)
        confirming = self.faces.changing
        self._next_face = mono + (
            self._face_confirm_interval if confirming else self._face_interval
        )


#: Seconds after a microphone stream's first block during which its first segment's start
#: follows the blocks' dates (they settle) instead of the samples being corrected.
SETTLE_S: Final = 2.0


class MicrophoneRecorder(SegmentingRecorder):
    """Mono audio at ``rate`` Hz from a named or the default input, with voice hints.

    Audio is counted in samples, so a segment's length is its sample count; each block is
    also dated on the capture clock, and the two are kept together (**drift**, both ways):
    a block that comes later than the samples so far reach (a device clock slower than
    the computer's, dropped blocks) gets silence inserted before it, one that comes
    earlier (a faster device clock) loses its overlapping start, once they differ by more
    than ``drift_tolerance``; a gap over ``max_fill`` (a stall, a long drop) ends the
    segment and the next begins at the block. Journalled, rate-limited, as
    ``microphone.resynced`` (``silence_s``, ``dropped_s``, ``gaps``) and what never reached
    the recorder as ``microphone.dropped`` (``overflows``: PortAudio input overflows;
    ``blocks`` and ``seconds`` dropped from the full ring buffer).

    Args:
        device: part of the input's name (empty: the default input).
        rate: sample rate (Hz).
        kbps: Opus bitrate.
        batch: seconds between two takes of the captured blocks.
        ring_seconds: at most this much audio waits in the ring buffer.
        drift_tolerance: seconds the sample count and the clock may differ uncorrected.
        max_fill: the longest gap filled with silence (seconds).
        report_interval: at most one ``microphone.*`` event of a kind this often.
    """

    kind_value = Stream.MICROPHONE
    mime = AUDIO_MIME

    def __init__(
        self,
        device: str = "",
        *,
        rate: int = 16000,
        kbps: int = 16,
        batch: float = 0.5,
        ring_seconds: float = MIC_RING_SECONDS,
        drift_tolerance: float = 0.1,
        max_fill: float = 2.0,
        report_interval: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._device = device
        self._batch = batch
        self._ring_seconds = ring_seconds
        self._tolerance = drift_tolerance
        self._max_fill = max_fill
        #: capture time of the end of the last block taken
        self._audio_end = 0.0
        self.rate = rate
        self._kbps = kbps
        self._source: MicrophoneSource | None = None
        self.voice = VoiceActivity(rate)
        self._seg_samples = 0
        #: the source's counters as last journalled
        self._seen = (0, 0)
        #: the first segment of the open stream, and until when its dates settle
        self._settle_seq: int | None = None
        self._settle_until = 0.0
        self.drops = Tally(lambda c: self._event("microphone.dropped", **c), report_interval)
        self.resyncs = Tally(lambda c: self._event("microphone.resynced", **c), report_interval)

    @property
    def level_dbfs(self) -> float:
        """The recent sound level (for a level meter)."""
        return self.voice.level_dbfs

    def _open(self) -> None:
        source = MicrophoneSource(
            self._device, self.rate, ring_seconds=self._ring_seconds, now=self.clock.now
        )
        source.open()
        self._source = source
        self._seen = (0, 0)
        self._settle_seq = None
        self.backend = source.description

    def _close(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()
            self._count_drops(source)
        self.drops.flush()
        self.resyncs.flush()

    def _new_encoder(self) -> AudioSegmentEncoder:
        return AudioSegmentEncoder(self.rate, kbps=self._kbps)

    @staticmethod
    def _samples(segment: _OpenSegment) -> int:
        encoder = segment.encoder
        return encoder.samples if isinstance(encoder, AudioSegmentEncoder) else 0

    def _units_duration(self, segment: _OpenSegment, end: float) -> tuple[int, float]:
        samples = self._samples(segment)
        return samples, round(samples / self.rate, 6)

    def _count_drops(self, source: MicrophoneSource) -> None:
        """Journal (rate-limited) what the device and the ring dropped since last time."""
        overflows, blocks = source.overflows, source.dropped_blocks
        new_overflows, new_blocks = overflows - self._seen[0], blocks - self._seen[1]
        if new_overflows or new_blocks:
            self._seen = (overflows, blocks)
            self.drops.add(
                time.monotonic(),
                overflows=new_overflows,
                blocks=new_blocks,
                seconds=round(new_blocks * source.block_seconds, 3),
            )

    def _loop(self) -> None:
        source = self._source
        assert source is not None
        per_segment = round(self.segment_length * self.rate)
        # Blocks are taken a batch at a time: one wake-up every ``batch`` seconds instead
        # of one per 100 ms block (15 % less CPU for this thread); segments and hints come
        # at most that much later.
        while not self._stopping.wait(self._batch):
            for block in source.read(timeout=0.5):
                self._consume(block, per_segment)
            self._count_drops(source)
        # The stop: the sound up to now is still in the input buffer and in the block being
        # filled; keep taking until a block reaches the stop, for at most that long.
        stopped = self.clock.now()
        deadline = time.monotonic() + source.buffered + 2 * source.block_seconds
        while True:
            blocks = source.take()
            for block in blocks:
                self._consume(block, per_segment)
            if blocks and blocks[-1].mono + len(blocks[-1].samples) / self.rate >= stopped:
                return
            if time.monotonic() >= deadline:
                return
            time.sleep(0.02)

    def _consume(self, block: AudioBlock, per_segment: int) -> None:
        """Encode ``block`` where the clock says it belongs (silence before it, or its
        overlapping start dropped, when the samples so far drifted from the clock), across
        a segment boundary if it falls in one, and feed the voice analyser with it."""
        segment = self._segment
        if segment is not None and segment.epoch != self.clock.epoch:
            self._finish(self._audio_end)  # no segment spans a suspend
            segment = None
        samples = block.samples
        if segment is None:
            start = max(block.mono, self._audio_end)
            if self._settle_seq is None:
                self._settle_seq, self._settle_until = self._next_seq, start + SETTLE_S
        else:
            drift = block.mono - self._audio_end
            start = self._audio_end
            if (
                segment.seq == self._settle_seq
                and block.mono < self._settle_until
                and abs(drift) > 0.005
            ):
                # The first blocks of a stream are dated less well (see capture_age): the
                # segment's start follows the later dates; the samples are contiguous.
                self._shift(segment, drift)
                start = self._audio_end = self._audio_end + drift
            elif drift > self._max_fill:
                self._finish(self._audio_end)
                start = block.mono
                self.resyncs.add(time.monotonic(), gaps=1, gap_s=round(drift, 3))
            elif drift > self._tolerance:
                silence = round(drift * self.rate)
                self._append(np.zeros(silence, np.float32), start, per_segment)
                start += silence / self.rate
                self.resyncs.add(time.monotonic(), silence_s=round(silence / self.rate, 4))
            elif drift < -self._tolerance:
                drop = min(len(samples), round(-drift * self.rate))
                samples = samples[drop:]
                self.resyncs.add(time.monotonic(), dropped_s=round(drop / self.rate, 4))
        self._append(samples, start, per_segment)
        self._audio_end = start + len(samples) / self.rate
        self._captured = time.monotonic()
        step = max(1, self.rate // 20)  # voice activity looks at 50 ms pieces
        for i in range(0, len(samples), step):
            at = start + i / self.rate
            self._hint(self.voice.feed(samples[i : i + step], at), at)

    def _shift(self, segment: _OpenSegment, by: float) -> None:
        """Move ``segment`` (the first of a stream, still settling) ``by`` seconds."""
        segment.start += by
        segment.last += by
        segment.start_utc += timedelta(seconds=by)
        self._starts = [(m + by if seq == segment.seq else m, seq) for m, seq in self._starts]

    def _append(self, samples: Samples, mono: float, per_segment: int) -> None:
        """Encode ``samples`` starting at capture time ``mono``, rolling segments over."""
        while len(samples):
            segment = self._segment
            if segment is None or self._samples(segment) >= per_segment:
                if segment is not None:
                    self._finish(mono)
                segment = self._begin(mono)
            encoder = segment.encoder
            assert isinstance(encoder, AudioSegmentEncoder)
            room = per_segment - encoder.samples
            part, samples = samples[:room], samples[room:]
            encoder.add(part)
            mono += len(part) / self.rate
            segment.last = mono


class ScreenRecorder(_VideoRecorder):
    """The screen at ``fps``, plus up to ``activity_fps`` frames while it changes.

    The grabber (``mss.MSS``, or ``grabber()``) is made, used and closed in the
    recorder's own thread.
    """

    kind_value = Stream.SCREEN

    def __init__(
        self,
        *,
        area: str = "primary",
        max_width: int = 1280,
        fps: float = 1.0,
        activity_fps: float = 2.0,
        max_kbps: int = 0,
        grabber: Callable[[], Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._grabber = grabber
        self._area = area
        self._max_width = max_width
        self.fps = fps
        self._activity_fps = activity_fps
        self._max_kbps = max_kbps
        self._source: ScreenSource | None = None

    def _open(self) -> None:
        self._source = ScreenSource(self._area, self._max_width, grabber=self._grabber)
        self.backend = self._source.description

    def _close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _new_encoder(self) -> VideoSegmentEncoder:
        source = self._source
        assert source is not None
        return self._segment_encoder(
            source.width, source.height, max(self.fps, self._activity_fps), max_kbps=self._max_kbps
        )

    def _loop(self) -> None:
        source = self._source
        assert source is not None
        period = 1.0 / self.fps
        busy_period = 1.0 / self._activity_fps if self._activity_fps > 0 else period
        # Looking more often than activity frames may be taken only grabs the whole
        # screen for nothing (each look is a full-size grab).
        poll = min(period, busy_period)
        last_frame = -float("inf")
        last_thumb: np.ndarray[Any, Any] | None = None
        next_poll = time.monotonic()
        while self._wait_until(next_poll):
            bgra = source.grab()
            mono = self.clock.now()
            next_poll = max(next_poll + poll, mono)
            # A cheap look for activity: every 16th pixel of one channel (a copy: mss
            # reuses its buffer).
            thumb = bgra[::16, ::16, 1].astype(np.int16)
            changed = (
                last_thumb is not None
                and last_thumb.shape == thumb.shape
                and np.count_nonzero(np.abs(thumb - last_thumb) > 8) > thumb.size // 1000
            )
            segment = self._segment
            due = mono - last_frame >= period - 0.01 or (
                # a frame at the segment boundary keeps segments at their length
                segment is not None and mono - segment.start >= self.segment_length
            )
            if due or (changed and mono - last_frame >= busy_period - 0.01):
                self._encode(source.scale(bgra), mono)
                last_frame = mono
                last_thumb = thumb


RecorderFactory = Callable[[], SegmentingRecorder]
