"""Benchmark: our recorders against ffmpeg capturing and encoding the same three sources.

Starts its own Xvfb (1920x1080) and PulseAudio virtual microphone, makes a camera video
from scikit-image's astronaut photo (a slow pan with sensor-like noise), plays speech into
the microphone and changes the screen every few seconds. Then, at the same time (with
``--apart`` one after the other), it records for N seconds (default 60) with

* ours: ``ProctoringOperation`` (camera from the file, the virtual microphone, the screen)
  into a real encrypted spool, in a child process;
* ffmpeg: the same file at the same rate, ``-f pulse``, ``-f x11grab``, with libvpx-vp9
  (realtime, cpu-used 8, same crf and caps) and libopus, 30 s segments;

and prints the CPU ratio (ours / ffmpeg, from each child's rusage), each stream's bytes
per hour, and the latency from a segment's last capture to its being stored.

Run: ``.venv/bin/python bench/bench_capture.py [--seconds 60]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAMERA_FPS = 15
SEGMENT = 30.0
CRF = 38
CAMERA_KBPS = 96
SCREEN = (1920, 1080)
SCREEN_OUT = (1280, 720)
#: seconds after a recorder process starts before its steady CPU rate is measured
WARM_UP = 10.0
CHILD_STARTED = time.monotonic()


def make_camera_video(path: Path, seconds: float = 20.0) -> Path:
    import cv2
    import numpy as np
    from skimage import data

    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    big = cv2.resize(photo, (800, 800))
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), CAMERA_FPS, (640, 480))
    frames = round(seconds * CAMERA_FPS)
    for i in range(frames):
        x = int(80 + 60 * np.sin(2 * np.pi * i / frames))
        frame = big[100 : 100 + 480, x : x + 640].astype(np.int16)
        frame += rng.normal(0, 3, frame.shape).astype(np.int16)  # sensor noise
        writer.write(np.clip(frame, 0, 255).astype(np.uint8))
    writer.release()
    return path


def make_speech(folder: Path) -> Path:
    one = folder / "speech1.wav"
    subprocess.run(
        [
            "espeak-ng",
            "-w",
            str(one),
            "Please read every question carefully before you answer. "
            "You may use the calculator provided. The exam ends in ten minutes.",
        ],
        check=True,
    )
    out = folder / "speech.wav"
    subprocess.run(["sox", str(one), str(out), "repeat", "20"], check=True)
    return out


def _screen_changer(display: str, stop: threading.Event) -> None:
    colours = ["#204060", "#406020", "#602040", "#f0f0f0"]
    n = 0
    while not stop.wait(5.0):
        n += 1
        subprocess.run(
            ["xsetroot", "-display", display, "-solid", colours[n % len(colours)]], check=False
        )


def _stat_cpu(stat: Path) -> float:
    """User+system CPU seconds from a ``/proc/.../stat`` file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> float:
    """User+system CPU seconds of the running process ``pid`` (all its threads)."""
    return _stat_cpu(Path(f"/proc/{pid}/stat"))


def _thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads so far, by Python thread name (native
    threads, PortAudio's and libvpx's among them, summed by their kernel name)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a thread that ended
            comm = (task / "comm").read_text().strip()
            name = names.get(int(task.name)) or f"native '{comm}'"
            out[name] = out.get(name, 0.0) + _stat_cpu(task / "stat")
    return out


@dataclass
class ChildRun:
    """CPU figures of one recording process."""

    #: user+system CPU seconds of the whole process (start-up and imports included)
    total: float
    #: CPU seconds per second of wall time from ``WARM_UP`` after the start to the end
    steady_rate: float
    stdout: str


def _speaker(speech: Path, env: dict[str, str], stop: threading.Event) -> None:
    """Play ``speech`` into the virtual microphone again and again until ``stop``."""
    while not stop.is_set():
        with subprocess.Popen(
            ["paplay", "--device=vsink", str(speech)], env=env, stderr=subprocess.DEVNULL
        ) as player:
            while player.poll() is None:
                if stop.wait(0.5):
                    player.terminate()


def run_child(cmd: list[str], env: dict[str, str]) -> ChildRun:
    """Run ``cmd`` to its end; the same measurement for ours and ffmpeg."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        marks: list[tuple[float, float]] = []

        def mark() -> None:
            time.sleep(WARM_UP)
            with contextlib.suppress(OSError, IndexError):
                marks.append((time.monotonic(), _proc_cpu(proc.pid)))

        marker = threading.Thread(target=mark, daemon=True)
        marker.start()
        _, status, usage = os.wait4(proc.pid, 0)
        ended = time.monotonic()
        proc.returncode = os.waitstatus_to_exitcode(status)
        marker.join()
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err.read().decode()[-2000:]}")
        if not marks:
            raise SystemExit(
                f"{cmd[0]} ended before the {WARM_UP:.0f} s warm-up; use more --seconds"
            )
        total = usage.ru_utime + usage.ru_stime
        at, cpu_at = marks[0]
        out.seek(0)
        return ChildRun(total, (total - cpu_at) / (ended - at), out.read().decode())


def run_pair(
    ours_cmd: list[str], ff_cmd: list[str], env: dict[str, str], *, together: bool
) -> tuple[ChildRun, ChildRun]:
    """Run our recorder and ffmpeg at the same time (``together``) or one after the other.

    Together, both see the same machine at the same moment: on this VM the speed of a
    core drifts by up to +-20 % from one minute to the next (ffmpeg alone measured 4.4 to
    6.0 CPU-s a minute for the same camera recording), which one after the other puts
    straight into the ratio. Each uses about a tenth of a core, so on 2 cores they hardly
    compete.
    """
    if not together:
        return run_child(ours_cmd, env), run_child(ff_cmd, env)
    done: dict[str, ChildRun] = {}
    failed: list[BaseException] = []

    def one(name: str, cmd: list[str]) -> None:
        try:
            done[name] = run_child(cmd, env)
        except BaseException as exc:  # SystemExit from run_child; re-raised below
            failed.append(exc)

    threads = [
        threading.Thread(target=one, args=("ours", ours_cmd)),
        threading.Thread(target=one, args=("ffmpeg", ff_cmd)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failed:
        raise failed[0]
    return done["ours"], done["ffmpeg"]


def child_ours(args: argparse.Namespace) -> None:
    """In the child: record with ProctoringOperation into a spool; print JSON stats."""
    from lockdown.capture.operation import ProctoringOperation
    from lockdown.config.settings import Settings
    from lockdown.upload.spool import Spool

    settings: dict[str, Any] = dict(Settings.defaults())
    settings.update(
        {
            "proctoring.camera": "camera" in args.streams,
            "proctoring.microphone": "microphone" in args.streams,
            "proctoring.screen": "screen" in args.streams,
            "proctoring.camera_source": args.camera,
            "proctoring.camera_fps": float(CAMERA_FPS),
            "proctoring.segment_length": SEGMENT,
        }
    )
    events: list[Any] = []
    spool = Spool.open(Path(args.out), report=events.append, max_bytes=1 << 30, key=os.urandom(32))
    operation = ProctoringOperation(settings, events.append, spool)
    operation.perform()
    end = time.monotonic() + args.seconds
    # Each thread's CPU over about the steady span the parent measures (from WARM_UP
    # after the process started), to see where the CPU goes.
    time.sleep(max(0.0, WARM_UP - (time.monotonic() - CHILD_STARTED)))
    before, since = _thread_cpu(), time.monotonic()
    time.sleep(max(0.0, end - time.monotonic()))
    after, span = _thread_cpu(), time.monotonic() - since
    recorders = list(operation.recorders)
    operation.revert()
    result: dict[str, Any] = {}
    for r in recorders:
        lat = r.stats.latencies
        result[r.kind.value] = {
            "segments": r.stats.segments,
            "bytes": r.stats.bytes,
            "seconds": r.stats.seconds,
            "units": r.stats.units,
            "latency_mean": sum(lat) / len(lat) if lat else None,
            "latency_max": max(lat) if lat else None,
            "backend": r.backend,
        }
        faces = getattr(r, "faces", None)
        if faces is not None:  # the camera: how often the face cascade really ran
            result[r.kind.value]["face_looks"] = [faces.counted, faces.reused]
    spool.close()
    threads = {n: 60 * (cpu - before.get(n, 0.0)) / span for n, cpu in after.items()}
    result["threads"] = {n: round(v, 3) for n, v in threads.items() if v >= 0.01}
    print(json.dumps(result))


STREAMS = ("camera", "microphone", "screen")


def ffmpeg_cmd(
    camera: Path, display: str, seconds: float, out: Path, streams: tuple[str, ...] = STREAMS
) -> list[str]:
    """ffmpeg recording ``streams`` with the settings our recorders use."""
    # 4:2:0 like ours: left to itself ffmpeg encodes x11grab's BGR as 4:4:4 RGB (gbrp,
    # VP9 profile 1), three times the bytes and more CPU than what we do.
    vp9 = ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-deadline", "realtime"]
    vp9 += ["-cpu-used", "8", "-row-mt", "1"]
    vp9 += ["-lag-in-frames", "0", "-crf", str(CRF)]
    seg = ["-f", "segment", "-segment_time", str(SEGMENT), "-segment_format", "webm"]
    t = ["-t", str(seconds)]
    inputs = {
        "camera": ["-re", "-stream_loop", "-1", "-i", str(camera)],
        "microphone": ["-f", "pulse", "-sample_rate", "16000", "-channels", "1", "-i", "default"],
        "screen": ["-f", "x11grab", "-framerate", "1", "-video_size", f"{SCREEN[0]}x{SCREEN[1]}",
                   "-i", display],
    }  # fmt: skip
    outputs = {
        "camera": ["-r", str(CAMERA_FPS), *vp9, "-threads", "1", "-b:v", f"{CAMERA_KBPS}k",
                   "-g", str(int(SEGMENT * CAMERA_FPS))],
        "microphone": ["-c:a", "libopus", "-b:a", "16k", "-frame_duration", "60", "-ac", "1",
                       "-ar", "16000"],
        "screen": ["-vf", f"scale={SCREEN_OUT[0]}:{SCREEN_OUT[1]}", *vp9, "-threads", "2",
                   "-b:v", "0", "-g", str(int(SEGMENT))],
    }  # fmt: skip
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    for stream in streams:
        cmd += inputs[stream]
    for index, stream in enumerate(streams):
        kind = "a" if stream == "microphone" else "v"
        cmd += [*t, "-map", f"{index}:{kind}", *outputs[stream], *seg]
        cmd.append(str(out / f"{stream}_%03d.webm"))
    return cmd


def _units(folder: Path, stream: str) -> int:
    """Frames (video) or 16 kHz samples (audio) in ffmpeg's segments of ``stream``."""
    import av

    count = 0
    for path in sorted(folder.glob(f"{stream}_*.webm")):
        with av.open(str(path)) as container:
            if stream == "microphone":
                # Opus decodes at 48 kHz: count in samples of our rate, like ours.
                count += sum(f.samples * 16000 // f.sample_rate for f in container.decode(audio=0))
            else:
                count += sum(1 for packet in container.demux(video=0) if packet.size)
    return count


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _bytes_per_hour(folder: Path, stream: str, seconds: float) -> float:
    return sum(p.stat().st_size for p in folder.glob(f"{stream}_*.webm")) * 3600.0 / seconds / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=1, help="ours/ffmpeg pairs (medians shown)")
    parser.add_argument(
        "--streams",
        type=lambda text: tuple(text.split(",")),
        default=STREAMS,
        help="record only these (comma-separated; both sides), to see where CPU goes",
    )
    parser.add_argument(
        "--apart",
        action="store_true",
        help="run ours and ffmpeg one after the other instead of at the same time",
    )
    parser.add_argument("--child", choices=["ours"])
    parser.add_argument("--camera")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child_ours(args)
        return
    if args.seconds <= WARM_UP + 5:
        parser.error(f"--seconds must be over {WARM_UP + 5:.0f}")

    from tests.support.pulse import VirtualMicrophone
    from tests.support.xserver import Xvfb

    work = Path(tempfile.mkdtemp(prefix="lockdown-bench-"))
    x = Xvfb(width=SCREEN[0], height=SCREEN[1]).start()
    mic = VirtualMicrophone().start()
    stop = threading.Event()
    changer = threading.Thread(target=_screen_changer, args=(x.display, stop), daemon=True)
    player: threading.Thread | None = None
    runs: list[tuple[ChildRun, dict[str, Any], ChildRun, Path]] = []
    loads: list[float] = []
    try:
        env = {**os.environ, **x.env, **mic.env}
        camera = make_camera_video(work / "camera.avi")
        speech = make_speech(work)
        player = threading.Thread(target=_speaker, args=(speech, env, stop), daemon=True)
        player.start()
        changer.start()
        for n in range(args.runs):
            loads.append(os.getloadavg()[0])
            ours_out = work / f"ours{n}"
            ours_cmd = [sys.executable, __file__, "--child", "ours", "--camera", str(camera),
                        "--out", str(ours_out), "--seconds", str(args.seconds),
                        "--streams", ",".join(args.streams)]  # fmt: skip
            ff_out = work / f"ffmpeg{n}"
            ff_out.mkdir()
            ff_cmd = ffmpeg_cmd(camera, x.display, args.seconds, ff_out, args.streams)
            ours, ff = run_pair(ours_cmd, ff_cmd, env, together=not args.apart)
            stats = json.loads(ours.stdout.strip().splitlines()[-1])
            runs.append((ours, stats, ff, ff_out))
            busiest = sorted(stats["threads"].items(), key=lambda item: -item[1])[:6]
            print(
                f"run {n + 1}: load {loads[-1]:.2f}; whole process CPU s ours {ours.total:.2f} "
                f"ffmpeg {ff.total:.2f} ({ours.total / ff.total:.2f}); steady CPU s/min ours "
                f"{60 * ours.steady_rate:.2f} ffmpeg {60 * ff.steady_rate:.2f} "
                f"({ours.steady_rate / ff.steady_rate:.2f}); ours by thread, CPU s/min: "
                + ", ".join(f"{name} {cpu:.2f}" for name, cpu in busiest),
                flush=True,
            )
        loads.append(os.getloadavg()[0])
    finally:
        stop.set()
        if player is not None:
            player.join()
        mic.stop()
        x.stop()

    print(
        f"capture benchmark: {args.runs} run(s) of {args.seconds:.0f} s each, {os.cpu_count()} cores, "
        + ("ours and ffmpeg one after the other" if args.apart else "ours and ffmpeg at once")
    )
    print(
        f"load average (1 min) over the runs: {min(loads):.2f}-{max(loads):.2f} "
        "(other work on the machine skews CPU figures)"
    )
    steady = _median([o.steady_rate / f.steady_rate for o, _, f, _ in runs])
    whole = _median([o.total / f.total for o, _, f, _ in runs])
    print(
        f"steady CPU seconds per minute recorded (after {WARM_UP:.0f} s warm-up, medians): "
        f"ours {60 * _median([o.steady_rate for o, *_ in runs]):.2f}, "
        f"ffmpeg {60 * _median([f.steady_rate for *_, f, _ in runs]):.2f}; "
        f"ratio ours/ffmpeg {steady:.2f} (aim <= 1.2)"
    )
    print(
        "whole-process CPU seconds incl. start-up (medians): "
        f"ours {_median([o.total for o, *_ in runs]):.2f}, "
        f"ffmpeg {_median([f.total for *_, f, _ in runs]):.2f}; ratio {whole:.2f}"
    )
    total_ours = total_ff = 0.0
    header = f"{'stream':<11} {'ours MB/h':>10} {'ffmpeg MB/h':>12} {'latency mean/max s':>19}"
    print(f"{header} {'frames/samples ours':>20} {'ffmpeg':>9}")
    for stream in args.streams:
        per_run = [s.get(stream, {}) for _, s, _, _ in runs]
        ob = _median([o.get("bytes", 0) * 3600.0 / args.seconds / 1e6 for o in per_run])
        fb = _median([_bytes_per_hour(out, stream, args.seconds) for *_, out in runs])
        total_ours += ob
        total_ff += fb
        means = [o["latency_mean"] for o in per_run if o.get("latency_mean") is not None]
        maxes = [o["latency_max"] for o in per_run if o.get("latency_max") is not None]
        lat = f"{_median(means):.3f}/{max(maxes):.3f}" if means else "-"
        units = f"{per_run[-1].get('units', 0):>20} {_units(runs[-1][3], stream):>9}"
        print(f"{stream:<11} {ob:>10.1f} {fb:>12.1f} {lat:>19} {units}")
    print(f"{'total':<11} {total_ours:>10.1f} {total_ff:>12.1f}   (aim < 60 MB/h)")
    looks = [
        s["camera"]["face_looks"] for _, s, _, _ in runs if "face_looks" in s.get("camera", {})
    ]
    if looks:
        counted, reused = sum(c for c, _ in looks), sum(r for _, r in looks)
        print(
            f"face looks: {counted} ran the cascade, {reused} re-used the count of a still "
            "picture (the camera video pans all the time: few are still)"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
