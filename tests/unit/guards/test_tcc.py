"""Screen Recording permission (macOS TCC) read from a fixture database built here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lockdown.guards.tcc import SERVICE, TccUnreadable, read_grants, screen_capture_grants
from lockdown.texts import TEXTS

SCHEMA = Path(__file__).resolve().parents[2] / "data" / "tcc" / "schema.sql"


def make_db(path: Path, rows: list[tuple[str, str, int, int]]) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.read_text())
    conn.executemany(
        "INSERT INTO access (service, client, client_type, auth_value, auth_reason, auth_version)"
        " VALUES (?, ?, ?, ?, 4, 1)",
        rows,
    )
    conn.commit()
    conn.close()
    return path


def test_only_allowed_screen_capture_clients_are_listed(tmp_path: Path) -> None:
    db = make_db(
        tmp_path / "TCC.db",
        [
            (SERVICE, "com.obsproject.obs-studio", 0, 2),
            (SERVICE, "/usr/local/bin/ffmpeg", 1, 2),
            (SERVICE, "us.zoom.xos", 0, 0),  # denied
            ("kTCCServiceMicrophone", "com.hnc.Discord", 0, 2),  # another service
            (SERVICE, "org.lockdown.Lockdown", 0, 2),  # ourselves
        ],
    )
    report = screen_capture_grants([db], exclude=["org.lockdown.Lockdown"])
    assert [g.client for g in report.grants] == [
        "/usr/local/bin/ffmpeg",
        "com.obsproject.obs-studio",
    ]
    assert [g.display_name for g in report.grants] == ["ffmpeg", "com.obsproject.obs-studio"]
    assert report.as_dict()["remedy"] == "guards.tcc.remedy"
    assert "Privacy & Security > Screen Recording" in TEXTS["guards.tcc.remedy"]


def test_missing_and_unreadable_databases_are_notes_not_errors(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    report = screen_capture_grants([tmp_path / "absent.db", garbage])
    assert report.grants == ()
    assert "not present" in report.notes[0]
    assert "Full Disk Access" in report.notes[1] or "not a TCC database" in report.notes[1]
    with pytest.raises(TccUnreadable):
        read_grants(garbage)


def test_the_pre_big_sur_allowed_column_is_understood(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE access (service TEXT, client TEXT, client_type INTEGER, allowed INTEGER)"
    )
    conn.execute("INSERT INTO access VALUES (?, 'com.TechSmith.Snagit2023', 0, 1)", (SERVICE,))
    conn.commit()
    conn.close()
    assert [g.client for g in read_grants(db)] == ["com.TechSmith.Snagit2023"]
