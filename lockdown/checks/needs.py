"""What an exam needs of this computer: its streams, its recording rate, its disk.

The recording rate is what the encoders produce at most for the exam's settings (see
``docs/capture.md``): the camera at its bitrate cap (``proctoring.camera_max_kbps``), the
microphone at Opus' 16 kbit/s plus the container (~17 kbit/s measured), the screen at a
budget of 64 kbit/s (a mostly still exam page measured ~20 kbit/s: 8.8 MB an hour; a
busy one more). The one place these figures are derived from the settings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

#: stream -> the option that switches it on
STREAMS: Final = (
    ("camera", "proctoring.camera"),
    ("microphone", "proctoring.microphone"),
    ("screen", "proctoring.screen"),
)
ALL_STREAMS: Final = tuple(name for name, _ in STREAMS)
MICROPHONE_KBPS: Final = 17.0
SCREEN_KBPS: Final = 64.0
#: the camera's rate when its cap is off (``camera_max_kbps = 0``): quality only
CAMERA_UNCAPPED_KBPS: Final = 500.0


def exam_streams(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The streams an exam with these settings records."""
    return tuple(name for name, key in STREAMS if settings[key])


def stream_kbps(settings: Mapping[str, Any], stream: str) -> float:
    if stream == "camera":
        cap = float(settings["proctoring.camera_max_kbps"])
        return cap if cap > 0 else CAMERA_UNCAPPED_KBPS
    if stream == "microphone":
        return MICROPHONE_KBPS
    return SCREEN_KBPS


def recording_kbps(settings: Mapping[str, Any], streams: Iterable[str]) -> float:
    """The recording rate of these streams, kbit/s."""
    return sum(stream_kbps(settings, s) for s in streams)


def exam_hours(settings: Mapping[str, Any]) -> float:
    """The exam's length (``kiosk.exam_duration``), else ``checks.exam_hours``."""
    seconds = float(settings["kiosk.exam_duration"])
    return seconds / 3600.0 if seconds > 0 else float(settings["checks.exam_hours"])


def disk_needed_mb(settings: Mapping[str, Any], streams: Iterable[str]) -> float:
    """Free disk the exam needs, MiB: margin x hours x rate, never under the minimum."""
    kbps = recording_kbps(settings, streams)
    recorded_mb = kbps * 1000 / 8 * exam_hours(settings) * 3600 / 2**20
    margin = float(settings["checks.disk_margin"])
    return max(float(settings["checks.min_free_disk_mb"]), margin * recorded_mb)
