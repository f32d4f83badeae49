"""Test media made on the fly: camera videos from scikit-image's public-domain astronaut
photo (one face, two faces, no face, dark) and decoding helpers for segments."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from skimage import data

WIDTH, HEIGHT = 640, 480


def _astronaut() -> np.ndarray[Any, Any]:
    return np.asarray(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), np.uint8)


def scene(kind: str) -> np.ndarray[Any, Any]:
    """A 640x480 BGR frame: "one" face, "two" faces side by side, "none", "dark"."""
    photo = _astronaut()
    frame = np.full((HEIGHT, WIDTH, 3), (200, 190, 180), np.uint8)
    if kind == "one":
        frame[:, 80:560] = cv2.resize(photo, (480, 480))
    elif kind == "two":
        half = cv2.resize(photo, (320, 320))
        frame[80:400, :320] = half
        frame[80:400, 320:] = half
    elif kind == "none":
        frame[:, 80:560] = cv2.resize(photo[300:, 250:], (480, 480))
    elif kind == "dark":
        frame = (scene("one") * 0.08).astype(np.uint8)
    else:
        raise ValueError(kind)
    return frame


def camera_video(path: Path, phases: Sequence[tuple[str, float]], fps: float) -> Path:
    """Write an MJPG .avi with each (scene, seconds) phase in turn."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for kind, seconds in phases:
        frame = scene(kind)
        for _ in range(round(seconds * fps)):
            writer.write(frame)
    writer.release()
    return path


def video_frames(blob: bytes) -> list[np.ndarray[Any, Any]]:
    """Every frame of a WebM segment, as BGR arrays."""
    with av.open(io.BytesIO(blob)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def audio_samples(blob: bytes) -> tuple[np.ndarray[Any, Any], int]:
    """The mono samples (float) and rate of an audio segment."""
    with av.open(io.BytesIO(blob)) as container:
        chunks, rate = [], 0
        for frame in container.decode(audio=0):
            rate = frame.sample_rate
            chunks.append(frame.to_ndarray().astype(np.float64).reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0)
    if np.abs(samples).max(initial=0) > 1.5:
        samples = samples / 32768.0
    return samples, rate


def dominant_frequency(samples: np.ndarray[Any, Any], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])
