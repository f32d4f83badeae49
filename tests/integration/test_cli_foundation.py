"""The real `lockdown` process: keys, signing, validation, journal verification, settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown import __version__
from lockdown.config.docgen import render
from lockdown.events import Event, Journal

EXAM = """format = 1
[exam]
title = "Chemistry"
[browser]
start_url = "https://exam.example.org/"
[guards]
clipboard = "block"
"""


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lockdown", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LOCKDOWN_ORGANISATION_FILE": str(cwd / "no-org.toml"), **(env or {})},
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert text in lines[0]


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path]:
    gen = run("keys", "generate", "--out", "it-dept", cwd=tmp_path)
    assert gen.returncode == 0, gen.stderr
    public = (tmp_path / "it-dept.pub").read_text().strip()
    assert public in gen.stdout
    assert (tmp_path / "it-dept.key").stat().st_mode & 0o777 == 0o600
    org = tmp_path / "organisation.toml"
    org.write_text(f'[settings.config]\ntrusted_keys = ["{public}"]\n')
    exam = tmp_path / "exam.toml"
    exam.write_text(EXAM)
    sign = run("config", "sign", "exam.toml", "--key", "it-dept.key", cwd=tmp_path)
    assert sign.returncode == 0, sign.stderr
    return exam, org


def test_validate_accepts_a_freshly_signed_file(signed: tuple[Path, Path], tmp_path: Path) -> None:
    exam, org = signed
    proc = run("--organisation", str(org), "config", "validate", str(exam), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "valid, signed by ed25519:" in proc.stdout


def test_validate_refuses_one_changed_byte(signed: tuple[Path, Path], tmp_path: Path) -> None:
    exam, org = signed
    data = bytearray(exam.read_bytes())
    data[data.index(b"block")] = ord("c")
    exam.write_bytes(bytes(data))
    proc = run("--organisation", str(org), "config", "validate", str(exam), cwd=tmp_path)
    one_line_error(proc, 2, "the signature does not match; the file was changed after signing")


def test_validate_without_trust_refuses(signed: tuple[Path, Path], tmp_path: Path) -> None:
    exam, _ = signed
    one_line_error(
        run("config", "validate", str(exam), cwd=tmp_path), 2, "signed by an untrusted key"
    )
    ok = run("config", "validate", str(exam), "--pubkey", "it-dept.pub", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_missing_explicit_organisation_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "exam.toml").write_text(EXAM)
    proc = run("--organisation", "nowhere.toml", "config", "validate", "exam.toml", cwd=tmp_path)
    one_line_error(proc, 2, "nowhere.toml: organisation file not found")


def test_sign_with_a_bad_key_file(tmp_path: Path) -> None:
    (tmp_path / "exam.toml").write_text(EXAM)
    (tmp_path / "bad.key").write_text("not a key")
    one_line_error(
        run("config", "sign", "exam.toml", "--key", "bad.key", cwd=tmp_path),
        2,
        "not a PEM private key",
    )


def test_journal_verify_intact_and_edited(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    with Journal.open(path) as journal:
        for i in range(4):
            journal.append(Event("kiosk.started", {"i": i}))
    ok = run("journal", "verify", str(path), cwd=tmp_path)
    assert ok.returncode == 0
    assert "intact and closed, 5 records" in ok.stdout  # and the closing record
    path.write_bytes(path.read_bytes().replace(b'"i":1', b'"i":9'))
    one_line_error(
        run("journal", "verify", str(path), cwd=tmp_path), 1, "line 2: record 1 was edited"
    )
    one_line_error(
        run("journal", "verify", "missing.jsonl", cwd=tmp_path), 2, "cannot read the journal"
    )


def test_version_and_settings_reference(tmp_path: Path) -> None:
    assert run("--version", cwd=tmp_path).stdout.startswith(f"lockdown {__version__} (development")
    assert run("settings", cwd=tmp_path).stdout == render()


def test_usage_error_exits_2(tmp_path: Path) -> None:
    proc = run("config", "frobnicate", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
