"""Recorders: a worker thread per stream that captures, analyses, encodes and segments.

:class:`SegmentingRecorder` holds what every stream shares: the worker thread, the
segment bookkeeping (sequence numbers, capture-clock start and end), a delivery thread
that hands finished segments to the sink (the spool) so a slow disk never stalls capture,
the health state, and the retry with back-off when a device cannot be opened or is lost.
:class:`CameraRecorder`, :class:`MicrophoneRecorder` and :class:`ScreenRecorder` add their
source and analysers. A failure in one recorder never touches the others.

Journal events (payload always has ``stream``): ``recorder.started`` (``backend``),
``recorder.unavailable`` (``reason``, ``retry_in``), ``recorder.lost`` (``reason``),
``recorder.recovered`` (``backend``), ``recorder.segment_lost`` (``segment``, ``reason``),
``recorder.stopped`` (``segments``, ``bytes``), and the ``hint.*`` events of
:mod:`lockdown.capture.analyzers`.
"""

from __future__ import annotations

import bisect
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
    VideoSegmentEncoder,
    VP9Encoder,
)
from lockdown.capture.sources import (
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
    #: seconds from a segment's last capture to the sink having stored it
    latencies: list[float] = field(default_factory=list)


class _OpenSegment:
    def __init__(self, seq: int, start: float, encoder: VideoSegmentEncoder | AudioSegmentEncoder):
        self.seq = seq
        self.start = start
        self.encoder = encoder


class SegmentingRecorder:
    """The shared machinery; subclasses implement ``_open``, ``_loop`` and ``_close``."""

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
    ) -> None:
        self._report = report
        self.clock = clock or CaptureClock()
        self.segment_length = segment_length
        self._next_seq = first_seq
        self._backoff = backoff or Backoff()
        self.hints = HintReporter(report, self.kind_value, self.clock, interval=hint_interval)
        self.stats = RecorderStats()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._delivery: threading.Thread | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._sink: SegmentSink | None = None
        self._segment: _OpenSegment | None = None
        #: (start mono, seq) of recent segments, to map a hint's onset into a segment
        self._starts: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        self._source_health = Health(State.STOPPED)
        self._spool_problem = ""
        self.backend = ""
        #: how many times the source was (re)opened, successfully or not
        self.attempts = 0

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

    def stop(self) -> None:
        worker, delivery = self._worker, self._delivery
        if worker is None or delivery is None:
            return
        self._stopping.set()
        worker.join()
        self._queue.put(_DONE)
        delivery.join()
        self._worker = self._delivery = None
        self._set_source(Health(State.STOPPED, backend=self.backend))
        self._event("recorder.stopped", segments=self.stats.segments, bytes=self.stats.bytes)
        log.capture.info(
            "Stopped the %s recorder: %d segments, %d bytes",
            self.kind.value,
            self.stats.segments,
            self.stats.bytes,
        )

    def health(self) -> Health:
        with self._lock:
            health = self._source_health
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

    def _current(self, mono: float) -> _OpenSegment:
        """The segment a capture at ``mono`` belongs in (rolled over when due)."""
        segment = self._segment
        if segment is not None and mono - segment.start >= self.segment_length:
            self._finish(mono)
            segment = None
        if segment is None:
            segment = _OpenSegment(self._next_seq, mono, self._new_encoder())
            self._next_seq += 1
            self._segment = segment
            self._starts.append((mono, segment.seq))
            del self._starts[:-64]
        return segment

    def _finish(self, end: float) -> None:
        segment, self._segment = self._segment, None
        if segment is None:
            return
        try:
            data = segment.encoder.finish()
        except EncoderError as exc:
            segment.encoder.abandon()
            self._lose(segment.seq, str(exc))
            return
        units, duration = self._units_duration(segment, end)
        if units == 0:
            return
        self._queue.put(
            Segment(
                stream=self.kind,
                seq=segment.seq,
                start_utc=self.clock.utc(segment.start),
                end_utc=self.clock.utc(segment.start + duration),
                duration=duration,
                units=units,
                mime=self.mime,
                data=data,
            )
        )

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
        attempt = 0
        ever_ran = False
        last_reason = ""
        lost_at = 0.0
        while not self._stopping.is_set():
            self.attempts += 1
            try:
                self._open()
            except (SourceError, EncoderError, OSError) as exc:
                reason = str(exc)
                delay = self._backoff.delay(attempt)
                attempt += 1
                self._set_source(
                    Health(State.DEGRADED if ever_ran else State.FAILED, reason, self.backend)
                )
                if reason != last_reason:
                    log.capture.warning(
                        "%s recorder: %s; retrying in %.0f s", self.kind.value, reason, delay
                    )
                    self._event("recorder.unavailable", reason=reason, retry_in=delay)
                    last_reason = reason
                self._stopping.wait(delay)
                continue
            attempt = 0
            last_reason = ""
            self._set_source(Health(State.RUNNING, backend=self.backend))
            if ever_ran:
                self._event(
                    "recorder.recovered",
                    backend=self.backend,
                    after=round(time.monotonic() - lost_at, 1),
                )
            else:
                self._event("recorder.started", backend=self.backend)
            ever_ran = True
            problem = ""
            try:
                self._loop()
            except (SourceLost, EncoderError) as exc:
                problem = str(exc)
            except Exception as exc:
                log.capture.exception("%s recorder crashed", self.kind.value)
                problem = f"unexpected error ({exc.__class__.__name__}: {exc})"
            finally:
                self._finish(time.monotonic())
                try:
                    self._close()
                except Exception:
                    log.capture.exception("Closing the %s source", self.kind.value)
            if problem:
                lost_at = time.monotonic()
                log.capture.error("%s recorder lost its source: %s", self.kind.value, problem)
                self._set_source(Health(State.DEGRADED, problem, self.backend))
                self._event("recorder.lost", reason=problem)
                last_reason = problem
                self._stopping.wait(self._backoff.delay(0))
                attempt = 1

    def _deliver(self) -> None:
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            segment: Segment = item
            sink = self._sink
            assert sink is not None
            try:
                sink(segment)
            except Exception as exc:  # SpoolError above all; never let it kill delivery
                reason = f"spool: {exc}"
                with self._lock:
                    self._spool_problem = reason
                self._lose(segment.seq, reason)
                continue
            done = time.monotonic()
            self.stats.segments += 1
            self.stats.bytes += len(segment.data)
            self.stats.units += segment.units
            self.stats.seconds += segment.duration
            self.stats.latencies.append(done - self.clock.mono(segment.end_utc))
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
        segment = self._current(mono)
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._spec = source
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
        self._source = open_camera(self._spec, width=self.width, height=self.height, fps=self.fps)
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
            mono = time.monotonic()
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


class MicrophoneRecorder(SegmentingRecorder):
    """Mono audio at ``rate`` Hz from a named or the default input, with voice hints.

    Args:
        device: part of the input's name (empty: the default input).
        rate: sample rate (Hz).
        kbps: Opus bitrate.
        batch: seconds between two takes of the captured blocks.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._device = device
        self._batch = batch
        #: capture time of the end of the last block taken
        self._audio_end = 0.0
        self.rate = rate
        self._kbps = kbps
        self._source: MicrophoneSource | None = None
        self.voice = VoiceActivity(rate)
        self._seg_samples = 0

    @property
    def level_dbfs(self) -> float:
        """The recent sound level (for a level meter)."""
        return self.voice.level_dbfs

    def _open(self) -> None:
        source = MicrophoneSource(self._device, self.rate)
        source.open()
        self._source = source
        self.backend = source.description

    def _close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def _new_encoder(self) -> AudioSegmentEncoder:
        return AudioSegmentEncoder(self.rate, kbps=self._kbps)

    @staticmethod
    def _samples(segment: _OpenSegment) -> int:
        encoder = segment.encoder
        return encoder.samples if isinstance(encoder, AudioSegmentEncoder) else 0

    def _units_duration(self, segment: _OpenSegment, end: float) -> tuple[int, float]:
        samples = self._samples(segment)
        return samples, round(samples / self.rate, 4)

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
        # The stop: the sound up to now is still in the input buffer and in the block being
        # filled; keep taking until a block reaches the stop, for at most that long.
        stopped = time.monotonic()
        deadline = stopped + source.buffered + 2 * source.block_seconds
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
        """Encode ``block`` (across a segment boundary if it falls in one) and feed the
        voice analyser with it."""
        # Each block is dated on its own; never before the end of the one before it.
        start = max(block.mono, self._audio_end)
        self._audio_end = start + len(block.samples) / self.rate
        samples, mono = block.samples, start
        while len(samples):
            segment = self._segment
            if segment is None or self._samples(segment) >= per_segment:
                if segment is not None:
                    self._finish(mono)
                segment = _OpenSegment(self._next_seq, mono, self._new_encoder())
                self._next_seq += 1
                self._segment = segment
                self._starts.append((mono, segment.seq))
                del self._starts[:-64]
            encoder = segment.encoder
            assert isinstance(encoder, AudioSegmentEncoder)
            room = per_segment - encoder.samples
            part, samples = samples[:room], samples[room:]
            encoder.add(part)
            mono += len(part) / self.rate
        step = max(1, self.rate // 20)  # voice activity looks at 50 ms pieces
        for i in range(0, len(block.samples), step):
            at = start + i / self.rate
            self._hint(self.voice.feed(block.samples[i : i + step], at), at)


class ScreenRecorder(_VideoRecorder):
    """The screen at ``fps``, plus up to ``activity_fps`` frames while it changes.

    The grabber (``mss.MSS``) is made, used and closed in the recorder's own thread.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._area = area
        self._max_width = max_width
        self.fps = fps
        self._activity_fps = activity_fps
        self._max_kbps = max_kbps
        self._source: ScreenSource | None = None

    def _open(self) -> None:
        self._source = ScreenSource(self._area, self._max_width)
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
            mono = time.monotonic()
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
