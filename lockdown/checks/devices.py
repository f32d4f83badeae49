"""The device steps: the camera inventory, the camera live, the microphone, a test recording.

- ``cameras``: the inventory of :mod:`lockdown.platform.cameras`; its concerns (two
  cameras, a front and a back one, a camera that is also a disk or network device, a
  virtual camera) are warnings in the guide's words.
- ``camera``: opens ``proctoring.camera_source`` as the recorder does, lets it settle
  (2 s: exposure and white balance), then measures the frame rate, the size the camera
  delivers and the brightness (the WebRTC rule of :func:`lockdown.capture.analyzers.is_dark`,
  on most of the frames after the settle): FAIL when it cannot be opened (no camera,
  permission denied, busy: each its own result and remedy) or below 320x240; WARN below
  640x480 or 10 fps, and when too dark. A configured video file or test pattern is *not
  a physical camera*: refused in an installed build, said plainly in a development one.
- ``microphone``: opens the input as the recorder does and listens while the candidate
  reads the sentence shown (``check.microphone.sentence``): FAIL when there is no input,
  it is denied, or it delivers digital silence (exact zeros, for ``MIC_SILENT_S``); PASS when the level rises
  ``MIC_RISE_DB`` (20 dB) above the noise floor; else WARN with a retry (the client never
  fails a candidate on its own judgement of a sound).
- ``test_recording``: the exam's streams through the real recorders for 5 s, each
  segment sealed into a throw-away spool with a fresh key, read back, verified,
  decrypted and decoded, then the spool is deleted.

Live values go to whoever watches (the check screen), through callables the caller puts
in ``ctx.shared``: ``PREVIEW`` gets ``(frame, mean_luma, dark)`` for camera frames,
``LEVEL`` gets the microphone's level in dBFS per block. They are called from the
check's worker thread.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

from lockdown import build, log
from lockdown.capture import PATTERN
from lockdown.checks.base import CheckContext, CheckDefaults, CheckResult, Status
from lockdown.platform import cameras as inventory

#: ``ctx.shared`` key of the preview listener: (frame, mean luma, dark)
PREVIEW: Final = "preview"
#: ``ctx.shared`` key of the level listener: dBFS
LEVEL: Final = "level"
SETTLE_S: Final = 2.0
MEASURE_S: Final = 1.5
MIN_FPS: Final = 10.0
GOOD_SIZE: Final = (640, 480)
LEAST_SIZE: Final = (320, 240)
MIC_RISE_DB: Final = 20.0
MIC_LISTEN_S: Final = 8.0
#: exact zeros this long are a muted input: no need to listen on
MIC_SILENT_S: Final = 4.0
#: speech quieter than this is not speech (dBFS)
MIC_LEAST_PEAK: Final = -55.0
TEST_RECORDING_S: Final = 5.0

_CONCERN_TEXT: Final = {
    inventory.Concern.SEVERAL_USER_FACING: "check.cameras.several",
    inventory.Concern.FRONT_AND_BACK: "check.cameras.front_and_back",
    inventory.Concern.STORAGE: "check.cameras.storage",
    inventory.Concern.PTP: "check.cameras.storage",
    inventory.Concern.NETWORK: "check.cameras.network",
    inventory.Concern.VIRTUAL: "check.cameras.virtual",
}


def _listener(ctx: CheckContext, key: str) -> Callable[..., None] | None:
    found = ctx.shared.get(key)
    return found if callable(found) else None


class CameraInventoryCheck(CheckDefaults):
    """The cameras this computer has, and what the guide warns about them."""

    id = "cameras"
    title_id = "check.cameras.title"

    def __init__(self, lister: Callable[[], inventory.CameraInventory] | None = None) -> None:
        self._lister = lister or inventory.camera_inventory

    def run(self, ctx: CheckContext) -> CheckResult:
        if "camera" not in ctx.streams:
            return CheckResult(Status.SKIP, "check.camera.not_recorded")
        inv = self._lister()
        details: dict[str, Any] = {
            "backend": inv.backend,
            "cameras": [c.describe() for c in inv.cameras],
            "ignored": [{"node": i.node, "reason": i.reason, "name": i.name} for i in inv.ignored],
        }
        measured = {"cameras": len(inv.cameras)}
        if inv.error:
            details["error"] = inv.error
            return CheckResult(
                Status.WARN, "check.cameras.unknown", {"reason": inv.error}, None, measured, details
            )
        found = inventory.concerns(inv)
        details["concerns"] = [
            {"concern": f.concern.value, "cameras": list(f.cameras)} for f in found
        ]
        if found:
            first = found[0]
            names = ", ".join(dict.fromkeys(n for f in found for n in f.cameras))
            return CheckResult(
                Status.WARN,
                _CONCERN_TEXT[first.concern],
                {"cameras": names, "count": len(inv.cameras)},
                "check.cameras.remedy",
                measured,
                details,
            )
        if not inv.cameras:
            # the camera step says whether the configured source opens (a file, a pattern)
            return CheckResult(
                Status.PASS, "check.cameras.none_listed", {}, None, measured, details
            )
        return CheckResult(
            Status.PASS,
            "check.cameras.ok",
            {"cameras": ", ".join(c.name for c in inv.cameras)},
            None,
            measured,
            details,
        )


def physical_camera(spec: str) -> bool:
    """False for a configured video file or the test pattern (not a camera at all)."""
    spec = spec.strip()
    if spec == PATTERN:
        return False
    return not (
        spec and not spec.isdigit() and (os.sep in spec or Path(spec).expanduser().is_file())
    )


def _open_problem(reason: str) -> tuple[str, str]:
    """(message id, remedy id) for a camera that did not open, from the source's reason."""
    folded = reason.casefold()
    if "permission" in folded or "denied" in folded:
        return "check.camera.denied", "check.camera.denied_remedy"
    if "in use" in folded or "busy" in folded:
        return "check.camera.busy", "check.camera.busy_remedy"
    return "check.camera.missing", "check.camera.missing_remedy"


class CameraCheck(CheckDefaults):
    """The camera opens, delivers enough frames of enough size, and is bright enough."""

    id = "camera"
    title_id = "check.camera.title"

    def __init__(self, *, settle: float = SETTLE_S, measure: float = MEASURE_S) -> None:
        self.settle = settle
        self.measure = measure

    def run(self, ctx: CheckContext) -> CheckResult:
        if "camera" not in ctx.streams:
            return CheckResult(Status.SKIP, "check.camera.not_recorded")
        from lockdown.capture.analyzers import downscale_gray, is_dark, luma_stats
        from lockdown.capture.sources import SourceError, open_camera

        settings = ctx.settings
        spec = str(settings["proctoring.camera_source"])
        physical = physical_camera(spec)
        details: dict[str, Any] = {"source": spec, "physical": physical}
        if not physical and build.current().installed and not ctx.demo:
            return CheckResult(
                Status.FAIL,
                "check.camera.not_physical",
                {"source": spec},
                "check.camera.not_physical_remedy",
                details=details,
            )
        fps_asked = float(settings["proctoring.camera_fps"])
        try:
            source = open_camera(
                spec,
                width=int(settings["proctoring.camera_width"]),
                height=int(settings["proctoring.camera_height"]),
                fps=fps_asked,
            )
        except SourceError as exc:
            message, remedy = _open_problem(str(exc))
            details["error"] = str(exc)
            return CheckResult(Status.FAIL, message, {"reason": str(exc)}, remedy, details=details)
        preview = _listener(ctx, PREVIEW)
        details["backend"] = source.description
        try:
            native = getattr(source, "native_size", None)
            size: tuple[int, int] | None = native() if callable(native) else None
            started = time.monotonic()
            settle_end = started + self.settle
            measure_end = settle_end + self.measure
            period = 1.0 / fps_asked
            next_frame = started
            frames = 0
            darks: list[bool] = []
            means: list[float] = []
            while not ctx.cancelled.is_set():
                now = time.monotonic()
                if now >= measure_end:
                    break
                if source.paced and now < next_frame:
                    time.sleep(next_frame - now)
                frame = source.read()
                next_frame = max(next_frame + period, time.monotonic() - period)
                if size is None:
                    size = (int(frame.shape[1]), int(frame.shape[0]))
                stats = luma_stats(downscale_gray(frame))
                dark = is_dark(stats)
                if time.monotonic() >= settle_end:
                    frames += 1
                    darks.append(dark)
                    means.append(stats.mean)
                if preview is not None:
                    preview(frame, stats.mean, dark)
        except SourceError as exc:
            message, remedy = _open_problem(str(exc))
            details["error"] = str(exc)
            return CheckResult(Status.FAIL, message, {"reason": str(exc)}, remedy, details=details)
        finally:
            source.close()
        fps = frames / self.measure if self.measure > 0 else 0.0
        width, height = size or (0, 0)
        mean = sum(means) / len(means) if means else 0.0
        measured = {
            "fps": round(fps, 1),
            "width_px": width,
            "height_px": height,
            "mean_luma": round(mean, 1),
            "dark_share": round(sum(darks) / len(darks), 2) if darks else None,
        }
        values = {
            "width": width,
            "height": height,
            "fps": f"{fps:.0f}",
            "source": source.description,
        }
        if not frames:
            return CheckResult(
                Status.FAIL,
                "check.camera.no_frames",
                values,
                "check.camera.missing_remedy",
                measured,
                details,
            )
        if width < LEAST_SIZE[0] or height < LEAST_SIZE[1]:
            return CheckResult(
                Status.FAIL,
                "check.camera.too_small",
                values,
                "check.camera.size_remedy",
                measured,
                details,
            )
        if sum(darks) * 2 > len(darks):
            return CheckResult(
                Status.WARN,
                "check.camera.too_dark",
                values,
                "check.camera.too_dark_remedy",
                measured,
                details,
            )
        if width < GOOD_SIZE[0] or height < GOOD_SIZE[1] or fps < MIN_FPS:
            return CheckResult(
                Status.WARN,
                "check.camera.poor",
                values,
                "check.camera.size_remedy",
                measured,
                details,
            )
        message = "check.camera.ok" if physical else "check.camera.not_physical_dev"
        return CheckResult(Status.PASS, message, values, None, measured, details)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.floor(q * (len(ordered) - 1))))]


def judge_levels(levels: list[float], any_sound: bool) -> tuple[Status, str, dict[str, float]]:
    """The microphone's verdict from its block levels (dBFS) and whether any sample was
    not exactly zero: (status, message id, measured)."""
    if not any_sound:
        return Status.FAIL, "check.microphone.silent", {}
    floor = _percentile(levels, 0.10)
    peak = _percentile(levels, 0.95)
    measured = {
        "floor_dbfs": round(floor, 1),
        "peak_dbfs": round(peak, 1),
        "rise_db": round(peak - floor, 1),
    }
    if peak - floor >= MIC_RISE_DB and peak >= MIC_LEAST_PEAK:
        return Status.PASS, "check.microphone.ok", measured
    return Status.WARN, "check.microphone.quiet", measured


class MicrophoneCheck(CheckDefaults):
    """The microphone is there, not silent, and hears the candidate read a sentence."""

    id = "microphone"
    title_id = "check.microphone.title"

    def __init__(self, *, listen: float = MIC_LISTEN_S, least: float = 2.0) -> None:
        self.listen = listen
        #: listen at least this long before a pass (a click is not a voice)
        self.least = least

    def run(self, ctx: CheckContext) -> CheckResult:
        if "microphone" not in ctx.streams:
            return CheckResult(Status.SKIP, "check.microphone.not_recorded")
        from lockdown.capture.analyzers import dbfs
        from lockdown.capture.sources import MicrophoneSource, SourceError

        rate = int(ctx.settings["proctoring.audio_rate"])
        source = MicrophoneSource(str(ctx.settings["proctoring.microphone_device"]), rate)
        details: dict[str, Any] = {}
        try:
            source.open()
        except SourceError as exc:
            denied = "permission" in str(exc).casefold()
            details["error"] = str(exc)
            return CheckResult(
                Status.FAIL,
                "check.microphone.denied" if denied else "check.microphone.missing",
                {"reason": str(exc)},
                "check.microphone.denied_remedy" if denied else "check.microphone.missing_remedy",
                details=details,
            )
        details["backend"] = source.description
        level = _listener(ctx, LEVEL)
        levels: list[float] = []
        any_sound = False
        started = time.monotonic()
        try:
            while not ctx.cancelled.is_set() and time.monotonic() - started < self.listen:
                for block in source.read(timeout=0.5):
                    samples = block.samples
                    value = dbfs(samples)
                    levels.append(value)
                    if not any_sound and len(samples) and float(abs(samples).max()) > 0.0:
                        any_sound = True
                    if level is not None:
                        level(value)
                if not any_sound and time.monotonic() - started >= MIC_SILENT_S:
                    break
                if time.monotonic() - started >= self.least and len(levels) >= 10:
                    status, _, _ = judge_levels(levels, any_sound)
                    if status is Status.PASS:
                        break
        except SourceError as exc:
            details["error"] = str(exc)
            return CheckResult(
                Status.FAIL,
                "check.microphone.missing",
                {"reason": str(exc)},
                "check.microphone.missing_remedy",
                details=details,
            )
        finally:
            source.close()
        if not levels:
            return CheckResult(
                Status.FAIL,
                "check.microphone.silent",
                {},
                "check.microphone.silent_remedy",
                details=details,
            )
        status, message, measured = judge_levels(levels, any_sound)
        remedy = {
            Status.FAIL: "check.microphone.silent_remedy",
            Status.WARN: "check.microphone.quiet_remedy",
        }.get(status)
        values = {k: f"{v:.0f}" for k, v in measured.items()}
        return CheckResult(status, message, values, remedy, measured, details)


def _decoded_units(mime: str, data: bytes) -> int:
    """Video frames or audio samples a segment decodes to (0: it does not decode)."""
    import av

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            units = 0
            if mime.startswith("audio"):
                for frame in container.decode(audio=0):
                    units += int(frame.samples)
            else:
                for _ in container.decode(video=0):
                    units += 1
            return units
    except Exception as exc:  # av raises its own error classes for a broken file
        log.checks.warning("A test segment did not decode: %s", exc)
        return 0


def _screen_unavailable(settings: Mapping[str, Any]) -> str:
    """Why the screen cannot be grabbed here ("" when it can)."""
    from lockdown.capture.sources import ScreenSource

    try:
        ScreenSource(
            str(settings["proctoring.screen_area"]), int(settings["proctoring.screen_max_width"])
        ).close()
    except Exception as exc:  # mss raises its own errors without a display
        return str(exc) or type(exc).__name__
    return ""


class SampleRecordingCheck(CheckDefaults):
    """Five seconds through the exam's own recorders, sealed, read back and discarded."""

    id = "test_recording"
    title_id = "check.recording.title"
    time_limit = 40.0

    def __init__(self, *, seconds: float = TEST_RECORDING_S) -> None:
        self.seconds = seconds

    def run(self, ctx: CheckContext) -> CheckResult:
        if not ctx.streams:
            return CheckResult(Status.SKIP, "check.recording.nothing")
        from lockdown.capture.base import Segment, Stream
        from lockdown.capture.clock import CaptureClock
        from lockdown.capture.operation import build_recorder
        from lockdown.events import Event
        from lockdown.upload import crypto
        from lockdown.upload.spool import SEGMENTS_DIR, Spool, decode_segment, segment_file_name

        outcomes = ctx.shared.get("outcomes", {})
        streams = [
            s
            for s in ctx.streams
            # a device its own step found missing is already reported there
            if not (s in ("camera", "microphone") and getattr(outcomes.get(s), "blocks", False))
        ]
        if not streams:
            return CheckResult(Status.SKIP, "check.recording.devices_failed")
        unavailable: dict[str, str] = {}
        if "screen" in streams:
            # WORKAROUND(a screen recorder started without a screen dies with a traceback
            # in its thread; the recorders' own robustness is another change): look first.
            why = _screen_unavailable(ctx.settings)
            if why:
                unavailable["screen"] = why
                streams.remove("screen")
        settings: dict[str, Any] = dict(ctx.settings)
        settings["proctoring.segment_length"] = max(2.0, self.seconds + 5.0)
        events: list[Event] = []
        key = crypto.new_key()
        folder = Path(tempfile.mkdtemp(prefix="lockdown-check-recording-"))
        details: dict[str, Any] = {}
        try:
            spool = Spool.open(folder / "spool", report=events.append, max_bytes=256 << 20, key=key)
            stored: list[Segment] = []
            lock = threading.Lock()

            def sink(segment: Segment) -> None:
                spool.add(segment)
                with lock:
                    stored.append(segment)

            clock = CaptureClock()
            recorders = [
                build_recorder(Stream(s), settings, events.append, clock=clock) for s in streams
            ]
            for recorder in recorders:
                recorder.start(sink)
            deadline = time.monotonic() + self.seconds
            while time.monotonic() < deadline and not ctx.cancelled.is_set():
                time.sleep(0.1)
            for recorder in recorders:
                recorder.stop()
            spool.close()
            per_stream: dict[str, dict[str, Any]] = {}
            for recorder in recorders:
                name = recorder.kind.value
                mine = [s for s in stored if s.stream is recorder.kind]
                units = 0
                seconds = 0.0
                error = ""
                for seg in mine:
                    blob = (
                        folder / "spool" / SEGMENTS_DIR / segment_file_name(seg.stream, seg.seq)
                    ).read_bytes()
                    try:
                        _, data = decode_segment(key, spool.session_id, blob)
                    except Exception as exc:
                        error = f"verification failed: {exc}"
                        break
                    units += _decoded_units(seg.mime, data)
                    seconds += seg.duration
                health = recorder.health()
                if not mine and not error:
                    error = health.reason or "no segment was recorded"
                elif not units and not error:
                    error = "the recording does not play back"
                per_stream[name] = {
                    "segments": len(mine),
                    "units": units,
                    "seconds": round(seconds, 2),
                    "error": error,
                    "backend": health.backend,
                }
            for name, why in unavailable.items():
                per_stream[name] = {"segments": 0, "units": 0, "seconds": 0.0, "error": why}
            details["streams"] = per_stream
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        details["discarded"] = not folder.exists()
        failed = {name: info["error"] for name, info in per_stream.items() if info["error"]}
        measured = {f"{name}_seconds": info["seconds"] for name, info in per_stream.items()}
        if failed:
            reason = "; ".join(f"{name}: {why}" for name, why in failed.items())
            return CheckResult(
                Status.FAIL,
                "check.recording.failed",
                {"reason": reason},
                "check.recording.remedy",
                measured,
                details,
            )
        return CheckResult(
            Status.PASS,
            "check.recording.ok",
            {"streams": ", ".join(per_stream), "seconds": f"{self.seconds:g}"},
            None,
            measured,
            details,
        )


def device_checks() -> list[Any]:
    """The device steps in the order of the report."""
    return [CameraInventoryCheck(), CameraCheck(), MicrophoneCheck(), SampleRecordingCheck()]
