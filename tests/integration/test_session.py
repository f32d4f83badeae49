"""A whole session in-process: guards, recorders and the kiosk in one operation sequence."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer

from lockdown.app import run_session
from lockdown.config.loaded import LoadedExam
from lockdown.config.settings import Organisation, flatten, layer
from lockdown.events import read_records, verify
from lockdown.paths import temp_paths
from lockdown.texts import text
from lockdown.ui.kiosk import Kiosk
from lockdown.upload import crypto
from lockdown.upload.spool import Spool, open_key, verify_folder
from tests.support.httpserver import LocalServer

pytestmark = [pytest.mark.x11, pytest.mark.webengine, pytest.mark.slow]


def exam(start: str, organisation: Organisation | None = None, **values: Any) -> LoadedExam:
    settings = layer(
        organisation or Organisation(),
        flatten({"browser": {"start_url": start}, **values}, origin="t"),
    )
    return LoadedExam(settings, None, "test", "Session test", "lockdown")


def clear_copies(root: Path, key: bytes) -> list[str]:
    """Files under ``root`` holding ``key`` in any common clear form."""
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key)]
    return [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and any(form in path.read_bytes() for form in forms)
    ]


def only_journal(paths: Any) -> Path:
    (journal,) = paths.journals.glob("*.jsonl")
    return journal


def test_exam_in_a_virtual_machine_is_refused_with_a_clear_message(
    qapp: Any, tmp_path: Path, http_server: LocalServer
) -> None:
    paths = temp_paths(tmp_path)
    shown: list[str] = []
    code = run_session(
        exam(http_server.page("/", "<p>exam</p>"), guards={"virtual_machine": "deny"}),
        paths,
        single_instance=False,
        show_message=shown.append,
    )
    assert code == 1
    assert shown == [text("guards.vm.denied")]
    records = read_records(only_journal(paths))
    types = [r["type"] for r in records]
    assert "guards.virtual_machine" in types
    assert "kiosk.started" not in types
    assert records[-2]["payload"]["message_id"] == "guards.vm.denied"
    assert http_server.seen("/") == []


def test_a_proctored_exam_records_while_locked_and_finalizes_before_the_kiosk_closes(
    qapp: Any, tmp_path: Path, http_server: LocalServer
) -> None:
    paths = temp_paths(tmp_path / "lockdown")
    private, _, public = crypto.generate_recipient(tmp_path / "it")
    start = http_server.page("/", "<body style='background:#0a8'><h1>Exam</h1></body>")

    def journey(kiosk: Kiosk) -> None:
        kiosk.pageLoaded.connect(lambda ok, url: QTimer.singleShot(3500, lambda: kiosk.end("test")))

    code = run_session(
        exam(
            start,
            Organisation(values={"proctoring.recipient_key": public}),
            guards={"virtual_machine": "warn", "remote_session": "allow"},
            proctoring={
                "camera": True,
                "camera_source": "pattern",
                "screen": True,
                "segment_length": 2,
            },
        ),
        paths,
        single_instance=False,
        journey=journey,
        show_message=pytest.fail,
    )
    assert code == 0
    journal = only_journal(paths)
    verify(journal)
    types = [r["type"] for r in read_records(journal)]
    for expected in (
        "guards.virtual_machine",
        "proctoring.started",
        "kiosk.started",
        "guards.started",
    ):
        assert expected in types
    # the end: the recorders finalize on the locked exam, then the desktop guards stop
    # and the kiosk closes
    tail = types[types.index("kiosk.ended") :]
    assert (
        tail.index("proctoring.stopped") < tail.index("guards.stopped") < tail.index("kiosk.closed")
    )
    (spool,) = [p for p in paths.spool.iterdir() if p.is_dir()]
    # the session key exists on disk only wrapped for the recipient
    key = open_key(spool, crypto.load_recipient_private(private))
    assert clear_copies(tmp_path / "lockdown", key) == []
    assert not (paths.state / "spool-keys").exists()
    report = verify_folder(spool, key)
    assert report.ok, report.problems
    assert report.contents_checked
    streams = {name for name in report.streams}
    assert streams == {"camera", "screen"}
    # the journal covers the media: every stored segment's digests are in it
    stored = {
        (r["payload"]["stream"], r["payload"]["seq"]): r["payload"]["sha256"]
        for r in read_records(journal)
        if r["type"] == "spool.stored"
    }
    with Spool.open(spool, report=lambda _e: None, max_bytes=1 << 40, key=key) as opened:
        listed = {(r.stream.value, r.seq): r.sha256 for r in opened.records()}
    assert stored == listed and len(listed) >= 2
    # the journal is keyed for the same recipient and closed
    assert verify(journal, None).keyed and verify(journal).closed
