"""Source helpers that need no device: the capture time of a microphone block."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lockdown.capture.sources import capture_age


def test_a_block_is_dated_by_portaudios_capture_time_including_the_input_buffer() -> None:
    # 0.1 s of samples that waited another 0.1 s in the input buffer (latency="high")
    times = SimpleNamespace(currentTime=1000.2, inputBufferAdcTime=1000.0)
    assert capture_age(times, 1600, 16000, 0.2) == pytest.approx(0.2)


@pytest.mark.parametrize(
    "times",
    [
        SimpleNamespace(currentTime=0.0, inputBufferAdcTime=0.0),  # a host without times
        SimpleNamespace(currentTime=5.0, inputBufferAdcTime=5.05),  # the ADC in the future
        SimpleNamespace(currentTime=100.0, inputBufferAdcTime=10.0),  # nonsense
        SimpleNamespace(),  # no such fields
    ],
)
def test_without_believable_times_a_block_is_as_old_as_its_samples(times: object) -> None:
    assert capture_age(times, 1600, 16000, 0.2) == pytest.approx(0.1)


def test_a_block_is_never_taken_as_older_than_the_input_buffer_can_hold() -> None:
    # the first blocks after the start claim 0.7 s through the PulseAudio ALSA plugin
    times = SimpleNamespace(currentTime=50.7, inputBufferAdcTime=50.0)
    assert capture_age(times, 1600, 16000, 0.2) == pytest.approx(0.3)
