"""Config Key (SEB-JSON), our Browser Exam Key, per-URL hashes and `lockdown config keys`."""

from __future__ import annotations

import hashlib
import hmac
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lockdown import __version__, cli
from lockdown.config import examfile, examkeys, seb
from lockdown.config.settings import ConfigError

DATA = Path(__file__).resolve().parents[2] / "data" / "seb"
ROOT = Path(__file__).resolve().parents[3]
SEB_CK = "adac1a5a0017f452d8fac260edef4b3b66c6e969c61b9109acff453bdfe2ff96"
TOML_CK = "a30c176594b884d906eda691b93373be46331e3c7a3fb69a007a6389fe8e156e"
PASSWORD = "Prüfung-2026!"


# -- SEB-JSON -----------------------------------------------------------------------------


def test_hand_written_seb_json_of_own_vector() -> None:
    cfg = seb.load_seb((DATA / "exam.plist.xml").read_bytes(), origin="v", password=lambda _: None)
    expected = (DATA / "exam.sebjson.txt").read_text(encoding="utf-8")
    assert examkeys.seb_json(cfg.plist) == expected
    assert hashlib.sha256(expected.encode()).hexdigest() == SEB_CK
    assert examkeys.config_key(cfg.plist) == SEB_CK


@pytest.mark.parametrize(
    ("settings", "text"),
    [
        ({}, "{}"),
        ({"b": 1, "A": 2, "a": 3, "B": 4}, '{"a":3,"A":2,"b":1,"B":4}'),
        (
            {"allowWLAN": 1, "allowWlan": 2, "allowedX": 3},
            '{"allowedX":3,"allowWlan":2,"allowWLAN":1}',
        ),
        ({"k": [3, 1, 2]}, '{"k":[3,1,2]}'),
        ({"k": 'a"b\\c\n/é'}, '{"k":"a"b\\c\n/é"}'),
        ({"t": True, "f": False, "i": -7, "z": 0}, '{"f":false,"i":-7,"t":true,"z":0}'),
        ({"d": b"\x00\xff\x10", "e": b""}, '{"d":"AP8Q","e":""}'),
        ({"r": 0.5, "w": 2.0}, '{"r":0.5,"w":2}'),
        ({"originatorVersion": "x", "n": {"originatorVersion": "y", "v": 1}}, '{"n":{"v":1}}'),
        ({"e": {}, "o": {"originatorVersion": "y"}, "n": {"m": {}}}, '{"n":{},"o":{}}'),
        ({"a": [{}, {"originatorVersion": "x", "k": 1}]}, '{"a":[{},{"k":1}]}'),
        ({"a": [{"e": {}}, [{}]], "b": {"c": {"d": {}}}}, '{"a":[{},[{}]],"b":{"c":{}}}'),
        ({"m": MappingProxyType({"x": (1, 2)})}, '{"m":{"x":[1,2]}}'),
        ({"d": datetime(1940, 10, 9, 22, 13, 56)}, '{"d":"1940-10-09T22:13:56+00:00"}'),
        (
            {"d": datetime(2026, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))},
            '{"d":"2026-06-01T08:00:00+00:00"}',
        ),
    ],
)
def test_seb_json_rules(settings: dict[str, object], text: str) -> None:
    assert examkeys.seb_json(settings) == text
    assert examkeys.config_key(settings) == hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # .NET Framework's Double.ToString() (the "G" format, 15 significant digits), as
        # SEB for Windows' Json.cs writes reals with NumberFormatInfo.InvariantInfo
        (1.0, "1"),
        (2.0, "2"),
        (-3.0, "-3"),
        (100.0, "100"),
        (0.5, "0.5"),
        (-2.25, "-2.25"),
        (0.1 + 0.2, "0.3"),
        (1 / 3, "0.333333333333333"),
        (1e20, "1E+20"),
        (1.5e300, "1.5E+300"),
        (1e15, "1E+15"),
        (1e14, "100000000000000"),
        (123456789012345678.0, "1.23456789012346E+17"),
        (0.0001, "0.0001"),
        (0.00001, "1E-05"),
        (-2.5e-7, "-2.5E-07"),
        (0.0, "0"),
        (-0.0, "0"),
        (float("inf"), "Infinity"),
        (float("-inf"), "-Infinity"),
        (float("nan"), "NaN"),
    ],
)
def test_reals_are_written_as_seb_for_windows_writes_them(value: float, text: str) -> None:
    assert examkeys.seb_json({"r": value}) == f'{{"r":{text}}}'


def test_whole_number_reals_of_a_plist_hash_like_integers() -> None:
    xml = (
        b'<?xml version="1.0"?><plist version="1.0"><dict>'
        b"<key>a</key><real>1.0</real><key>b</key><real>2</real>"
        b"<key>c</key><real>1e+20</real><key>d</key><real>0.75</real></dict></plist>"
    )
    plist = seb.parse_plist(xml, origin="reals")
    assert examkeys.seb_json(plist) == '{"a":1,"b":2,"c":1E+20,"d":0.75}'


def test_seb_json_refuses_what_a_plist_cannot_hold() -> None:
    with pytest.raises(TypeError):
        examkeys.seb_json({"x": None})
    deep: dict[str, object] = {}
    node = deep
    for _ in range(examkeys.MAX_DEPTH + 2):
        child: dict[str, object] = {"k": 1}
        node["n"] = child
        node = child
    with pytest.raises(ValueError, match="deeper than"):
        examkeys.seb_json(deep)


# -- Lockdown configs ---------------------------------------------------------------------


def test_lockdown_config_key_is_over_the_options_it_sets() -> None:
    _, values = examfile.parse_body((DATA / "exam.toml").read_bytes(), origin="exam.toml")
    expected = (DATA / "exam.toml.sebjson.txt").read_text(encoding="utf-8")
    assert examkeys.seb_json(values) == expected
    assert hashlib.sha256(expected.encode()).hexdigest() == TOML_CK
    keys = examkeys.keys_for_values(values, "00ff")
    assert keys.config_key == TOML_CK


def test_signature_and_exam_metadata_do_not_change_the_config_key(tmp_path: Path) -> None:
    body = (DATA / "exam.toml").read_bytes()
    signed = tmp_path / "signed.toml"
    signed.write_bytes(examfile.sign(body, Ed25519PrivateKey.generate()))
    renamed = tmp_path / "renamed.toml"
    renamed.write_bytes(body.replace(b'"Physics final"', b'"Physics resit"'))
    for path in (signed, renamed):
        keys = examkeys.keys_for_file(path, password=lambda _: None)
        assert keys.config_key == TOML_CK


def test_changing_an_option_changes_the_config_key(tmp_path: Path) -> None:
    changed = tmp_path / "exam.toml"
    changed.write_bytes(
        (DATA / "exam.toml").read_bytes().replace(b"max_displays = 2", b"max_displays = 3")
    )
    assert examkeys.keys_for_file(changed, password=lambda _: None).config_key != TOML_CK


# -- Browser Exam Key ---------------------------------------------------------------------


def test_browser_exam_key_is_the_documented_hmac() -> None:
    identity = "ab" * 32
    message = f"Lockdown BEK v1\n{__version__}\n{identity}\n{SEB_CK}".encode()
    expected = hmac.new(bytes(range(32)), message, hashlib.sha256).hexdigest()
    assert examkeys.browser_exam_key(SEB_CK, bytes(range(32)).hex(), identity=identity) == expected
    # upper-case salt digits are the same salt
    assert (
        examkeys.browser_exam_key(SEB_CK, bytes(range(32)).hex().upper(), identity=identity)
        == expected
    )


def test_browser_exam_key_depends_on_salt_config_and_build() -> None:
    base = examkeys.browser_exam_key(SEB_CK, "00ff", identity="1" * 64)
    assert examkeys.browser_exam_key(SEB_CK, "00fe", identity="1" * 64) != base
    assert examkeys.browser_exam_key(TOML_CK, "00ff", identity="1" * 64) != base
    assert examkeys.browser_exam_key(SEB_CK, "00ff", identity="2" * 64) != base
    assert examkeys.browser_exam_key(SEB_CK, "00ff") == examkeys.browser_exam_key(
        SEB_CK, "00ff", identity=examkeys.build_identity()
    )


@pytest.mark.parametrize("salt", ["abc", "zz"])
def test_bad_salt_is_a_config_error(salt: str) -> None:
    with pytest.raises(ConfigError, match="salt"):
        examkeys.browser_exam_key(SEB_CK, salt)


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def test_build_identity_covers_paths_and_contents_of_the_sources(tmp_path: Path) -> None:
    files = {"pkg/__init__.py": b"x = 1\n", "pkg/sub/mod.py": b"y = 2\n"}
    first = examkeys.build_identity(_tree(tmp_path / "a", files))
    assert first == examkeys.build_identity(_tree(tmp_path / "b", files))
    assert len(first) == 64
    noise = {**files, "pkg/__pycache__/mod.cpython-311.py": b"junk", "pkg/data.txt": b"z"}
    assert examkeys.build_identity(_tree(tmp_path / "c", noise)) == first
    edited = {**files, "pkg/sub/mod.py": b"y = 3\n"}
    assert examkeys.build_identity(_tree(tmp_path / "d", edited)) != first
    moved = {"pkg/__init__.py": b"x = 1\n", "pkg/other/mod.py": b"y = 2\n"}
    assert examkeys.build_identity(_tree(tmp_path / "e", moved)) != first


def test_shipped_build_identity_file_wins(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"mod.py": b"x = 1\n", "build-identity.txt": b"AB" * 32 + b"\n"})
    assert examkeys.build_identity(root) == "ab" * 32
    (root / "build-identity.txt").write_text("not a hash")
    assert examkeys.build_identity(root) == examkeys.build_identity(
        _tree(tmp_path / "plain", {"mod.py": b"x = 1\n"})
    )


def test_build_identity_of_the_installed_package_is_stable() -> None:
    assert examkeys.build_identity() == examkeys.build_identity(examkeys.PACKAGE_ROOT)
    assert examkeys.PACKAGE_ROOT == ROOT / "lockdown"


# -- per-URL hashes -----------------------------------------------------------------------


def test_request_hash_example_from_the_reference() -> None:
    keys = examkeys.ExamKeys(
        config_key=SEB_CK,
        browser_exam_key="787c3f3d7211ff09ad5ba6a62f67b6a2092eb3080b5b5d29d578f3a3d901cbae",
    )
    url = "https://example.com/moodle/mod/quiz/attempt.php?attemptid=123&page=4"
    expected = "96fc9b4226354376f5199e1f095e6a694ef10935c06bd24eebff61200a602ce4"
    assert keys.hashes_for(url)[1] == expected
    assert keys.hashes_for(url + "#question-3")[1] == expected
    assert keys.hashes_for(url)[0] == hashlib.sha256((url + SEB_CK).encode()).hexdigest()


def test_keys_for_seb_use_its_salt() -> None:
    cfg = seb.load_seb((DATA / "exam.plist.xml").read_bytes(), origin="v", password=lambda _: None)
    keys = examkeys.keys_for_seb(cfg)
    assert keys.config_key == SEB_CK
    assert keys.browser_exam_key == examkeys.browser_exam_key(SEB_CK, bytes(range(32)).hex())
    assert keys == examkeys.ExamKeys(SEB_CK, keys.browser_exam_key)


# -- `lockdown config keys` ---------------------------------------------------------------


def _expected_lines(ck: str, salt: str) -> str:
    return f"Config Key: {ck}\nBrowser Exam Key: {examkeys.browser_exam_key(ck, salt)}\n"


@pytest.mark.parametrize(
    ("name", "ck", "salt", "extra"),
    [
        ("exam.plist.xml", SEB_CK, bytes(range(32)).hex(), []),
        ("exam-plnd.seb", SEB_CK, bytes(range(32)).hex(), []),
        ("exam-password.seb", SEB_CK, bytes(range(32)).hex(), ["--password", PASSWORD]),
        ("exam.toml", TOML_CK, "00ff", []),
    ],
)
def test_cli_prints_the_labelled_keys(
    name: str, ck: str, salt: str, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["config", "keys", str(DATA / name), *extra]) == 0
    out, err = capsys.readouterr()
    assert out == _expected_lines(ck, salt)
    assert err == ""


def test_cli_wrong_password_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = DATA / "exam-password.seb"
    assert cli.main(["config", "keys", str(path), "--password", "nope"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"lockdown: {path}: wrong password; ask your exam organiser for the right one\n"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"\x1f\x8b\x08\x00\x00", "truncated"),
        (b"format = 2\n", "'format = 1' missing"),
        (b"pkhs" + bytes(64), "encrypted for a certificate (pkhs)"),
        (
            b'format = 1\n[browser]\nexam_key_salt = "abc"\n',
            "file: exam key salt 'abc'… has an odd number of hex digits",
        ),
    ],
)
def test_cli_bad_files_are_one_line_exit_2(
    tmp_path: Path, content: bytes, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "file"
    path.write_bytes(content)
    assert cli.main(["config", "keys", str(path)]) == 2
    _, err = capsys.readouterr()
    assert fragment in err
    assert err.count("\n") == 1
    assert cli.main(["config", "keys", str(tmp_path / "missing.seb")]) == 2
    assert "file not found" in capsys.readouterr().err


def test_cli_without_a_terminal_asks_for_password_flag() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "lockdown.cli", "config", "keys", str(DATA / "exam-password.seb")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().endswith(
        "there is no terminal to ask on; pass --password-file FILE (or - for standard input)"
    )
    assert done.stderr.count("\n") == 1


def test_build_identity_is_deterministic_across_processes() -> None:
    code = "from lockdown.config.examkeys import build_identity; print(build_identity())"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    ).stdout.strip()
    assert out == examkeys.build_identity()


def _run_on_a_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as stdin/stdout/stderr, typing ``answers``."""
    import pty
    import select
    import time

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lockdown.cli", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        start_new_session=True,  # no controlling terminal: getpass reads stdin, echo off
    )
    os.close(slave)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if pending and output.count(b"Password for") > len(answers) - len(pending):
                os.write(master, pending.pop(0).encode() + b"\n")
    finally:
        os.close(master)
    return proc.wait(timeout=60), output.decode(errors="replace")


def test_cli_asks_for_the_password_on_the_terminal() -> None:
    path = str(DATA / "exam-password.seb")
    code, out = _run_on_a_terminal(["config", "keys", path], ["wrong", PASSWORD])
    assert code == 0
    assert "(try 1 of 3)" in out and "(try 2 of 3)" in out
    assert f"Config Key: {SEB_CK}" in out
    assert PASSWORD not in out  # not echoed
    code, out = _run_on_a_terminal(["config", "keys", path], ["a", "b", "c"])
    assert code == 2
    assert "wrong password 3 times; ask your exam organiser for the right one" in out
