"""Segment encoders: each segment is its own WebM container, written to memory.

Video is VP9 (libvpx, realtime), audio is Opus (libopus), both BSD-licensed and played
by every current browser; see docs/capture.md for the choice. A new encoder is made for
every segment, so each one starts with a keyframe and decodes on its own. Timestamps
are milliseconds (video) or samples (audio) from the segment's first capture stamp, so
an offset into the segment is a time on the capture clock.
"""

from __future__ import annotations

import contextlib
import io
from fractions import Fraction
from typing import Any, Final, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

VIDEO_MIME: Final = 'video/webm; codecs="vp9"'
AUDIO_MIME: Final = 'audio/webm; codecs="opus"'
#: Sample rates libopus takes as they are; other rates are resampled to 48 kHz.
OPUS_RATES: Final = frozenset({8000, 12000, 16000, 24000, 48000})
_MS: Final = Fraction(1, 1000)

Frame = npt.NDArray[np.uint8]
Samples = npt.NDArray[np.float32]


class EncoderError(Exception):
    """The encoder failed (a codec missing from the PyAV build, bad frames)."""


def even(value: int) -> int:
    """``value`` rounded down to an even number (4:2:0 video needs even sizes), at least 2."""
    return max(2, value - value % 2)


class VideoSegmentEncoder:
    """VP9 realtime in WebM: constant quality, capped bitrate, one keyframe per segment.

    Args:
        width: frame width (even).
        height: frame height (even).
        fps: nominal frame rate (the encoder's rate control; timestamps may vary).
        crf: constant quality, 0 (best) to 63; 35-40 suits a proctoring review.
        max_kbps: bitrate cap in kbit/s (0: quality only).
        threads: encoder threads.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        crf: int = 38,
        max_kbps: int = 0,
        threads: int = 2,
    ) -> None:
        if width % 2 or height % 2:
            raise EncoderError(f"frame size {width}x{height} must be even")
        self.width = width
        self.height = height
        self.frames = 0
        self._last_pts = -1
        self._buffer = io.BytesIO()
        options = {
            "deadline": "realtime",
            "cpu-used": "8",
            "crf": str(crf),
            "b": f"{max_kbps}k" if max_kbps else "0",
            "row-mt": "1",
            "lag-in-frames": "0",
            "threads": str(threads),
        }
        try:
            self._container: Any = cast(Any, av.open(self._buffer, "w", format="webm"))
            self._stream: Any = cast(
                Any,
                self._container.add_stream(
                    "libvpx-vp9", rate=Fraction(fps).limit_denominator(1000), options=options
                ),
            )
            self._stream.width = width
            self._stream.height = height
            self._stream.pix_fmt = "yuv420p"
            self._stream.codec_context.time_base = _MS
            # One keyframe at the start of the segment is enough: segments are short and
            # always decoded from their beginning.
            self._stream.codec_context.gop_size = 100_000
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"cannot set up the VP9 encoder ({exc})") from exc

    def add(self, frame: Frame, offset: float) -> None:
        """Encode a BGR or BGRA frame ``offset`` seconds after the segment's start."""
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            raise EncoderError(
                f"frame of {frame.shape[1]}x{frame.shape[0]} in a {self.width}x{self.height} segment"
            )
        pts = max(round(offset * 1000), self._last_pts + 1)
        self._last_pts = pts
        try:
            # OpenCV's SIMD colour conversion is cheaper than swscale's bgr24 path.
            code = cv2.COLOR_BGRA2YUV_I420 if frame.shape[2] == 4 else cv2.COLOR_BGR2YUV_I420
            yuv = np.asarray(cv2.cvtColor(frame, code), np.uint8)
            # Wraps the new array without a copy (from_ndarray copies it: 0.1 ms a frame
            # at 640x480); nothing writes into it after this.
            video = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
            video.pts = pts
            video.time_base = _MS
            for packet in self._stream.encode(video):
                self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"VP9 encoding failed ({exc})") from exc
        self.frames += 1

    def finish(self) -> bytes:
        """Flush the encoder, close the container and return the WebM bytes."""
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"VP9 encoding failed at the end of a segment ({exc})") from exc
        return self._buffer.getvalue()

    def abandon(self) -> None:
        """Drop the segment (after an error); never raises."""
        # The container is broken already; there is nothing to keep.
        with contextlib.suppress(Exception):
            self._container.close()


class AudioSegmentEncoder:
    """Opus in WebM from mono float samples in [-1, 1].

    Args:
        rate: the input sample rate (Hz).
        kbps: Opus bitrate in kbit/s (16 is clear speech).
    """

    def __init__(self, rate: int, *, kbps: int = 16) -> None:
        self.rate = rate
        self.samples = 0
        self._buffer = io.BytesIO()
        self._pending = np.zeros(0, dtype=np.int16)
        codec_rate = rate if rate in OPUS_RATES else 48000
        self._codec_rate = codec_rate
        self._resampler: Any = (
            None
            if codec_rate == rate
            else av.AudioResampler(format="s16", layout="mono", rate=codec_rate)
        )
        self._pts = 0
        try:
            self._container: Any = cast(Any, av.open(self._buffer, "w", format="webm"))
            self._stream: Any = cast(
                Any, self._container.add_stream("libopus", rate=codec_rate, layout="mono")
            )
            ctx = self._stream.codec_context
            ctx.format = "s16"
            ctx.bit_rate = kbps * 1000
            ctx.time_base = Fraction(1, codec_rate)
            ctx.open()
            self._frame_size: int = ctx.frame_size
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"cannot set up the Opus encoder ({exc})") from exc

    def add(self, samples: Samples) -> None:
        """Encode mono float samples (any number)."""
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)
        self.samples += len(pcm)
        if self._resampler is not None:
            frame = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
            frame.sample_rate = self.rate
            pcm = np.concatenate(
                [np.zeros(0, np.int16)]
                + [f.to_ndarray().reshape(-1) for f in self._resampler.resample(frame)]
            )
        self._pending = np.concatenate([self._pending, pcm])
        self._drain(final=False)

    def _drain(self, *, final: bool) -> None:
        size = self._frame_size
        try:
            while len(self._pending) >= size or (final and len(self._pending)):
                chunk, self._pending = self._pending[:size], self._pending[size:]
                if len(chunk) < size:
                    chunk = np.concatenate([chunk, np.zeros(size - len(chunk), np.int16)])
                frame = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                frame.sample_rate = self._codec_rate
                frame.pts = self._pts
                frame.time_base = Fraction(1, self._codec_rate)
                self._pts += size
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"Opus encoding failed ({exc})") from exc

    def finish(self) -> bytes:
        """Flush (the last partial frame is padded with silence) and return the WebM bytes."""
        self._drain(final=True)
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"Opus encoding failed at the end of a segment ({exc})") from exc
        return self._buffer.getvalue()

    def abandon(self) -> None:
        """Drop the segment (after an error); never raises."""
        # The container is broken already; there is nothing to keep.
        with contextlib.suppress(Exception):
            self._container.close()
