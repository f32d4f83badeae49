"""At every start, an earlier session's crashed spool is reopened, repaired, journalled, kept."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from lockdown.app import run_session
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import read_records
from lockdown.paths import temp_paths
from lockdown.ui.kiosk import Kiosk
from lockdown.upload import crypto
from lockdown.upload.format import MANIFEST_FILE, SEGMENTS_DIR
from lockdown.upload.spool import Spool
from lockdown.upload.verify import verify_folder
from tests.support.httpserver import LocalServer
from tests.unit.upload.factory import Events

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

#: An exam's recording process: a spool with keys wrapped for the recipient, two
#: segments stored, a third being written, then SIGKILL (no closing line).
RECORDER = r"""
import os, sys
from pathlib import Path
from lockdown.upload import crypto
from lockdown.upload.base import Stream
from lockdown.upload.spool import Spool
from tests.unit.upload.factory import segment

folder, recipient = Path(sys.argv[1]), crypto.parse_recipient(sys.argv[2])
spool = Spool.open(folder, report=lambda event: None, max_bytes=10**8, recipient=recipient)
spool.add(segment(Stream.CAMERA, 0, size=4000))
spool.add(segment(Stream.MICROPHONE, 0, size=800))
real_pwrite = os.pwrite
def pwrite(fd, data, offset):  # the third segment's manifest line is half written
    if bytes(data[:2]) == b'{"':
        real_pwrite(fd, bytes(data[:30]), offset)
        print("ready", flush=True)
        sys.stdin.readline()
    return real_pwrite(fd, data, offset)
os.pwrite = pwrite
spool.add(segment(Stream.CAMERA, 1, size=4000))
"""


def crash_a_recording(folder: Path, recipient: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", RECORDER, str(folder), recipient],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.communicate()[1]
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    (folder / SEGMENTS_DIR / "screen-000000.seg.tmp").write_bytes(b"an unfinished write")


def test_a_crashed_spool_is_repaired_and_kept_for_upload_at_the_next_start(
    qapp: Any, tmp_path: Path, http_server: LocalServer
) -> None:
    paths = temp_paths(tmp_path / "lockdown")
    _private, _, public = crypto.generate_recipient(tmp_path / "it")
    earlier = paths.spool / "session-earlier"
    crash_a_recording(earlier, public)
    assert not verify_folder(earlier).ok  # torn line, unlisted segment, .tmp
    held: list[bool] = []

    def journey(kiosk: Kiosk) -> None:
        def check_and_end() -> None:
            try:  # kept open by this session (for the uploader): nobody else repairs it
                Spool.open_earlier(earlier, Events()).close()
                held.append(False)
            except Exception:
                held.append(True)
            kiosk.end("test")

        kiosk.pageLoaded.connect(lambda ok, url: QTimer.singleShot(200, check_and_end))

    # an exam that records nothing reopens earlier spools all the same
    settings = layer(
        Organisation(values={"proctoring.recipient_key": public}),
        flatten(
            {
                "browser": {"start_url": http_server.page("/", "<h1>Exam</h1>")},
                "guards": {"virtual_machine": "warn", "remote_session": "allow"},
            },
            origin="t",
        ),
    )
    code = run_session(
        LoadedExam(settings, None, "test", "Earlier spools", "lockdown"),
        paths,
        single_instance=False,
        journey=journey,
        show_message=pytest.fail,
    )
    assert code == 0
    assert held == [True]
    (journal,) = paths.journals.glob("*.jsonl")
    records = read_records(journal)
    [recovered] = [r["payload"] for r in records if r["type"] == "spool.recovered"]
    assert recovered["folder"] == str(earlier)
    assert recovered["segments"] == recovered["pending"] == 2
    assert recovered["discarded"] == 1 and recovered["orphans"] == 1
    assert recovered["cut_bytes"] == 30
    # repaired: the torn line cut, the .tmp gone; the segment whose line was torn stays
    # on the disk (without the keys it cannot be checked or listed) and is reported
    assert (earlier / MANIFEST_FILE).read_bytes().endswith(b"\n")
    assert not list((earlier / SEGMENTS_DIR).glob("*.tmp"))
    assert [p.problems for p in [verify_folder(earlier)]] == [
        ["camera-000001.seg: not in the manifest (left by a crash; opening the spool recovers it)"]
    ]
    # kept for upload: released at the end of the session, still pending
    with Spool.open_earlier(earlier, Events()) as again:
        assert [(r.stream.value, r.seq) for r in again.pending()] == [
            ("camera", 0),
            ("microphone", 0),
        ]
