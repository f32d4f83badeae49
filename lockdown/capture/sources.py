"""Capture sources: camera frames (OpenCV), microphone blocks (sounddevice), screen (mss).

Every camera kind — a device by index or name, a video file, a generated test pattern —
is opened by :func:`open_camera` from one setting (``proctoring.camera_source``) and read
through the same :class:`FrameSource` interface, so tests and the demo run the code path
a real camera runs. A source that cannot open raises :class:`SourceUnavailable`; one that
stops working raises :class:`SourceLost`; both carry a reason in plain words.
"""

from __future__ import annotations

import collections
import errno
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from lockdown import log
from lockdown.capture import PATTERN
from lockdown.capture.encoder import Frame, Samples, even

#: A microphone whose callback stays silent this long is taken as gone.
MIC_STALL_SECONDS: Final = 3.0
#: At most this much audio waits in the ring buffer (the reader is late or stalled).
MIC_RING_SECONDS: Final = 10.0


class SourceError(Exception):
    """A source problem; the message says what happened in plain words."""


class SourceUnavailable(SourceError):
    """The source could not be opened (no such device, permission denied, bad file)."""


class SourceLost(SourceError):
    """The source worked and stopped (device unplugged, server gone)."""


class FrameSource(Protocol):
    """BGR frames of a fixed size, one per :meth:`read`."""

    #: what this source is and which backend reads it (for health and logs)
    description: str
    #: True when :meth:`read` returns at once (files, patterns): the caller paces it
    paced: bool

    def read(self) -> Frame: ...

    def close(self) -> None: ...


def one_opencv_thread() -> None:
    """Have OpenCV work in the calling thread only (process-wide; only capture uses it).

    Its thread pool spins (sched_yield) waiting for work between the small jobs we give
    it (a colour conversion, a resize, a face look); on 2 cores that busy-waiting cost
    more than it saved: a 30 s camera recording took 3.4 instead of 4.0 CPU-s.
    """
    cv2.setNumThreads(1)


def _fit(frame: Frame, width: int, height: int) -> Frame:
    if frame.shape[1] == width and frame.shape[0] == height:
        return frame
    return np.asarray(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), np.uint8)


class OpenCvSource:
    """A camera device or a video file read through ``cv2.VideoCapture`` (files loop)."""

    def __init__(self, capture: Any, *, description: str, width: int, height: int, loop: bool):
        self._capture = capture
        self.description = description
        self.paced = loop
        self._width = width
        self._height = height
        self._loop = loop
        self._failures = 0

    def read(self) -> Frame:
        ok, frame = self._capture.read()
        if not ok and self._loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._capture.read()
        if not ok or frame is None:
            self._failures += 1
            if self._failures >= 3 or self._loop:
                raise SourceLost(f"{self.description}: no more frames (device vanished?)")
            return self.read()
        self._failures = 0
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return _fit(np.asarray(frame, np.uint8), self._width, self._height)

    def native_size(self) -> tuple[int, int] | None:
        """The size the device (or file) delivers before scaling; None when unknown."""
        width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return (width, height) if width > 0 and height > 0 else None

    def close(self) -> None:
        self._capture.release()


class PatternSource:
    """A generated test pattern: moving colour bars and a running frame counter."""

    def __init__(self, width: int, height: int) -> None:
        self.description = f"test pattern {width}x{height}"
        self.paced = True
        self._count = 0
        x = np.linspace(0, 255, width, dtype=np.float32)
        y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
        base = np.empty((height, width, 3), np.uint8)
        base[..., 0] = x[None, :].astype(np.uint8)
        base[..., 1] = y.astype(np.uint8)
        base[..., 2] = ((x[None, :] + y) / 2).astype(np.uint8)
        self._base = base

    def read(self) -> Frame:
        self._count += 1
        frame = np.roll(self._base, self._count * 4, axis=1)
        cv2.putText(
            frame,
            f"Lockdown {self._count:06d}",
            (16, frame.shape[0] // 2),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0,
            (255, 255, 255),
            2,
        )
        return frame

    def close(self) -> None:
        pass


def _linux_camera_index(name: str) -> int | None:
    for node in sorted(Path("/sys/class/video4linux").glob("video*")):
        try:
            label = (node / "name").read_text(encoding="utf-8").strip()
        except OSError:
            continue
        if name.casefold() in label.casefold():
            return int(node.name.removeprefix("video"))
    return None


def _device_problem(index: int) -> str:
    if not sys.platform.startswith("linux"):
        return f"no camera at index {index} (or it is in use by another program)"
    node = Path(f"/dev/video{index}")
    if not node.exists():
        return f"no camera at index {index} ({node} does not exist)"
    if not os.access(node, os.R_OK | os.W_OK):
        return f"permission denied for camera {node}; add the user to the 'video' group"
    return f"camera {node} cannot be opened (in use by another program?)"


def open_camera(spec: str, *, width: int, height: int, fps: float) -> FrameSource:
    """Open the camera named by ``proctoring.camera_source``.

    Args:
        spec: a device index ("0"), a device name, a video file path or "pattern".
        width: frame width delivered by :meth:`FrameSource.read`.
        height: frame height.
        fps: the rate the caller reads at (asked of devices).

    Raises:
        SourceUnavailable: the camera cannot be opened; the message says why.
    """
    spec = spec.strip()
    width, height = even(width), even(height)
    one_opencv_thread()
    # OpenCV warns on stderr for every device it cannot open; our reason says it instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    if spec == PATTERN:
        return PatternSource(width, height)
    path = Path(spec).expanduser()
    if spec and not spec.isdigit() and (path.is_file() or os.sep in spec):
        if not path.is_file():
            raise SourceUnavailable(f"camera video file {path} does not exist")
        if not os.access(path, os.R_OK):
            raise SourceUnavailable(f"camera video file {path}: permission denied")
        capture = cv2.VideoCapture(str(path))
        if not capture.isOpened() or not capture.read()[0]:
            capture.release()
            raise SourceUnavailable(f"camera video file {path} cannot be read as a video")
        capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
        return OpenCvSource(
            capture,
            description=f"video file {path.name} (OpenCV)",
            width=width,
            height=height,
            loop=True,
        )
    if spec.isdigit():
        index: int | str = int(spec)
    elif sys.platform == "win32":
        index = f"video={spec}"
    else:
        found = _linux_camera_index(spec) if sys.platform.startswith("linux") else None
        if found is None:
            raise SourceUnavailable(f"no camera named {spec!r}; see `lockdown environment`")
        index = found
    capture = cv2.VideoCapture(index)
    if not capture.isOpened():
        capture.release()
        raise SourceUnavailable(
            _device_problem(index)
            if isinstance(index, int)
            else f"camera {spec!r} cannot be opened"
        )
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    capture.set(cv2.CAP_PROP_FPS, fps)
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    backend = capture.getBackendName() if hasattr(capture, "getBackendName") else "OpenCV"
    return OpenCvSource(
        capture, description=f"camera {spec} ({backend})", width=width, height=height, loop=False
    )


# -- microphone -----------------------------------------------------------------------------


def refresh_audio_devices() -> None:
    """Make PortAudio enumerate the devices again (a microphone plugged in or a sound
    server started after the first look)."""
    import sounddevice as sd

    # WORKAROUND(PortAudio caches its device list at initialisation; sounddevice has no
    # public call to enumerate again): re-initialise the library. Only the microphone
    # recorder uses PortAudio, and it has no stream open when it calls this.
    sd._terminate()
    sd._initialize()


def find_input_device(name: str) -> tuple[int, str]:
    """The PortAudio index and name of the input ``name`` (empty: the default input).

    Raises:
        SourceUnavailable: no such input (after one refresh of the device list).
    """
    import sounddevice as sd

    for attempt in range(2):
        if attempt:
            refresh_audio_devices()
        try:
            devices = list(sd.query_devices())
            if not name:
                default = sd.default.device[0]
                if isinstance(default, int) and default >= 0:
                    return default, str(devices[default]["name"])
                for index, info in enumerate(devices):
                    if info["max_input_channels"] > 0:
                        return index, str(info["name"])
                continue
            for index, info in enumerate(devices):
                if (
                    info["max_input_channels"] > 0
                    and name.casefold() in str(info["name"]).casefold()
                ):
                    return index, str(info["name"])
        except sd.PortAudioError as exc:
            raise SourceUnavailable(f"the audio system cannot list microphones ({exc})") from None
    if not name:
        raise SourceUnavailable("no microphone found (no default input device)")
    raise SourceUnavailable(f"no microphone named {name!r}; see `lockdown environment`")


def capture_age(time_info: Any, frames: int, rate: int, buffered: float) -> float:
    """Seconds since the first sample of a callback's block was captured.

    PortAudio gives the capture (ADC) time of the block's first sample and the time now
    on its stream clock; their difference includes the input buffering (``latency=
    "high"`` holds ~0.1 s more than the block), which ``frames / rate`` alone leaves out.
    It is believed up to ``buffered`` (the stream's input latency) more than the block:
    the first blocks after the start claim more (0.7 s measured through the PulseAudio
    ALSA plugin) than a tone played at a known time shows. A host that gives no times
    (zeros) or nonsense falls back to ``frames / rate``.
    """
    least = frames / rate
    try:
        age = float(time_info.currentTime) - float(time_info.inputBufferAdcTime)
    except (AttributeError, TypeError, ValueError):
        return least
    if not least <= age < least + 10.0:
        return least
    return min(age, least + max(0.0, buffered))


@dataclass(frozen=True)
class AudioBlock:
    """Samples captured together; ``mono`` is the capture time of the first sample."""

    mono: float
    samples: Samples


class MicrophoneSource:
    """A sounddevice callback stream feeding a ring buffer that :meth:`read` drains.

    Counts what never reaches the reader: ``overflows`` (PortAudio's input-overflow
    status: the device had samples nobody took in time) and ``dropped_blocks`` (the
    ring was full: the reader is late or stalled; the oldest block goes).

    Args:
        device: part of the input's name (empty: the default input).
        rate: sample rate (Hz).
        block_seconds: length of a block (one callback).
        ring_seconds: at most this much audio waits for the reader.
        now: the capture clock's ``now`` (monotonic seconds) that dates blocks.
    """

    def __init__(
        self,
        device: str,
        rate: int,
        *,
        block_seconds: float = 0.1,
        ring_seconds: float = MIC_RING_SECONDS,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._device_name = device
        self.rate = rate
        self._block = max(1, round(rate * block_seconds))
        self.block_seconds = block_seconds
        self._now = now
        self._ring: collections.deque[AudioBlock] = collections.deque(
            maxlen=max(1, round(ring_seconds / block_seconds))
        )
        self._ready = threading.Condition()
        self._stream: Any = None
        #: the stream's input latency (s): how much older than its samples a block may be
        self.buffered = 0.0
        self._last_callback = 0.0
        self._opened = 0.0
        self.dropped_blocks = 0
        self.overflows = 0
        self.description = "microphone"

    def open(self) -> None:
        """Open and start the input stream.

        Raises:
            SourceUnavailable: no such microphone, or it cannot be opened.
        """
        import sounddevice as sd

        index, name = find_input_device(self._device_name)
        self.description = f"microphone {name!r} (PortAudio {sd.query_hostapis(sd.query_devices(index)['hostapi'])['name']})"
        try:
            self._stream = sd.InputStream(
                device=index,
                channels=1,
                samplerate=self.rate,
                dtype="float32",
                # Blocks under ~0.1 s make PortAudio's ALSA host poll hard (measured: 50 ms
                # blocks cost 8x the CPU of 100 ms blocks through the pulse plugin).
                blocksize=self._block,
                latency="high",
                callback=self._callback,
            )
            self.buffered = float(self._stream.latency)
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            text = str(exc)
            if "ermission" in text or str(errno.EACCES) in text:
                raise SourceUnavailable(f"{self.description}: permission denied") from None
            raise SourceUnavailable(f"{self.description} cannot be opened ({text})") from None
        self._opened = self._now()
        log.capture.info(
            "Opened %s at %d Hz (input latency %.3f s)", self.description, self.rate, self.buffered
        )

    def _callback(self, indata: Any, frames: int, time_info: Any, status: Any) -> None:
        now = self._now()
        self._last_callback = now
        if getattr(status, "input_overflow", False):
            self.overflows += 1
        block = AudioBlock(
            now - capture_age(time_info, frames, self.rate, self.buffered),
            np.array(indata[:, 0], dtype=np.float32),
        )
        with self._ready:
            if len(self._ring) == self._ring.maxlen:
                self.dropped_blocks += 1
            self._ring.append(block)
            self._ready.notify()

    def read(self, timeout: float) -> list[AudioBlock]:
        """Every block captured since the last call (waits up to ``timeout`` for one).

        Raises:
            SourceLost: the stream stopped or has delivered nothing for a while.
        """
        with self._ready:
            if not self._ring:
                self._ready.wait(timeout)
        blocks = self.take()
        if not blocks:
            stream = self._stream
            now = self._now()
            if stream is None or not stream.active:
                raise SourceLost(f"{self.description} stopped (device vanished?)")
            last = self._last_callback or self._opened
            # The first callback can take a few seconds while the sound server wakes up.
            grace = MIC_STALL_SECONDS * (3 if not self._last_callback else 1)
            if now - last > grace:
                raise SourceLost(
                    f"{self.description} delivered no sound for {now - last:.0f} s (device vanished?)"
                )
        return blocks

    def take(self) -> list[AudioBlock]:
        """Every block captured since the last call, without waiting or checking the
        stream (:meth:`read` waits and checks, then takes)."""
        with self._ready:
            blocks = list(self._ring)
            self._ring.clear()
        return blocks

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.abort()
                stream.close()
            except Exception as exc:  # the device is gone already
                log.capture.debug("Closing %s: %s", self.description, exc)


# -- screen -------------------------------------------------------------------------------


class ScreenSource:
    """Screenshots through ``mss.MSS``; create, read and close it in ONE thread."""

    def __init__(self, area: str, max_width: int, *, grabber: Callable[[], Any] | None = None):
        """Args: ``grabber`` makes the grabber (default ``mss.MSS``; tests give another)."""
        if grabber is None:
            import mss

            grabber = mss.MSS
        one_opencv_thread()
        self._mss: Any = grabber()
        monitors = self._mss.monitors
        if len(monitors) < 2 and area == "primary":
            self.close()
            raise SourceUnavailable("no screen found to record")
        # monitors[0] is the bounding box of all screens; the primary one is the screen
        # the system marks as primary (the first one where nothing is marked).
        self._monitor = monitors[0] if area == "all" else self._mss.primary_monitor
        self._max_width = max_width
        self.description = (
            f"screen {'all' if area == 'all' else 'primary'} "
            f"{self._monitor['width']}x{self._monitor['height']} (mss)"
        )
        width = self._monitor["width"]
        scale = min(1.0, max_width / width)
        self.width = even(round(width * scale))
        self.height = even(round(self._monitor["height"] * scale))

    def grab(self) -> npt.NDArray[np.uint8]:
        """The screen as BGRA at full size (a view into mss's buffer; do not keep it)."""
        try:
            shot = self._mss.grab(self._monitor)
        except Exception as exc:  # mss raises ScreenShotError with the X error inside
            raise SourceLost(f"screen capture failed ({exc})") from None
        return np.frombuffer(shot.raw, np.uint8).reshape(shot.height, shot.width, 4)

    def scale(self, bgra: npt.NDArray[np.uint8]) -> Frame:
        """A BGRA frame of the configured size from a full-size grab (the encoder takes
        BGRA as it is: no BGR copy)."""
        if bgra.shape[1] != self.width or bgra.shape[0] != self.height:
            # Bilinear: 2.3 ms for 1920x1080 -> 1280x720 here, where INTER_AREA's
            # non-integer path took 15 ms (more than encoding the frame); at these
            # ratios (<= 2x) every source pixel still contributes, so text stays legible.
            return np.asarray(
                cv2.resize(bgra, (self.width, self.height), interpolation=cv2.INTER_LINEAR),
                np.uint8,
            )
        return bgra.copy()  # mss reuses its buffer

    def close(self) -> None:
        try:
            self._mss.close()
        except Exception as exc:
            log.capture.debug("Closing the screen grabber: %s", exc)
