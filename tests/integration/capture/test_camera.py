"""The camera recorder on a video file: segments decode, hints land at the right times."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lockdown.capture.base import Segment, State, Stream
from lockdown.capture.recorders import Backoff, CameraRecorder
from lockdown.events import Event
from tests.integration.capture.media import camera_video, video_frames

FPS = 10.0


def _wait(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _recording(video: Path, **options: Any) -> tuple[CameraRecorder, list[Event], list[Segment]]:
    """A camera recorder started on ``video``, with the events and segments it gives."""
    events: list[Event] = []
    segments: list[Segment] = []
    recorder = CameraRecorder(str(video), fps=FPS, report=events.append, **options)
    recorder.start(segments.append)
    return recorder, events, segments


@pytest.mark.slow
def test_file_camera_segments_decode_and_hints_land_at_their_times(tmp_path: Path) -> None:
    video = camera_video(
        tmp_path / "cam.avi", [("one", 1.5), ("two", 2.5), ("none", 2.5), ("dark", 2.5)], FPS
    )
    recorder, events, segments = _recording(
        video,
        segment_length=2.0,
        analysis_interval=0.25,
        face_interval=0.25,
        face_persistence=1.0,
        dark_frames=3,
    )
    try:
        _wait(lambda: any(e.type == "hint.too_dark" for e in events), 15)
        assert recorder.health().state is State.RUNNING
    finally:
        recorder.stop()

    assert [s.seq for s in segments] == list(range(len(segments)))
    assert len(segments) >= 4
    for segment in segments:
        assert segment.stream is Stream.CAMERA
        frames = video_frames(segment.data)
        assert len(frames) == segment.units
        assert frames[0].shape == (480, 640, 3)
    for segment in segments[:-1]:
        assert segment.units == pytest.approx(20, abs=2)
        assert segment.duration == pytest.approx(2.0, abs=0.15)
    # The streams are contiguous on the capture clock.
    for before, after in itertools.pairwise(segments):
        assert abs((after.start_utc - before.end_utc).total_seconds()) < 0.2

    start: datetime = segments[0].start_utc
    hints = {e.type: e.payload for e in events if e.type.startswith("hint.")}
    assert set(hints) == {"hint.several_faces", "hint.no_face", "hint.too_dark"}
    expected = {"hint.several_faces": 1.5, "hint.no_face": 4.0, "hint.too_dark": 6.5}
    by_seq = {s.seq: s for s in segments}
    for kind, at in expected.items():
        payload = hints[kind]
        assert payload["stream"] == "camera"
        utc = datetime.fromisoformat(payload["utc"])
        assert (utc - start).total_seconds() == pytest.approx(at, abs=0.6), kind
        # segment + offset point at the same moment as utc
        segment = by_seq[payload["segment"]]
        mapped = segment.start_utc + timedelta(seconds=payload["offset"])
        assert abs((mapped - utc).total_seconds()) < 0.01
    assert hints["hint.several_faces"]["faces"] >= 2

    # The frames themselves show what the file holds: the dark phase decodes dark.
    dark_seg = by_seq[hints["hint.too_dark"]["segment"]]
    last = video_frames(dark_seg.data)[-1]
    assert last.mean() < 30


def test_missing_camera_index_is_reported_and_retried(tmp_path: Path) -> None:
    events: list[Event] = []
    recorder = CameraRecorder(
        "57", report=events.append, segment_length=2.0, backoff=Backoff(0.2, 0.4)
    )
    recorder.start(lambda _s: None)
    try:
        _wait(lambda: recorder.health().state is State.FAILED, 5)
        health = recorder.health()
        assert "no camera at index 57" in health.reason
        # retried with back-off (0.2, 0.4, 0.4 s …), journalled once: the reason is the same
        _wait(lambda: recorder.attempts >= 3, 5)
    finally:
        recorder.stop()
    unavailable = [e for e in events if e.type == "recorder.unavailable"]
    assert len(unavailable) == 1
    assert "no camera at index 57" in unavailable[0].payload["reason"]
    assert unavailable[0].payload["stream"] == "camera"


@pytest.mark.slow
def test_a_camera_that_stops_delivering_is_journalled_retried_and_recovered(
    tmp_path: Path,
) -> None:
    # The same OpenCV path a device takes: the "camera" is a video file that is emptied
    # while it records (reads fail: lost), then written again (it opens: recovered).
    video = camera_video(tmp_path / "camera.avi", [("one", 2.0)], FPS)
    recorder, events, segments = _recording(video, segment_length=1.0, backoff=Backoff(0.2, 0.4))
    try:
        _wait(lambda: len(segments) >= 1, 10)
        video.write_bytes(b"")
        _wait(lambda: any(e.type == "recorder.lost" for e in events), 10)
        # The new file is made aside and moved in whole: never a half-written video.
        camera_video(tmp_path / "new.avi", [("one", 2.0)], FPS).replace(video)
        _wait(lambda: any(e.type == "recorder.recovered" for e in events), 10)
        recovered = datetime.now(UTC)
        _wait(lambda: sum(1 for s in segments if s.start_utc >= recovered) >= 2, 10)
    finally:
        recorder.stop()
    types = [e.type for e in events if e.type.startswith("recorder.")]
    assert types[0] == "recorder.started"
    assert types.index("recorder.lost") < types.index("recorder.recovered")
    lost = next(e for e in events if e.type == "recorder.lost")
    assert lost.payload["stream"] == "camera"
    assert "no more frames" in lost.payload["reason"]
    # Recording went on after the recovery, in new segments that decode.
    assert [s.seq for s in segments] == list(range(len(segments)))
    after = [s for s in segments if s.start_utc >= recovered]
    assert len(after) >= 2
    assert all(len(video_frames(s.data)) == s.units > 0 for s in after)
