"""`lockdown record` as a real process: a test recording that `lockdown spool verify` accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown.upload import crypto
from tests.support.pulse import VirtualMicrophone
from tests.support.xserver import Xvfb


def _decoded(path: Path) -> tuple[str, float]:
    """(kind, amount): video frames, or seconds of audio, a decoder gets out of ``path``."""
    import av

    with av.open(str(path)) as container:
        (stream,) = container.streams
        if stream.type == "audio":
            samples = sum(frame.samples for frame in container.decode(stream))
            return "audio", samples / stream.codec_context.sample_rate
        return "video", float(sum(1 for _ in container.decode(stream)))


def _lockdown(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockdown.cli", "--temp-basedir", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[3],
    )


@pytest.mark.x11
@pytest.mark.audio
@pytest.mark.slow
def test_record_makes_a_verifiable_spool_of_every_source(
    tmp_path: Path, xserver: Xvfb, virtual_microphone: VirtualMicrophone
) -> None:
    _, _, text = crypto.generate_recipient(tmp_path / "it")
    org = tmp_path / "org.toml"
    org.write_text(
        f'[settings]\nproctoring.segment_length = 2.0\nproctoring.recipient_key = "{text}"\n'
    )
    env = {**os.environ, **xserver.env, **virtual_microphone.env}
    out = tmp_path / "rec"
    result = _lockdown(
        "--organisation", str(org), "record", "--seconds", "3", "--out", str(out), env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recording 3 s of camera, microphone, screen" in result.stdout
    assert "   1/3 s  camera running" in result.stdout
    for stream in ("camera", "microphone", "screen"):
        assert f"  {stream} " in result.stdout.split("summary:")[1]
    verify = _lockdown("spool", "verify", str(out), "--key", str(tmp_path / "it.key"), env=env)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "3 stream(s)" in verify.stdout
    # the reviewer's export: one playable file per stream with every frame and sample,
    # and the spool left exactly as it was
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    exported = tmp_path / "export"
    done = _lockdown(
        "spool",
        "export",
        str(out),
        "--key",
        str(tmp_path / "it.key"),
        "--out",
        str(exported),
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    summary = json.loads((exported / "recording.json").read_text())
    assert summary["closed"] is True and summary["macs_checked"] is True
    assert summary["verified"] is True and set(summary["streams"]) == {
        "camera",
        "microphone",
        "screen",
    }
    for stream, entry in summary["streams"].items():
        expected = sum(segment["units"] for segment in entry["segments"])
        assert len(entry["segments"]) >= 1
        kind, amount = _decoded(exported / entry["file"])
        if kind == "audio":  # samples at the recording's 16 kHz; the decoder runs at 48 kHz
            # (Opus's 6.5 ms encoder delay at the start is the only difference)
            assert abs(amount - expected / 16000) < 0.01, (stream, amount, expected)
        else:
            assert amount == expected, stream
        probe = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format=format_name",
                "-of",
                "csv=p=0",
                str(exported / entry["file"]),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert probe.stdout.strip().strip('"') == "matroska,webm"


def test_record_rejects_bad_input_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    # no recipient, no recording: never a key kept in clear
    result = _lockdown("record", "--seconds", "1", "--out", str(tmp_path / "x"), env=env)
    assert result.returncode == 2
    assert "no recipient key" in result.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x").exists()
    _, public, _ = crypto.generate_recipient(tmp_path / "it")
    result = _lockdown(
        "record",
        "--seconds",
        "1",
        "--out",
        str(tmp_path / "x"),
        "--recipient",
        "x25519:no",
        env=env,
    )
    assert result.returncode == 2
    assert "--recipient: 'x25519:no' is not a recipient public key" in result.stderr
    result = _lockdown(
        "record",
        "--seconds",
        "0",
        "--out",
        str(tmp_path / "x"),
        "--recipient",
        str(public),
        env=env,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("lockdown: --seconds must be")
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = _lockdown(
        "record",
        "--seconds",
        "1",
        "--out",
        str(blocker / "rec"),
        "--recipient",
        str(public),
        env=env,
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"lockdown: {blocker / 'rec'}: cannot create the recording folder")
    assert "Traceback" not in result.stderr


def test_record_summary_says_why_a_recorder_failed(tmp_path: Path) -> None:
    """A screen recorder whose X display cannot be reached (mss raises its own XError,
    no source error) failed silently before: the summary and the journal now say why."""
    unused = next(n for n in range(900, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    _, _, text = crypto.generate_recipient(tmp_path / "it")
    org = tmp_path / "org.toml"
    org.write_text(
        f'[settings]\nproctoring.segment_length = 2.0\nproctoring.recipient_key = "{text}"\n'
    )
    out = tmp_path / "rec"
    env = {**os.environ, "DISPLAY": f":{unused}"}
    result = _lockdown(
        "--organisation", str(org), "record", "--seconds", "2", "--out", str(out), env=env
    )
    assert result.returncode == 1, result.stdout + result.stderr
    summary = result.stdout.split("summary:")[1]
    (screen,) = [line for line in summary.splitlines() if line.strip().startswith("screen")]
    assert "0 segments" in screen
    assert "failed, unexpected error (mss.linux.xcbhelpers.XError: Cannot connect" in screen
    (camera,) = [line for line in summary.splitlines() if line.strip().startswith("camera")]
    assert "failed" not in camera
    records = [json.loads(line) for line in (out / "journal.jsonl").read_text().splitlines()]
    by_type = {r["type"]: r["payload"] for r in records}
    assert "screen" not in by_type["proctoring.started"]["streams"]
    assert "camera" in by_type["proctoring.started"]["streams"]
    assert "Cannot connect to display" in by_type["proctoring.not_started"]["streams"]["screen"]
    assert by_type["recorder.failed"]["stream"] == "screen"
    assert by_type["recorder.failed"]["phase"] == "open"
