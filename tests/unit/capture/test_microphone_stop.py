"""The microphone recorder's stop keeps the sound still on its way from the device."""

from __future__ import annotations

import time

import numpy as np

from lockdown.capture.recorders import MicrophoneRecorder
from lockdown.capture.sources import AudioBlock

RATE = 16000
BLOCK = 0.1
#: how long after its last sample a block reaches the recorder (the input buffer)
DELAY = 0.2


class ArrivingBlocks:
    """Blocks of 0.1 s captured back to back since ``start``; each is handed over
    ``DELAY`` after its last sample, as through PortAudio's input buffer."""

    buffered = DELAY
    block_seconds = BLOCK

    def __init__(self, start: float) -> None:
        self._next = start

    def take(self) -> list[AudioBlock]:
        blocks = []
        while self._next + BLOCK + DELAY <= time.monotonic():
            blocks.append(AudioBlock(self._next, np.full(round(RATE * BLOCK), 0.1, np.float32)))
            self._next += BLOCK
        return blocks

    def read(self, timeout: float) -> list[AudioBlock]:
        return self.take()


def test_the_stop_waits_for_the_blocks_still_in_the_input_buffer() -> None:
    recorder = MicrophoneRecorder(report=lambda _e: None, rate=RATE, segment_length=60.0)
    started = time.monotonic()
    recorder._source = ArrivingBlocks(started)  # type: ignore[assignment]
    time.sleep(1.0)
    recorder._stopping.set()
    stopped = time.monotonic()
    recorder._loop()
    took = time.monotonic() - stopped
    segment = recorder._segment
    assert segment is not None
    recorded = segment.encoder.samples / RATE
    assert segment.encoder.finish()  # the container closes (PyAV's must, before exit)
    # Everything captured up to the stop is in (to the block that holds the stop), and
    # waiting for it took about the input buffer's delay, not more.
    assert recorded >= stopped - started
    assert recorded <= stopped - started + BLOCK + 0.05
    assert took < DELAY + 2 * BLOCK + 0.1
