"""Hostile and unusual `.seb` property lists: bounded time and memory, SEB dates, integers.

The time and memory bound is measured in a fresh child process (its own peak RSS from
``os.wait4``), never in the test process, which is already large after the web-engine
tests. Linux keeps the peak RSS of the forked process across ``exec``, so the child is
forked by a small launcher process, not by pytest. The positive control runs the same files through the tree builder alone, without
the streaming pre-scan, in the same kind of child: it breaks the bound.
"""

from __future__ import annotations

import gzip
import os
import plistlib
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from lockdown.config import examkeys, seb
from lockdown.config.settings import ConfigError

ROOT = Path(__file__).resolve().parents[3]
MAX_SECONDS = 1.0
MAX_RSS_MB = 100.0
HEAD = b'<?xml version="1.0" encoding="UTF-8"?><plist version="1.0"><dict><key>a</key>'

#: The child reads the file, then either loads it as a .seb (``guarded``) or gunzips it and
#: builds the tree without the pre-scan (``unguarded``); it prints the outcome and how long
#: the work took. A CPU limit stops a child that runs away.
CHILD = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_CPU, (2, 3))
mode, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
from lockdown.config import seb
from lockdown.config.settings import ConfigError
started = time.perf_counter()
try:
    if mode == "guarded":
        seb.load_seb(data, origin="hostile.seb", password=lambda _: None)
    else:
        seb.build_tree(seb.unwrap(data, origin="hostile.seb", password=lambda _: None), origin="x")
    outcome = "accepted"
except ConfigError as exc:
    outcome = "refused: " + str(exc)
print(f"{time.perf_counter() - started:.3f}")
print(outcome, flush=True)
"""

#: A bare Python (a few MB) that forks the child, waits for it with os.wait4 and prints
#: its exit status and peak RSS (kilobytes) as the last line.
LAUNCHER = r"""
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.executable, [sys.executable, "-c", *sys.argv[1:]])
_, status, usage = os.wait4(pid, 0)
cpu = usage.ru_utime + usage.ru_stime
print(f"status {status} rss {usage.ru_maxrss} cpu {cpu:.3f}", flush=True)
"""


@dataclass(frozen=True)
class Run:
    seconds: float | None  # None when the child was stopped before it finished
    rss_mb: float
    cpu_seconds: float  # the whole child: interpreter start, imports, reading, refusing
    outcome: str
    signal: int


def run_child(mode: str, path: Path) -> Run:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, CHILD, mode, str(path)],
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=True,
    )
    *lines, last = done.stdout.decode().splitlines()
    _, status_text, _, rss_kb, _, cpu = last.split()
    status = int(status_text)
    finished = os.WIFEXITED(status) and len(lines) == 2
    return Run(
        seconds=float(lines[0]) if finished else None,
        rss_mb=int(rss_kb) / 1024,  # ru_maxrss is in kilobytes on Linux
        cpu_seconds=float(cpu),
        outcome=lines[1] if finished else "",
        signal=os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The two files of the report: 1.9 M empty dictionaries, a 2.3 M deep unclosed array."""
    folder = tmp_path_factory.mktemp("hostile")
    files = {
        "dicts": HEAD + b"<array>" + b"<dict/>" * 1_900_000 + b"</array></dict></plist>",
        "arrays": HEAD + b"<array>" * 2_300_000,
    }
    paths = {}
    for name, xml in files.items():
        path = folder / f"{name}.seb"
        path.write_bytes(gzip.compress(xml, 9, mtime=0))
        assert path.stat().st_size < 32 * 1024
        paths[name] = path
    return paths


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("dicts", "more than 100,000 elements"),
        ("arrays", "nested deeper than 64 levels"),
    ],
)
def test_hostile_files_are_refused_in_under_a_second_and_100_mb(
    hostile: dict[str, Path], name: str, fragment: str
) -> None:
    run = run_child("guarded", hostile[name])
    assert run.outcome.startswith("refused: hostile.seb: "), run
    assert fragment in run.outcome
    assert run.seconds is not None and run.seconds < MAX_SECONDS, run
    assert run.cpu_seconds < MAX_SECONDS, run
    assert run.rss_mb < MAX_RSS_MB, run


@pytest.mark.parametrize("name", ["dicts", "arrays"])
def test_control_without_the_prescan_the_same_files_break_the_bound(
    hostile: dict[str, Path], name: str
) -> None:
    run = run_child("unguarded", hostile[name])
    over_time = run.seconds is None or run.seconds >= MAX_SECONDS
    assert over_time or run.rss_mb >= MAX_RSS_MB, run


def test_prescan_counts_elements_and_builds_nothing() -> None:
    xml = HEAD + b"<array><dict/><integer>1</integer></array></dict></plist>"
    assert seb.prescan(xml, origin="x") == 6  # plist dict key array dict integer


def test_a_file_at_the_limits_is_read() -> None:
    deep: object = 1
    for _ in range(examkeys.MAX_DEPTH - 1):
        deep = [deep]
    many = list(range(seb.MAX_ELEMENTS // 2 - 10))
    xml = plistlib.dumps({"deep": deep, "many": many}, fmt=plistlib.FMT_XML)
    plist = seb.parse_plist(xml, origin="x")
    assert plist["many"][-1] == many[-1]


# -- dates ---------------------------------------------------------------------------------


def plist_of(value_xml: str) -> dict[str, object]:
    return seb.parse_plist(
        f'<?xml version="1.0"?><plist version="1.0"><dict><key>d</key>{value_xml}</dict></plist>'.encode(),
        origin="dates.seb",
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-06-01T08:00:00Z", datetime(2026, 6, 1, 8, 0, 0)),
        # SEB for Windows (XmlConvert, DateTime "o"): seven fractional digits and Z
        ("2026-06-01T08:00:00.1234567Z", datetime(2026, 6, 1, 8, 0, 0, 123456)),
        ("2026-06-01T08:00:00.5Z", datetime(2026, 6, 1, 8, 0, 0, 500000)),
        ("2026-06-01T10:00:00.25+02:00", datetime(2026, 6, 1, 8, 0, 0, 250000)),
        ("2026-06-01T08:00:00", datetime(2026, 6, 1, 8, 0, 0)),
        # plistlib's shortened forms stay readable
        ("2026-06Z", datetime(2026, 6, 1)),
    ],
)
def test_dates_as_seb_for_windows_and_apple_write_them(text: str, expected: datetime) -> None:
    assert plist_of(f"<date>{text}</date>")["d"] == expected


def test_fractional_seconds_are_kept_in_the_seb_json() -> None:
    plist = plist_of("<date>2026-06-01T08:00:00.1234567Z</date>")
    assert examkeys.seb_json(plist) == '{"d":"2026-06-01T08:00:00.123456+00:00"}'


@pytest.mark.parametrize("text", ["x", "2026-13-01T00:00:00Z", "2026-06-01T08:00", "1"])
def test_bad_dates_are_one_line(text: str) -> None:
    with pytest.raises(ConfigError, match="not a valid property list") as exc:
        plist_of(f"<date>{text}</date>")
    assert "NoneType" not in str(exc.value)
    assert "\n" not in str(exc.value)


# -- integers and other values ---------------------------------------------------------------


def test_a_100000_digit_integer_is_a_plain_message() -> None:
    with pytest.raises(ConfigError) as exc:
        plist_of("<integer>" + "9" * 100_000 + "</integer>")
    message = str(exc.value)
    assert "longer than 24 digits" in message
    assert "set_int_max_str_digits" not in message
    assert len(message) < 200


@pytest.mark.parametrize(
    ("text", "value"),
    [("-9223372036854775808", -(2**63)), ("18446744073709551615", 2**64 - 1), ("0x1F", 31)],
)
def test_integers_up_to_64_bits_are_read(text: str, value: int) -> None:
    assert plist_of(f"<integer>{text}</integer>")["d"] == value


@pytest.mark.parametrize("text", ["18446744073709551616", "-9223372036854775809", "1.5", "0x"])
def test_integers_beyond_64_bits_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="not a valid property list"):
        plist_of(f"<integer>{text}</integer>")


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        ("<foo>1</foo>", "unknown element <foo>"),
        ("<string>a</string><string>b</string>", "without a key"),
    ],
)
def test_structure_errors_are_one_line(xml: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        plist_of(xml)
