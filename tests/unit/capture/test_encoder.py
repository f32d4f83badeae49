"""Segment encoders: self-contained WebM that decodes to what went in."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from lockdown.capture.encoder import (
    AudioSegmentEncoder,
    EncoderError,
    VP9Encoder,
)
from tests.integration.capture.media import audio_samples, dominant_frequency, video_frames


def test_video_segment_starts_with_a_keyframe_and_keeps_capture_timestamps() -> None:
    encoder = VP9Encoder(320, 240, 10.0).segment()
    for i in range(12):
        frame = np.full((240, 320, 3), i * 20, np.uint8)
        encoder.add(frame, i * 0.1 + (0.03 if i == 5 else 0.0))
    blob = encoder.finish()
    assert blob[:4] == b"\x1a\x45\xdf\xa3"  # EBML: a WebM file of its own
    with av.open(io.BytesIO(blob)) as container:
        packets = [p for p in container.demux(video=0) if p.size]
        assert packets[0].is_keyframe
        assert container.streams.video[0].codec_context.name == "vp9"
    with av.open(io.BytesIO(blob)) as container:
        times = [round(float(f.time), 3) for f in container.decode(video=0)]
    assert times[5] == pytest.approx(0.53)
    assert len(video_frames(blob)) == 12


def test_one_vp9_encoder_makes_segments_that_each_decode_on_their_own() -> None:
    codec = VP9Encoder(320, 240, 10.0, threads=1)
    rng = np.random.default_rng(1)
    blobs = []
    for seg in range(3):
        encoder = codec.segment()
        for i in range(8 + seg):
            frame = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
            encoder.add(frame, i * 0.1)
        blobs.append(encoder.finish())
    for seg, blob in enumerate(blobs):
        assert blob[:4] == b"\x1a\x45\xdf\xa3"
        with av.open(io.BytesIO(blob)) as container:
            packets = [p for p in container.demux(video=0) if p.size]
            assert packets[0].is_keyframe
            assert sum(p.is_keyframe for p in packets) == 1
        with av.open(io.BytesIO(blob)) as container:
            frames = list(container.decode(video=0))
        # the segment's own clock: from 0, one frame per 100 ms
        assert [round(float(f.time), 3) for f in frames] == [i / 10 for i in range(8 + seg)]
        assert frames[0].width == 320
    assert codec.last_pts > 2000  # the encoder's clock went on across segments


def test_video_encoder_refuses_a_frame_of_another_size() -> None:
    encoder = VP9Encoder(320, 240, 10.0).segment()
    with pytest.raises(EncoderError, match="frame of 640x480 in a 320x240 segment"):
        encoder.add(np.zeros((480, 640, 3), np.uint8), 0.0)
    encoder.abandon()


@pytest.mark.parametrize("rate", [16000, 22050])
def test_audio_segment_decodes_to_its_length_and_pitch(rate: int) -> None:
    encoder = AudioSegmentEncoder(rate)
    t = np.arange(2 * rate) / rate
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    for i in range(0, len(tone), 777):  # odd block sizes
        encoder.add(tone[i : i + 777])
    blob = encoder.finish()
    assert encoder.samples == 2 * rate
    samples, decoded_rate = audio_samples(blob)
    assert len(samples) / decoded_rate == pytest.approx(2.0, abs=0.03)
    assert dominant_frequency(samples, decoded_rate) == pytest.approx(440, abs=3)
