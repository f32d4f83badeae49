"""Segment encoders: each segment is its own WebM container, written to memory.

Video is VP9 (libvpx, realtime), audio is Opus (libopus), both BSD-licensed and played
by every current browser; see docs/capture.md for the choice. A video recorder keeps one
VP9 encoder (:class:`VP9Encoder`) across its segments: each segment's first frame is a
forced keyframe and its packets go into a new WebM container, so each segment decodes on
its own without paying for a new encoder (14-47 ms) and its warm-up. Audio gets a new
Opus encoder per segment (cheap, and Opus has no keyframes to restart from). Timestamps
are milliseconds (video) or samples (audio) from the segment's first capture stamp, so
an offset into the segment is a time on the capture clock.
"""

from __future__ import annotations

import contextlib
import functools
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
#: Opus frame length (ms); libopus takes 2.5, 5, 10, 20, 40, 60 and longer.
OPUS_FRAME_MS: Final = 60

Frame = npt.NDArray[np.uint8]
Samples = npt.NDArray[np.float32]


class EncoderError(Exception):
    """The encoder failed (a codec missing from the PyAV build, bad frames)."""


def even(value: int) -> int:
    """``value`` rounded down to an even number (4:2:0 video needs even sizes), at least 2."""
    return max(2, value - value % 2)


@functools.cache
def _vp9_template() -> Any:
    """A VP9 stream to build segment streams from (made once; see :meth:`VP9Encoder.segment`).

    A segment's stream is made from this template with the VP9 *decoder*, so opening the
    container costs nothing; the packets come from the one :class:`VP9Encoder`.
    """
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream: Any = cast(Any, container).add_stream("libvpx-vp9", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame(16, 16, "yuv420p")
        frame.pts = 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    # The stream keeps its container (and so the template) alive.
    source: Any = av.open(io.BytesIO(buffer.getvalue()))
    return source.streams.video[0]


class VP9Encoder:
    """One VP9 realtime encoder kept across a recorder's segments.

    Constant quality with a capped bitrate; a keyframe only where a segment starts.
    Timestamps fed to the encoder grow across segments (its rate control needs that);
    each segment rebases them to its own start.

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
        #: the last timestamp given to the encoder (ms, grows across segments)
        self.last_pts = -1
        #: broken by an error: the recorder makes a new one
        self.broken = False
        #: nominal frame period (ms)
        self.period = max(1, round(1000 / fps)) if fps > 0 else 1
        try:
            ctx: Any = av.CodecContext.create("libvpx-vp9", "w")
            ctx.width = width
            ctx.height = height
            ctx.pix_fmt = "yuv420p"
            ctx.time_base = _MS
            ctx.framerate = Fraction(fps).limit_denominator(1000)
            # Keyframes are forced where segments start; none in between.
            ctx.gop_size = 100_000
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": "8",
                "crf": str(crf),
                "b": f"{max_kbps}k" if max_kbps else "0",
                "row-mt": "1",
                # no look-ahead: a frame's packet comes out with it, never in the next segment
                "lag-in-frames": "0",
                "threads": str(threads),
            }
            ctx.open()
            self._ctx = ctx
            _vp9_template()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"cannot set up the VP9 encoder ({exc})") from exc

    def encode(self, frame: Any) -> list[Any]:
        """Encode one ``av.VideoFrame`` (its pts on this encoder's clock)."""
        try:
            return cast(list[Any], self._ctx.encode(frame))
        except (av.FFmpegError, ValueError) as exc:
            self.broken = True
            raise EncoderError(f"VP9 encoding failed ({exc})") from exc

    def segment(self) -> VideoSegmentEncoder:
        """A new segment encoded by this encoder."""
        return VideoSegmentEncoder(self)


class VideoSegmentEncoder:
    """One segment of VP9 in WebM, encoded by a shared :class:`VP9Encoder`; made by
    :meth:`VP9Encoder.segment`."""

    def __init__(self, codec: VP9Encoder) -> None:
        self.codec = codec
        self.width = codec.width
        self.height = codec.height
        self.frames = 0
        self._last_pts = -1
        #: encoder pts minus segment pts (set by the first frame)
        self._base: int | None = None
        self._buffer = io.BytesIO()
        try:
            self._container: Any = cast(Any, av.open(self._buffer, "w", format="webm"))
            self._stream: Any = self._container.add_stream_from_template(
                _vp9_template(), opaque=True
            )
            self._stream.codec_context.width = self.width
            self._stream.codec_context.height = self.height
            self._stream.time_base = _MS
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"cannot set up a VP9 segment ({exc})") from exc

    def add(self, frame: Frame, offset: float) -> None:
        """Encode a BGR or BGRA frame ``offset`` seconds after the segment's start."""
        if frame.shape[0] != self.height or frame.shape[1] != self.width:
            raise EncoderError(
                f"frame of {frame.shape[1]}x{frame.shape[0]} in a {self.width}x{self.height} segment"
            )
        pts = max(round(offset * 1000), self._last_pts + 1)
        self._last_pts = pts
        codec = self.codec
        if self._base is None:
            # The encoder's clock goes on one frame period after the last segment's frame.
            self._base = max(0, codec.last_pts + codec.period - pts)
        codec.last_pts = pts + self._base
        try:
            # OpenCV's SIMD colour conversion is cheaper than swscale's bgr24 path.
            code = cv2.COLOR_BGRA2YUV_I420 if frame.shape[2] == 4 else cv2.COLOR_BGR2YUV_I420
            yuv = np.asarray(cv2.cvtColor(frame, code), np.uint8)
            # Wraps the new array without a copy (from_ndarray copies it: 0.1 ms a frame
            # at 640x480); nothing writes into it after this.
            video = av.VideoFrame.from_numpy_buffer(yuv, format="yuv420p")
            video.pts = codec.last_pts
            video.time_base = _MS
            if self.frames == 0:
                # Each segment starts with a keyframe, so it decodes on its own.
                video.pict_type = av.video.frame.PictureType.I
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"VP9 encoding failed ({exc})") from exc
        self._mux(codec.encode(video))
        self.frames += 1

    def _mux(self, packets: list[Any]) -> None:
        base = self._base or 0
        try:
            for packet in packets:
                if packet.pts is None or packet.pts < base:
                    raise EncoderError("a VP9 packet from before the segment came out late")
                packet.pts -= base
                packet.dts = packet.pts
                packet.stream = self._stream
                self._container.mux(packet)
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"VP9 muxing failed ({exc})") from exc

    def finish(self) -> bytes:
        """Close the container and return the WebM bytes (the encoder goes on)."""
        try:
            self._container.close()
        except (av.FFmpegError, ValueError) as exc:
            raise EncoderError(f"VP9 muxing failed at the end of a segment ({exc})") from exc
        return self._buffer.getvalue()

    def abandon(self) -> None:
        """Drop the segment (after an error); never raises."""
        # The container is broken already; there is nothing to keep.
        with contextlib.suppress(Exception):
            self._container.close()


class AudioSegmentEncoder:
    """Opus in WebM from mono float samples in [-1, 1], in frames of ``OPUS_FRAME_MS``.

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
            # 60 ms frames: a third of the packets of the 20 ms default, 13 % fewer bytes
            # and less CPU for a recording nobody listens to live.
            ctx.options = {"frame_duration": str(OPUS_FRAME_MS)}
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
                # The last chunk may be short: libopus pads it and marks the padding to
                # be skipped (WebM DiscardPadding), so the segment decodes to its length.
                chunk, self._pending = self._pending[:size], self._pending[size:]
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
        """Flush (libopus pads the last frame and marks the padding to be skipped) and
        return the WebM bytes."""
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
