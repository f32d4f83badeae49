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

from lockdown import __version__, build, cli
from lockdown.build import Build
from lockdown.config import examfile, examkeys, keyscmd, seb
from lockdown.config.settings import ConfigError, Organisation, layer

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
    keys = examkeys.keys_for_values(values, layer(Organisation(), values), "shared")
    assert keys.config_key == TOML_CK


def test_signature_and_exam_metadata_do_not_change_the_config_key(tmp_path: Path) -> None:
    body = (DATA / "exam.toml").read_bytes()
    signed = tmp_path / "signed.toml"
    signed.write_bytes(examfile.sign(body, Ed25519PrivateKey.generate()))
    renamed = tmp_path / "renamed.toml"
    renamed.write_bytes(body.replace(b'"Physics final"', b'"Physics resit"'))
    for path in (signed, renamed):
        keys = keyscmd.keys_for_file(path, password=lambda _: None)
        assert keys[0].config_key == TOML_CK


def test_changing_an_option_changes_the_config_key(tmp_path: Path) -> None:
    changed = tmp_path / "exam.toml"
    changed.write_bytes(
        (DATA / "exam.toml").read_bytes().replace(b"max_displays = 2", b"max_displays = 3")
    )
    assert keyscmd.keys_for_file(changed, password=lambda _: None)[0].config_key != TOML_CK


# -- Browser Exam Key ---------------------------------------------------------------------


BUILD = Build("installed", __version__, "ab" * 32, "test")


def test_browser_exam_key_is_the_documented_hmac() -> None:
    message = "\n".join(
        [
            "Lockdown BEK v2",
            __version__,
            "build: installed",
            "ab" * 32,
            "isolation: shared",
            "settings: " + "cd" * 32,
            SEB_CK,
        ]
    ).encode()
    expected = hmac.new(bytes(range(32)), message, hashlib.sha256).hexdigest()
    salt = bytes(range(32)).hex()
    kwargs = {"settings": "cd" * 32, "mode": "shared", "build": BUILD}
    assert examkeys.browser_exam_key(SEB_CK, salt, **kwargs) == expected  # type: ignore[arg-type]
    # upper-case salt digits are the same salt
    assert examkeys.browser_exam_key(SEB_CK, salt.upper(), **kwargs) == expected  # type: ignore[arg-type]


def _bek(ck: str = SEB_CK, salt: str = "00ff", **changes: object) -> str:
    kwargs: dict[str, object] = {"settings": "1" * 64, "mode": "shared", "build": BUILD}
    kwargs.update(changes)
    return examkeys.browser_exam_key(ck, salt, **kwargs)  # type: ignore[arg-type]


def test_browser_exam_key_depends_on_salt_config_build_mode_and_settings() -> None:
    base = _bek()
    assert _bek(salt="00fe") != base
    assert _bek(ck=TOML_CK) != base
    assert _bek(build=Build("installed", __version__, "ef" * 32, "test")) != base
    assert _bek(build=Build("development", __version__, "ab" * 32, "test")) != base
    assert _bek(mode="isolated") != base
    assert _bek(settings="2" * 64) != base
    assert _bek() == base


@pytest.mark.parametrize("salt", ["abc", "zz"])
def test_bad_salt_is_a_config_error(salt: str) -> None:
    with pytest.raises(ConfigError, match="salt"):
        _bek(salt=salt)


def _keys(org: Organisation, values: dict[str, object] | None = None) -> examkeys.ExamKeys:
    exam = {"browser.start_url": "https://exam.example.org/", **(values or {})}
    return examkeys.keys_for_values(exam, layer(org, exam), "shared")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("guards.prohibited_apps", "allow"),
        ("guards.keyboard_lock", False),
        ("guards.focus", False),
        ("guards.clipboard", "allow"),
        ("guards.screenshots", False),
        ("browser.url_filter", False),
        ("accessibility.assistive_technology", True),
        ("proctoring.spool_max_mb", 100),
    ],
)
def test_an_enforced_organisation_option_changes_the_browser_exam_key(
    option: str, value: object
) -> None:
    plain = _keys(Organisation())
    changed = _keys(Organisation(values={option: value}))
    assert changed.config_key == plain.config_key  # the Config Key is the file's alone
    assert changed.browser_exam_key != plain.browser_exam_key
    assert changed.settings_hash != plain.settings_hash


def test_what_is_not_enforced_leaves_the_browser_exam_key_alone() -> None:
    plain = _keys(Organisation()).browser_exam_key
    trusted = ("ed25519:" + "A" * 43 + "=",)
    # which files may load is not what the exam enforces
    assert _keys(Organisation(values={"config.trusted_keys": trusted})).browser_exam_key == plain
    assert _keys(Organisation(values={"config.allow_seb": False})).browser_exam_key == plain
    # an organisation value equal to the default, or one the exam sets back, changes nothing
    assert _keys(Organisation(values={"guards.focus": True})).browser_exam_key == plain
    exam = {"guards.focus": True}
    assert (
        _keys(Organisation(values={"guards.focus": False}), exam).browser_exam_key
        == _keys(Organisation(), exam).browser_exam_key
    )


def test_keys_for_seb_use_its_salt_and_the_config_key_of_the_file_alone() -> None:
    cfg = seb.load_seb((DATA / "exam.plist.xml").read_bytes(), origin="v", password=lambda _: None)
    settings = layer(Organisation(), cfg.values)
    keys = examkeys.keys_for_seb(cfg, settings, "shared")
    assert keys.config_key == SEB_CK
    assert keys.browser_exam_key == examkeys.browser_exam_key(
        SEB_CK, bytes(range(32)).hex(), settings=examkeys.settings_hash(settings), mode="shared"
    )
    org = Organisation(
        values={"guards.screenshots": False}, locked=frozenset({"guards.screenshots"})
    )
    locked = layer(org, cfg.values)
    other = examkeys.keys_for_seb(cfg, locked, "shared")
    assert other.config_key == SEB_CK and other.browser_exam_key != keys.browser_exam_key


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


# -- `lockdown config keys` ---------------------------------------------------------------


def _expected_lines(path: Path, password: str | None) -> str:
    all_keys = keyscmd.keys_for_file(path, password=lambda _: password)
    identity = build.current().identity[:12]
    lines = [f"Config Key: {all_keys[0].config_key}"] + [
        f"Browser Exam Key ({k.mode} display, development build {identity}): {k.browser_exam_key}"
        for k in all_keys
    ]
    return "\n".join(lines) + "\n"


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
    assert out == _expected_lines(DATA / name, PASSWORD)
    assert out.startswith(f"Config Key: {ck}\n")
    assert err == ""
    keys = keyscmd.keys_for_file(DATA / name, password=lambda _: PASSWORD)
    assert [k.mode for k in keys] == list(examkeys.ISOLATION_MODES)
    assert keys[0].browser_exam_key == _bek_of(ck, salt, keys[0].settings_hash)


def _bek_of(ck: str, salt: str, settings: str) -> str:
    return examkeys.browser_exam_key(ck, salt, settings=settings, mode="shared")


def test_cli_keys_follow_the_organisation_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = DATA / "exam.toml"
    assert cli.main(["config", "keys", str(path)]) == 0
    plain = capsys.readouterr().out
    org = tmp_path / "organisation.toml"
    org.write_text("[settings.guards]\nscreenshots = false\n")
    assert cli.main(["--organisation", str(org), "config", "keys", str(path)]) == 0
    loosened = capsys.readouterr().out
    assert plain.splitlines()[0] == loosened.splitlines()[0]  # the Config Key
    assert plain.splitlines()[1] != loosened.splitlines()[1]  # the Browser Exam Key


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


@pytest.mark.parametrize(
    ("policy", "modes"),
    [("required", ("isolated",)), ("preferred", ("shared", "isolated")), ("off", ("shared",))],
)
def test_the_display_policy_decides_which_modes_get_a_key(
    policy: str, modes: tuple[str, ...]
) -> None:
    assert examkeys.isolation_modes({"guards.display_isolation": policy}) == modes


def test_the_isolation_mode_changes_the_browser_exam_key() -> None:
    shared = examkeys.browser_exam_key("ab" * 32, "00ff", settings="s", mode="shared")
    isolated = examkeys.browser_exam_key("ab" * 32, "00ff", settings="s", mode="isolated")
    assert shared != isolated
