"""The proctoring operation with the real spool; spool and device faults keep others going."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lockdown.capture.base import Segment, State, Stream
from lockdown.capture.operation import ProctoringOperation
from lockdown.capture.recorders import Backoff, MicrophoneRecorder
from lockdown.config.settings import Settings
from lockdown.events import Event
from lockdown.lifecycle.base import Outcome
from lockdown.upload.base import SpoolError
from lockdown.upload.spool import Spool, verify_folder
from tests.integration.capture.media import camera_video, video_frames
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb
from tests.unit.upload.factory import TEST_KEY


def _wait(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _settings(**overrides: Any) -> dict[str, Any]:
    values = dict(Settings.defaults())
    values.update({"proctoring." + k: v for k, v in overrides.items()})
    return values


@pytest.mark.x11
@pytest.mark.slow
def test_operation_records_switched_on_streams_and_revert_finalizes(
    tmp_path: Path, xserver: Xvfb
) -> None:
    video = camera_video(tmp_path / "cam.avi", [("one", 2.0)], 10.0)
    events: list[Event] = []
    spool = Spool.open(tmp_path / "spool", report=events.append, max_bytes=50 << 20, key=TEST_KEY)
    settings = _settings(
        camera=True,
        screen=True,
        microphone=False,
        camera_source=str(video),
        camera_fps=10.0,
        segment_length=2.0,
    )
    operation = ProctoringOperation(settings, events.append, spool)
    assert operation.streams() == (Stream.CAMERA, Stream.SCREEN)
    assert operation.perform() is Outcome.SUCCESS
    try:
        _wait(lambda: len(spool.records()) >= 2, 10)
        assert {s: h.state for s, h in operation.health().items()} == {
            Stream.CAMERA: State.RUNNING,
            Stream.SCREEN: State.RUNNING,
        }
    finally:
        assert operation.revert() is Outcome.SUCCESS
    records = spool.records()
    # revert stored the partial last segments too
    last_camera = max(r.seq for r in records if r.stream is Stream.CAMERA)
    assert any(
        e.type == "recorder.stopped" and e.payload["segments"] == last_camera + 1 for e in events
    )
    for record in records:
        media = spool.read(record.stream, record.seq)
        assert hashlib.sha256(media).hexdigest() == record.sha256
        assert len(video_frames(media)) == record.units
    spool.close()
    assert verify_folder(tmp_path / "spool").ok
    assert [e.type for e in events if e.type.startswith("proctoring.")] == [
        "proctoring.started",
        "proctoring.stopped",
    ]


class _FillingStore:
    """A real spool whose disk is "full" for camera segments until ``full`` is cleared
    (a full disk cannot be made here without privileges)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.full = True

    def add(self, segment: Segment) -> None:
        if self.full and segment.stream is Stream.CAMERA:
            raise SpoolError("cannot write segment: No space left on device")
        self.spool.add(segment)

    def close(self) -> None:
        self.spool.close()


@pytest.mark.x11
@pytest.mark.slow
def test_spool_error_is_journalled_and_the_other_stream_goes_on(
    tmp_path: Path, xserver: Xvfb
) -> None:
    events: list[Event] = []
    store = _FillingStore(
        Spool.open(tmp_path / "spool", report=events.append, max_bytes=50 << 20, key=TEST_KEY)
    )
    settings = _settings(camera=True, screen=True, camera_source="pattern", segment_length=2.0)
    operation = ProctoringOperation(settings, events.append, store)
    assert operation.perform() is Outcome.SUCCESS
    try:
        _wait(lambda: any(e.type == "recorder.segment_lost" for e in events), 6)
        health = operation.health()
        assert health[Stream.CAMERA].state is State.DEGRADED
        assert "No space left on device" in health[Stream.CAMERA].reason
        assert health[Stream.SCREEN].state is State.RUNNING
        _wait(lambda: any(r.stream is Stream.SCREEN for r in store.spool.records()), 6)
        store.full = False
        _wait(lambda: any(r.stream is Stream.CAMERA for r in store.spool.records()), 6)
        assert operation.health()[Stream.CAMERA].state is State.RUNNING
    finally:
        operation.revert()
        store.close()
    lost = [e for e in events if e.type == "recorder.segment_lost"]
    assert lost[0].payload["stream"] == "camera"
    assert "No space left on device" in lost[0].payload["reason"]


@pytest.mark.audio
@pytest.mark.slow
def test_microphone_that_vanishes_is_journalled_and_recovered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mic = VirtualMicrophone(runtime=tmp_path / "pulse-runtime")
    (tmp_path / "pulse-runtime").mkdir()
    mic.start()
    for key, value in mic.env.items():
        monkeypatch.setenv(key, value)
    events: list[Event] = []
    segments: list[Segment] = []
    recorder = MicrophoneRecorder(
        report=events.append, segment_length=2.0, backoff=Backoff(0.3, 0.6)
    )
    recorder.start(segments.append)
    try:
        _wait(lambda: recorder._segment is not None, 15)
        mic.stop()  # the sound server (and with it the microphone) goes away
        _wait(lambda: recorder.health().state is State.DEGRADED, 10)
        assert any(e.type == "recorder.lost" for e in events)
        mic.start()
        _wait(lambda: any(e.type == "recorder.recovered" for e in events), 20)
        _wait(lambda: recorder.health().state is State.RUNNING, 5)
    finally:
        recorder.stop()
        mic.stop()
    types = [e.type for e in events]
    assert types.index("recorder.started") < types.index("recorder.lost")
    assert types.index("recorder.lost") < types.index("recorder.recovered")
    # what was recorded before the loss was kept
    assert segments and segments[0].seq == 0
