"""Recorders never hang and never die silently: a camera read that never returns, a sink
that blocks, a cv2.error and an mss ScreenShotError, each through the thin adapter the
source wraps (OpenCV's ``VideoCapture``, ``mss.MSS``); the rest is the real code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import mss
import mss.exception
import numpy as np
import pytest

from lockdown.capture.base import Segment, State
from lockdown.capture.operation import ProctoringOperation
from lockdown.capture.recorders import Backoff, CameraRecorder, ScreenRecorder
from lockdown.capture.sources import OpenCvSource, PatternSource
from lockdown.config.settings import Settings
from lockdown.events import Event
from lockdown.lifecycle.base import Outcome
from tests.support.xserver import Xvfb

FPS = 20.0
SIZE = (160, 120)


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class FakeCapture:
    """``cv2.VideoCapture`` as a device: a frame per read at ``FPS`` (a device's read
    blocks until the next frame), then, from read number ``fault_at`` on, ``fault()``."""

    def __init__(self, fault_at: int | None = None, fault: Callable[[], Any] | None = None):
        self._pattern = PatternSource(*SIZE)
        self._fault_at = fault_at
        self._fault = fault
        self.reads = 0
        self.released = False

    def read(self) -> tuple[bool, np.ndarray[Any, Any]]:
        self.reads += 1
        if self._fault is not None and self._fault_at is not None and self.reads >= self._fault_at:
            self._fault()
        time.sleep(1 / FPS)
        return True, self._pattern.read()

    def set(self, prop: int, value: float) -> bool:
        return True

    def release(self) -> None:
        self.released = True


def _camera(capture: FakeCapture) -> OpenCvSource:
    return OpenCvSource(
        capture, description="fake camera (OpenCV)", width=SIZE[0], height=SIZE[1], loop=False
    )


def _camera_recorder(
    opener: Callable[[], OpenCvSource], events: list[Event], **options: Any
) -> CameraRecorder:
    return CameraRecorder(
        "fake",
        width=SIZE[0],
        height=SIZE[1],
        fps=FPS,
        report=events.append,
        opener=opener,
        **options,
    )


def _hanging_camera(
    events: list[Event], hang: threading.Event
) -> tuple[CameraRecorder, FakeCapture]:
    capture = FakeCapture(fault_at=10, fault=hang.wait)  # the 10th read never returns
    recorder = _camera_recorder(lambda: _camera(capture), events, segment_length=0.2)
    return recorder, capture


@pytest.mark.slow
def test_a_camera_read_that_never_returns_stops_within_the_deadline() -> None:
    events: list[Event] = []
    segments: list[Segment] = []
    hang = threading.Event()
    recorder, capture = _hanging_camera(events, hang)
    recorder.start(segments.append)
    worker = recorder._worker
    assert worker is not None
    try:
        _wait(lambda: capture.reads >= 10, 10)
        started = time.monotonic()
        assert recorder.stop(timeout=1.0) is False
        took = time.monotonic() - started
        # Positive control: the read really hangs; a stop without a deadline waits for ever.
        assert worker.is_alive()
    finally:
        hang.set()
    assert took < 1.5
    (timeout,) = [e.payload for e in events if e.type == "recorder.stop_timeout"]
    assert timeout["waiting_for"] == ["capture"] and timeout["seconds"] == 1.0
    # the segments finished before the read hung are stored; the one being recorded is
    # journalled as lost
    in_progress = timeout["in_progress"]
    assert in_progress >= 1 and [s.seq for s in segments] == list(range(in_progress))
    lost = [e.payload for e in events if e.type == "recorder.segment_lost"]
    assert [(p["segment"], p["reason"]) for p in lost] == [
        (in_progress, "the capture did not stop in time")
    ]
    health = recorder.health()
    assert health.state is State.FAILED and "did not stop within 1 s" in health.reason
    assert [e.type for e in events][-1] == "recorder.stopped"
    # the thread left behind wakes up, and hands nothing over after the stop
    worker.join(5)
    assert not worker.is_alive() and capture.released
    assert [s.seq for s in segments] == list(range(in_progress))


@pytest.mark.slow
def test_a_source_that_stops_answering_mid_exam_is_journalled_as_stalled() -> None:
    events: list[Event] = []
    answer = threading.Event()
    capture = FakeCapture(fault_at=10, fault=answer.wait)  # from the 10th read: no answer
    recorder = _camera_recorder(
        lambda: _camera(capture), events, segment_length=1.0, stall_after=0.6
    )
    recorder.start(lambda _s: None)
    try:
        _wait(lambda: any(e.type == "recorder.stalled" for e in events), 10)
        health = recorder.health()
        assert health.state is State.FAILED and "no capture for" in health.reason
        assert capture.reads == 10  # it stalled where the read stopped answering
        answer.set()
        _wait(lambda: any(e.type == "recorder.resumed" for e in events), 10)
        assert recorder.health().state is State.RUNNING
    finally:
        answer.set()
        recorder.stop()
    types = [e.type for e in events]
    assert types.count("recorder.stalled") == 1
    assert types.index("recorder.started") < types.index("recorder.stalled")
    assert types.index("recorder.stalled") < types.index("recorder.resumed")


@pytest.mark.slow
def test_the_operation_stops_hanging_recorders_within_one_shared_deadline() -> None:
    events: list[Event] = []
    hang = threading.Event()
    operation = ProctoringOperation(
        dict(Settings.defaults()), events.append, _NullStore(), stop_deadline=1.0
    )
    pairs = [_hanging_camera(events, hang) for _ in range(2)]
    try:
        for recorder, _ in pairs:
            operation.recorders.append(recorder)
            recorder.start(lambda _s: None)
        _wait(lambda: all(c.reads >= 10 for _, c in pairs), 10)
        started = time.monotonic()
        assert operation.revert() is Outcome.FAILED
        took = time.monotonic() - started
    finally:
        hang.set()
    assert took < 1.6  # one deadline for both, not one each
    assert [e.type for e in events].count("recorder.stop_timeout") == 2
    assert [e.type for e in events][-1] == "proctoring.stopped"


class _NullStore:
    def add(self, segment: Segment) -> None:
        pass


@pytest.mark.slow
def test_a_blocked_sink_never_stalls_capture_and_every_segment_is_accounted_for() -> None:
    events: list[Event] = []
    release = threading.Event()
    stored: list[int] = []

    def sink(segment: Segment) -> None:
        release.wait()  # the spool's disk hangs (a dead network share)
        stored.append(segment.seq)

    recorder = CameraRecorder(
        "pattern",
        width=SIZE[0],
        height=SIZE[1],
        fps=FPS,
        report=events.append,
        segment_length=0.25,
        max_pending=2,
        handoff_timeout=0.2,
    )
    recorder.start(sink)
    delivery = recorder._delivery
    assert delivery is not None
    try:
        _wait(lambda: any(e.type == "recorder.segment_lost" for e in events), 10)
        health = recorder.health()
        assert health.state is State.DEGRADED and "spool took no segment" in health.reason
        # capture goes on: new segments are still begun while the sink is stuck
        seq = recorder._next_seq
        _wait(lambda: recorder._next_seq >= seq + 3, 10)
        started = time.monotonic()
        assert recorder.stop(timeout=1.0) is False
        took = time.monotonic() - started
        # Positive control: the sink really blocks; without a deadline the stop would wait.
        assert delivery.is_alive()
    finally:
        release.set()
    assert took < 1.5
    (timeout,) = [e.payload for e in events if e.type == "recorder.stop_timeout"]
    assert timeout["waiting_for"] == ["delivery"]
    assert timeout["storing"] == 0 and timeout["lost"] == [1, 2]
    delivery.join(5)
    assert stored == [0]  # the one the sink was storing lands; nothing more is taken
    lost = {e.payload["segment"] for e in events if e.type == "recorder.segment_lost"}
    # never silently lost: every segment begun is stored, or journalled as lost
    assert set(range(recorder._next_seq)) == {0} | lost
    assert lost.isdisjoint(stored)


@pytest.mark.slow
def test_a_cv2_error_is_journalled_the_recorder_fails_and_retries() -> None:
    def broken() -> None:
        raise cv2.error("injected: VIDIOC_DQBUF: No such device")

    # Positive control: the injected fault really leaves the source's read.
    with pytest.raises(cv2.error):
        _camera(FakeCapture(fault_at=1, fault=broken)).read()

    captures: list[FakeCapture] = []

    def opener() -> OpenCvSource:
        captures.append(FakeCapture(fault_at=8, fault=broken) if not captures else FakeCapture())
        return _camera(captures[-1])

    events: list[Event] = []
    seen: list[State] = []
    segments: list[Segment] = []

    def report(event: Event) -> None:
        events.append(event)
        if event.type == "recorder.failed":
            seen.append(recorder.health().state)

    recorder = CameraRecorder(
        "fake",
        width=SIZE[0],
        height=SIZE[1],
        fps=FPS,
        report=report,
        opener=opener,
        segment_length=0.5,
        backoff=Backoff(0.3, 0.6),
    )
    recorder.start(segments.append)
    try:
        _wait(lambda: any(e.type == "recorder.recovered" for e in events), 10)
        _wait(lambda: len(segments) >= 2, 10)
        assert recorder.health().state is State.RUNNING
    finally:
        recorder.stop()
    types = [e.type for e in events]
    assert types.index("recorder.started") < types.index("recorder.failed")
    assert types.index("recorder.failed") < types.index("recorder.recovered")
    failed = next(e.payload for e in events if e.type == "recorder.failed")
    assert failed["phase"] == "recording" and failed["error"] == "error"
    assert failed["reason"].startswith("unexpected error (cv2.error: ")
    assert "injected: VIDIOC_DQBUF" in failed["reason"]
    assert failed["retry_in"] == 0.3
    assert seen == [State.FAILED]
    assert recorder.stats.failures == 1 and "cv2.error" in recorder.stats.last_failure
    assert len(captures) == 2 and captures[0].released
    # the frames before the error were kept: a segment ends at the failure
    assert [s.seq for s in segments] == list(range(len(segments)))


class _FlakyGrabber:
    """``mss.MSS`` whose ``grab`` raises ScreenShotError once, at grab number ``at``."""

    def __init__(self, at: int) -> None:
        self._real = mss.MSS()
        self._at = at
        self.grabs = 0

    @property
    def monitors(self) -> Any:
        return self._real.monitors

    @property
    def primary_monitor(self) -> Any:
        return self._real.primary_monitor

    def grab(self, monitor: Any) -> Any:
        self.grabs += 1
        if self.grabs == self._at:
            raise mss.exception.ScreenShotError("XGetImage() failed (injected)")
        return self._real.grab(monitor)

    def close(self) -> None:
        self._real.close()


@pytest.mark.x11
@pytest.mark.slow
def test_mss_errors_are_journalled_and_the_screen_recorder_retries(xserver: Xvfb) -> None:
    made: list[Any] = []

    def grabber() -> Any:
        made.append(None)
        if len(made) == 1:  # the X connection cannot be made (yet)
            raise mss.exception.ScreenShotError("XOpenDisplay() failed (injected)")
        return _FlakyGrabber(at=3) if len(made) == 2 else mss.MSS()

    events: list[Event] = []
    segments: list[Segment] = []
    recorder = ScreenRecorder(
        fps=4.0,
        activity_fps=4.0,
        max_width=320,
        report=events.append,
        segment_length=0.5,
        backoff=Backoff(0.3, 0.6),
        grabber=grabber,
    )
    recorder.start(segments.append)
    try:
        _wait(lambda: any(e.type == "recorder.recovered" for e in events), 15)
        _wait(lambda: len(segments) >= 2, 10)
        assert recorder.health().state is State.RUNNING
    finally:
        recorder.stop()
    types = [e.type for e in events if e.type.startswith("recorder.")]
    assert types[:4] == [
        "recorder.failed",
        "recorder.started",
        "recorder.lost",
        "recorder.recovered",
    ]
    failed = events[types.index("recorder.failed")].payload
    assert failed["phase"] == "open" and failed["error"] == "ScreenShotError"
    assert "mss.exception.ScreenShotError: XOpenDisplay() failed (injected)" in failed["reason"]
    lost = events[types.index("recorder.lost")].payload
    assert "XGetImage() failed (injected)" in lost["reason"]
    assert len(made) == 3


@pytest.mark.x11
@pytest.mark.slow
def test_proctoring_started_names_only_the_streams_that_really_record(
    tmp_path: Path, xserver: Xvfb
) -> None:
    events: list[Event] = []
    settings = dict(Settings.defaults())
    settings.update(
        {
            "proctoring.camera": True,
            "proctoring.screen": True,
            "proctoring.microphone": False,
            "proctoring.camera_source": str(tmp_path / "missing.avi"),
            "proctoring.segment_length": 1.0,
        }
    )
    operation = ProctoringOperation(settings, events.append, _NullStore())
    assert operation.perform() is Outcome.SUCCESS
    try:
        _wait(lambda: any(e.type == "proctoring.not_started" for e in events), 10)
    finally:
        operation.revert()
    started = [e.payload for e in events if e.type == "proctoring.started"]
    not_started = [e.payload for e in events if e.type == "proctoring.not_started"]
    assert started == [{"streams": ["screen"]}]
    assert not_started == [
        {"streams": {"camera": f"camera video file {tmp_path / 'missing.avi'} does not exist"}}
    ]
