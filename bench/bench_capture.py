"""Benchmark: our recorders against ffmpeg capturing and encoding the same three sources.

Starts its own Xvfb (1920x1080) and PulseAudio virtual microphone, makes a camera video
from scikit-image's astronaut photo (a slow pan with sensor-like noise), plays speech into
the microphone and changes the screen every few seconds. Then, one after the other, it
records for N seconds (default 60) with

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
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
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


def run_child(cmd: list[str], env: dict[str, str], seconds: float) -> tuple[float, str]:
    """Run ``cmd``; return (user+system CPU seconds, stdout)."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode() if proc.stderr else ""
        if proc.returncode:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err[-2000:]}")
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, out.read().decode()


def child_ours(args: argparse.Namespace) -> None:
    """In the child: record with ProctoringOperation into a spool; print JSON stats."""
    from lockdown.capture.operation import ProctoringOperation
    from lockdown.config.settings import Settings
    from lockdown.upload.spool import Spool

    settings: dict[str, Any] = dict(Settings.defaults())
    settings.update(
        {
            "proctoring.camera": True,
            "proctoring.microphone": True,
            "proctoring.screen": True,
            "proctoring.camera_source": args.camera,
            "proctoring.camera_fps": float(CAMERA_FPS),
            "proctoring.segment_length": SEGMENT,
        }
    )
    events: list[Any] = []
    spool = Spool.open(Path(args.out), report=events.append, max_bytes=1 << 30)
    operation = ProctoringOperation(settings, events.append, spool)
    operation.perform()
    time.sleep(args.seconds)
    recorders = list(operation.recorders)
    operation.revert()
    result = {}
    for r in recorders:
        lat = r.stats.latencies
        result[r.kind.value] = {
            "segments": r.stats.segments,
            "bytes": r.stats.bytes,
            "seconds": r.stats.seconds,
            "latency_mean": sum(lat) / len(lat) if lat else None,
            "latency_max": max(lat) if lat else None,
            "backend": r.backend,
        }
    spool.close()
    print(json.dumps(result))


def ffmpeg_cmd(camera: Path, display: str, seconds: float, out: Path) -> list[str]:
    vp9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-row-mt", "1"]
    vp9 += ["-lag-in-frames", "0", "-threads", "2", "-crf", str(CRF)]
    seg = ["-f", "segment", "-segment_time", str(SEGMENT), "-segment_format", "webm"]
    t = ["-t", str(seconds)]
    return [
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
        "-re", "-stream_loop", "-1", "-i", str(camera),
        "-f", "pulse", "-sample_rate", "16000", "-channels", "1", "-i", "default",
        "-f", "x11grab", "-framerate", "1", "-video_size", f"{SCREEN[0]}x{SCREEN[1]}",
        "-i", display,
        *t, "-map", "0:v", "-r", str(CAMERA_FPS), *vp9, "-b:v", f"{CAMERA_KBPS}k",
        "-g", str(int(SEGMENT * CAMERA_FPS)), *seg, str(out / "camera_%03d.webm"),
        *t, "-map", "1:a", "-c:a", "libopus", "-b:a", "16k", "-ac", "1", "-ar", "16000",
        *seg, str(out / "microphone_%03d.webm"),
        *t, "-map", "2:v", "-vf", f"scale={SCREEN_OUT[0]}:{SCREEN_OUT[1]}", *vp9,
        "-b:v", "0", "-g", str(int(SEGMENT)), *seg, str(out / "screen_%03d.webm"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--child", choices=["ours"])
    parser.add_argument("--camera")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.child:
        child_ours(args)
        return

    from tests.support.pulse import VirtualMicrophone
    from tests.support.xserver import Xvfb

    work = Path(tempfile.mkdtemp(prefix="lockdown-bench-"))
    x = Xvfb(width=SCREEN[0], height=SCREEN[1]).start()
    mic = VirtualMicrophone().start()
    stop = threading.Event()
    changer = threading.Thread(target=_screen_changer, args=(x.display, stop), daemon=True)
    player: subprocess.Popen[bytes] | None = None
    try:
        env = {**os.environ, **x.env, **mic.env}
        camera = make_camera_video(work / "camera.avi")
        speech = make_speech(work)
        player = subprocess.Popen(
            ["paplay", "--device=vsink", str(speech)], env=env, stderr=subprocess.DEVNULL
        )
        changer.start()
        load_before = os.getloadavg()
        ours_out = work / "ours"
        ours_cpu, ours_json = run_child(
            [sys.executable, __file__, "--child", "ours", "--camera", str(camera),
             "--out", str(ours_out), "--seconds", str(args.seconds)],
            env,
            args.seconds,
        )  # fmt: skip
        ours = json.loads(ours_json.strip().splitlines()[-1])
        ff_out = work / "ffmpeg"
        ff_out.mkdir()
        ff_cpu, _ = run_child(
            ffmpeg_cmd(camera, x.display, args.seconds, ff_out), env, args.seconds
        )
        load_after = os.getloadavg()
    finally:
        stop.set()
        if player is not None:
            player.terminate()
        mic.stop()
        x.stop()

    hour = 3600.0 / args.seconds
    print(f"capture benchmark, {args.seconds:.0f} s per run, {os.cpu_count()} cores")
    print(
        f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} "
        "(other work on the machine skews CPU figures)"
    )
    print(f"CPU seconds: ours {ours_cpu:.2f}, ffmpeg {ff_cpu:.2f}; ratio ours/ffmpeg "
          f"{ours_cpu / ff_cpu:.2f} (aim <= 1.2)")  # fmt: skip
    total_ours = total_ff = 0.0
    print(f"{'stream':<11} {'ours MB/h':>10} {'ffmpeg MB/h':>12} {'latency mean/max s':>19}")
    for stream in ("camera", "microphone", "screen"):
        o = ours.get(stream, {})
        ob = o.get("bytes", 0) * hour / 1e6
        fb = sum(p.stat().st_size for p in ff_out.glob(f"{stream}_*.webm")) * hour / 1e6
        total_ours += ob
        total_ff += fb
        lat = (
            f"{o['latency_mean']:.3f}/{o['latency_max']:.3f}"
            if o.get("latency_mean") is not None
            else "-"
        )
        print(f"{stream:<11} {ob:>10.1f} {fb:>12.1f} {lat:>19}")
    print(f"{'total':<11} {total_ours:>10.1f} {total_ff:>12.1f}   (aim < 60 MB/h)")
    print(f"work folder: {work}")
    shutil.rmtree(work, ignore_errors=True)
    _ = resource  # rusage comes from os.wait4


if __name__ == "__main__":
    main()
