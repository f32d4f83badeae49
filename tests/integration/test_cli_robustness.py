"""The real `lockdown` process given bad arguments, for every command: never a traceback.

Also: ``--json`` on failures, a reader that goes away (``lockdown config keys F |
head -1``), output to a full disk (``/dev/full``) and an unwritable folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lockdown import cli

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "seb"


def env_for(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # `open` stops before Qt
    return {
        **env,
        "PYTHONPATH": str(ROOT),
        "LOCKDOWN_ORGANISATION_FILE": str(tmp_path / "none.toml"),
        "LOCKDOWN_INSTANCE_NAME": f"robustness-{os.getpid()}",
    }


def bad_invocations(tmp_path: Path) -> list[list[str]]:
    """For every command: an unknown option, and bad values or files where it takes any."""
    missing = str(tmp_path / "missing")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xff garbage \x1f\x8b")
    huge = tmp_path / "huge.toml"  # an integer longer than Python converts by default
    huge.write_text("format = 1\n[guards]\nmax_displays = " + "9" * 100_000 + "\n")
    long = tmp_path / "long.toml"
    long.write_text("format = 1\n[guards]\nmax_displays = " + "9" * 4000 + "\n")
    runs = [[*words.split(), "--no-such-option"] for words in cli.EXAMPLES if words]
    runs += [
        ["--no-such-option"],
        ["no-such-command"],
        ["open"],
        ["open", missing],
        ["open", "ftp://exam.example.org/"],
        ["demo", "--screenshots"],
        ["settings", "extra"],
        ["config"],
        ["config", "validate", missing],
        ["config", "validate", str(garbage)],
        ["config", "validate", str(DATA / "exam-password.seb"), "--password-file", missing],
        ["config", "validate", str(DATA / "exam.toml"), "--pubkey", "ed25519:nonsense"],
        ["config", "sign", missing, "--key", missing],
        ["config", "sign", str(DATA / "exam.toml"), "--key", str(garbage)],
        ["config", "keys", missing],
        ["config", "keys", str(huge)],
        ["config", "keys", str(long)],
        ["environment", "--organisation", str(huge)],
        ["config", "keys", str(garbage)],
        ["config", "keys", str(DATA / "exam-password.seb"), "--password", "wrong"],
        ["config", "keys", str(DATA / "exam-password.seb"), "--password-file", str(garbage)],
        ["keys", "generate", "--out", str(tmp_path / "no" / "such" / "folder" / "k")],
        ["journal", "verify", missing],
        ["journal", "verify", "--json", str(garbage)],
        ["environment", "--organisation", missing],
        ["environment", "--organisation", str(garbage), "--json"],
        ["record", "--seconds", "abc", "--out", missing],
        ["record", "--seconds", "-1", "--out", missing],
        ["record", "--out", missing, "--config", str(garbage)],
        ["spool", "verify", missing],
        ["spool", "verify", "--json", str(garbage)],
        ["check", "--json", "--bogus"],
        ["check", "--config", missing],
        ["check", "--json", "--config", str(garbage)],
        ["check", "--json", "--send"],
        ["check", "--config", str(DATA / "exam-plnd.seb")],
        ["--organisation", missing, "config", "validate", str(DATA / "exam.toml")],
    ]
    return runs


#: One real Python process imports the command once, then forks a child per invocation
#: (all at once) that runs it as ``python -m lockdown.cli`` would: ``main``'s exit code,
#: SystemExit from argparse, and an uncaught exception printed as the interpreter does.
#: Starting 60 interpreters instead costs ~25 s of CPU on this 2-core machine.
DRIVER = r"""
import json, os, sys, traceback
from lockdown import cli
runs, folder = json.loads(sys.argv[1]), sys.argv[2]
children = []
for index, argv in enumerate(runs):
    pid = os.fork()
    if pid == 0:
        for fd, name in ((1, "out"), (2, "err")):
            target = os.open(f"{folder}/{index}.{name}", os.O_WRONLY | os.O_CREAT, 0o600)
            os.dup2(target, fd)
            os.close(target)
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    children.append(pid)
print(json.dumps([os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]))
"""


def test_every_command_with_bad_arguments_fails_in_one_line_without_a_traceback(
    tmp_path: Path,
) -> None:
    runs = bad_invocations(tmp_path)
    # every command of the parser is in the list, so a new command cannot be forgotten
    assert {" ".join(r[: len(w.split())]) for r in runs for w in cli.EXAMPLES if w} >= {
        w for w in cli.EXAMPLES if w
    }
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    driver = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(runs), str(outputs)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env_for(tmp_path),
        cwd=tmp_path,
        timeout=120,
        check=True,
    )
    codes = json.loads(driver.stdout)
    assert len(codes) == len(runs)
    failures = []
    for index, (argv, code) in enumerate(zip(runs, codes, strict=True)):
        out = (outputs / f"{index}.out").read_text()
        err = (outputs / f"{index}.err").read_text()
        problems = []
        if code not in (1, 2):
            problems.append(f"exit {code}")
        if "Traceback" in err or "Traceback" in out:
            problems.append("traceback")
        messages = [
            line
            for line in err.splitlines()
            if line.startswith(("lockdown: ", "lockdown ")) and ": error: " not in line
        ]
        usage_errors = [line for line in err.splitlines() if ": error: " in line]
        if len(messages) + len(usage_errors) != 1:
            problems.append(f"{len(messages) + len(usage_errors)} error lines")
        if any(len(line) > 400 for line in messages):
            problems.append("an error line longer than 400 characters")
        if "set_int_max_str_digits" in err:
            problems.append("Python's integer-limit advice")
        if "--json" in argv:
            try:
                answer = json.loads(out)
            except ValueError:
                answer = {}
            if answer.get("ok") is not False or not answer.get("error"):
                problems.append(f"no JSON failure on stdout: {out[:200]!r}")
        if problems:
            failures.append(f"lockdown {' '.join(argv)}: {', '.join(problems)}\n{err[-600:]}")
    assert failures == []


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    for argv in (["config", "keys", str(DATA / "exam.plist.xml")], ["settings"]):
        read_end, write_end = os.pipe()
        os.close(read_end)  # the reader is gone before anything is written
        try:
            done = subprocess.run(
                [sys.executable, "-m", "lockdown.cli", *argv],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                timeout=60,
                check=False,
            )
        finally:
            os.close(write_end)
        assert done.returncode == cli.EXIT_CLOSED_PIPE, done.stderr
        assert done.stderr == "", done.stderr


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full to play a full disk")
@pytest.mark.parametrize(
    "argv",
    [["settings"], ["config", "keys", str(DATA / "exam.plist.xml")], ["environment", "--json"]],
)
def test_output_to_a_full_disk_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    with open("/dev/full", "w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "lockdown.cli", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(tmp_path),
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("lockdown: ")]
    assert len(errors) == 1 and "No space left on device" in errors[0], done.stderr


def test_head_reads_the_first_line_and_nothing_complains() -> None:
    command = (
        f"{sys.executable} -m lockdown.cli settings | head -1; "
        f"{sys.executable} -m lockdown.cli config keys {DATA / 'exam.plist.xml'} | head -1"
    )
    done = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith("Config Key: ")
    assert done.stderr == ""


@pytest.mark.skipif(os.geteuid() != 0, reason="an unwritable folder cannot stop root")
def test_an_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    # root writes anywhere, so a read-only bind of the folder plays the unwritable disk
    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,ro", "tmpfs", str(locked)], check=True)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "lockdown.cli", "keys", "generate", "--out", str(locked / "k")],
            capture_output=True,
            text=True,
            env=env_for(tmp_path),
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(["umount", str(locked)], check=True)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "Read-only file system" in done.stderr
