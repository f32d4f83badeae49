"""The `lockdown` parser: help and examples everywhere, global options anywhere, .seb passwords."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from lockdown import cli, log
from lockdown.config import keyscmd

DATA = Path(__file__).resolve().parents[1] / "data" / "seb"
PASSWORD = "Prüfung-2026!"
CK = "adac1a5a0017f452d8fac260edef4b3b66c6e969c61b9109acff453bdfe2ff96"


def commands() -> list[tuple[str, argparse.ArgumentParser]]:
    parser = cli.build_parser()
    return [("", parser), *cli._subcommands(parser)]


def test_every_command_has_an_example_and_every_argument_a_help_text() -> None:
    missing = []
    for words, parser in commands():
        assert words in cli.EXAMPLES, f"no example for `lockdown {words}`"
        example = cli.EXAMPLES[words]
        assert example.startswith(f"lockdown {words}".strip()), example
        assert f"example:\n  {example}" in parser.format_help()
        missing += [
            f"{words or 'lockdown'} {action.option_strings or action.dest}"
            for action in parser._actions
            if not action.help and not isinstance(action, argparse._SubParsersAction)
        ]
    assert missing == []
    assert set(cli.EXAMPLES) == {words for words, _ in commands()}


def test_global_options_are_accepted_after_the_command_too() -> None:
    parser = cli.build_parser()
    after = parser.parse_args(
        ["config", "keys", "f.seb", "--debug", "--organisation", "org.toml", "--json-logging"]
    )
    assert (after.debug, after.organisation, after.json_logging) == (True, "org.toml", True)
    before = parser.parse_args(["--debug", "--organisation", "org.toml", "environment"])
    assert (before.debug, before.organisation, before.json_logging) == (True, "org.toml", False)
    plain = parser.parse_args(["environment"])
    assert (plain.debug, plain.organisation, plain.temp_basedir) == (False, None, False)
    # given twice: the one after the command wins, as the last one does in argparse
    both = parser.parse_args(["--organisation", "a.toml", "environment", "--organisation", "b"])
    assert both.organisation == "b"


def test_every_leaf_command_takes_every_global_option() -> None:
    globals_ = {"--debug", "--json-logging", "--temp-basedir", "--organisation"}
    for words, parser in commands():
        if words:
            options = {s for a in parser._actions for s in a.option_strings}
            assert globals_ <= options, words


def test_a_usage_error_with_json_prints_a_json_object_too(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["journal", "verify", "--json"])
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "ok": False,
        "error": "the following arguments are required: file",
        "exit_code": 2,
    }
    assert "the following arguments are required: file" in err


# -- .seb passwords ------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n", "", "\nsecond line\n"])
def test_password_file_gives_its_first_line(
    tmp_path: Path, ending: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "password.txt"
    secret.write_bytes((PASSWORD + ending).encode())
    args = ["config", "keys", str(DATA / "exam-password.seb"), "--password-file", str(secret)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith(f"Config Key: {CK}\n")


def test_password_from_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    assert (
        cli.main(["config", "keys", str(DATA / "exam-password.seb"), "--password-file", "-"]) == 0
    )
    assert capsys.readouterr().out.startswith(f"Config Key: {CK}\n")


def test_password_file_is_not_read_for_a_plain_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "never-read.txt"
    args = ["config", "keys", str(DATA / "exam-plnd.seb"), "--password-file", str(missing)]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.startswith(f"Config Key: {CK}\n")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "password file not found; check the path"),
        (b"", "the password file is empty; put the password on its first line"),
        (b"\n" + PASSWORD.encode(), "the password file is empty"),
        (b"\xff\xfe", "the password file is not UTF-8 text"),
        (b"wrong\n", "wrong password; ask your exam organiser for the right one"),
    ],
)
def test_password_file_problems_are_one_line(
    tmp_path: Path, content: bytes | None, fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "password.txt"
    if content is not None:
        secret.write_bytes(content)
    args = ["config", "keys", str(DATA / "exam-password.seb"), "--password-file", str(secret)]
    assert cli.main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and fragment in err


def test_password_and_password_file_together_are_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["config", "keys", "x.seb", "--password", "a", "--password-file", "-"])
    assert exc.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_the_password_from_a_file_is_kept_out_of_the_log(tmp_path: Path) -> None:
    secret = tmp_path / "password.txt"
    secret.write_text("a-secret-of-ours\n", encoding="utf-8")
    assert keyscmd.read_password_file(str(secret)) == "a-secret-of-ours"
    assert "a-secret-of-ours" not in log.redact("given a-secret-of-ours here")


# -- config validate of a .seb ---------------------------------------------------------------


def test_config_validate_reads_a_seb_and_lists_mapped_and_ignored_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKDOWN_ORGANISATION_FILE", str(tmp_path / "none.toml"))
    secret = tmp_path / "password.txt"
    secret.write_text(PASSWORD, encoding="utf-8")
    path = DATA / "exam-password.seb"
    assert cli.main(["config", "validate", str(path), "--password-file", str(secret)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        f"{path}: valid Safe Exam Browser configuration; Config Key {CK}; "
        "17 settings mapped, 9 ignored"
    )
    assert (
        '  mapped  startURL -> browser.start_url = "https://exam.example.org/quiz/start?id=7"'
        in lines
    )
    assert "  mapped  allowedDisplaysMaxNumber -> guards.max_displays = 2" in lines
    assert lines[-1] == (
        "  ignored (no Lockdown counterpart): allowWLAN, allowWlan, alpha, "
        "browserMessagingSocket, embeddedCertificates, emptyOptions, onlyOriginator, "
        "originatorVersion, Zeta"
    )


def test_config_validate_of_a_damaged_seb_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOCKDOWN_ORGANISATION_FILE", str(tmp_path / "none.toml"))
    damaged = tmp_path / "exam.seb"
    damaged.write_bytes((DATA / "exam-plnd.seb").read_bytes()[:40])
    assert cli.main(["config", "validate", str(damaged)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "truncated" in err
    assert "TOML" not in err
