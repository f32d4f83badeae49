"""A determined candidate against the process watcher, with real processes.

Each evasion of issue 11 is tried for real and must be caught and journalled (and, under
the close policy, terminated): a recorder started as ``exec -a pipewire``, a recorder that
starts the guard itself (an ancestor), copies renamed with case and copy suffixes in a
folder with spaces, a recorder script behind interpreter options, ``ffmpeg -f x11grab``
on the test display and ``xwd -root``. The positive controls show the protection doing
the work: the same executable in a trusted system folder *is* exempt, and the same
capture under the journal-only policy writes its file.

The recorder here is a name of this run's own, added the way an exam adds one
(``guards.prohibited_apps_extra``), so no other test run's guard on this shared machine
can close it first; the unit tests match the same variants against the real list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lockdown.guards.appslist import AppList
from lockdown.guards.processes import (
    EVENT_CLOSED,
    EVENT_DETECTED,
    ProcessWatcherGuard,
    choose_exec_source,
)
from tests.support.processes import (
    RUN_RECORDER,
    SESSION_ENV,
    TEST_SCOPE,
    Detached,
    Recorder,
    alive,
    renamed_copy,
)
from tests.support.xserver import Xvfb

LINUX = AppList.load(os_name="linux")
#: this run's recorder name (see above)
REC = RUN_RECORDER
#: the recorder plus the capture tools of the issue; nothing a developer's desktop would run
APPS = LINUX.restricted_to(["ffmpeg-grab", "scrot"]).extended([REC])


@contextmanager
def watching(
    apps: AppList = APPS, *, terminate: bool = True, grace: float = 1.0
) -> Iterator[Recorder]:
    """A netlink watcher scoped to this test run's processes; its journal."""
    guard = ProcessWatcherGuard(
        apps,
        terminate=terminate,
        grace=grace,
        rate_interval=0.0,
        source_factory=lambda: choose_exec_source(allow_netlink=True),
        scope=TEST_SCOPE,
    )
    journal = Recorder()
    guard.start(journal)
    assert journal.of("guards.process_watcher")[0].payload["backend"] == "netlink-proc-connector"
    try:
        yield journal
    finally:
        guard.stop()


def _gone_soon(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not alive(pid)


def test_exec_a_with_an_essential_name_does_not_exempt_the_real_binary(
    tmp_path: Path, detached: Detached
) -> None:
    recorder_exe = renamed_copy(tmp_path, REC)
    with watching() as journal:
        pid = detached.start(recorder_exe, "30", argv0="pipewire")
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert (detected.payload["matched_on"], detected.payload["exe"]) == (
            "exe",
            str(recorder_exe),
        )
        assert detected.payload["cmdline0"] == "pipewire"
        assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"


def test_positive_control_a_root_owned_essential_executable_is_left_alone(
    tmp_path: Path, detached: Detached
) -> None:
    # The same program, named and placed like a system essential (root-owned, in a folder
    # the list trusts): the exemption works, so the test above proves the name claim fails.
    system = tmp_path / "system"
    system.mkdir()
    pipewire = system / "pipewire"
    shutil.copy2("/bin/sleep", pipewire)
    os.chmod(pipewire, 0o755)
    assert pipewire.stat().st_uid == 0
    trusting = AppList(
        os="linux",
        apps=APPS.extended(["pipewire"]).apps,
        categories=APPS.extended([]).categories,
        essential=("pipewire",),
        essential_dirs=(str(system),),
    )
    with watching(trusting) as journal:
        exempt = detached.start(pipewire, "30", argv0="pipewire")
        other = detached.start(renamed_copy(tmp_path, REC), "30")
        journal.wait_for(EVENT_CLOSED, other)  # the watcher is working …
        assert alive(exempt)  # … and the essential executable was not touched
        assert not journal.of(EVENT_DETECTED, exempt)


def test_a_recorder_that_starts_the_guard_is_not_exempt_as_its_ancestor(tmp_path: Path) -> None:
    # A recorder (a copy of sh) runs the guard as its child: the guard must close its
    # parent. Its name is this run's own prohibited extra, so no other run's full-list
    # guard on this machine can close it first.
    name = REC
    recorder_exe = renamed_copy(tmp_path, name, "/bin/sh")
    child = (
        "import os, sys, time\n"
        "from lockdown.guards.processes import ProcessWatcherGuard\n"
        "from tests.support.processes import TEST_SCOPE\n"
        "from lockdown.guards.appslist import AppList\n"
        f"apps = AppList.load(os_name='linux').restricted_to([]).extended([{name!r}])\n"
        "print('ready', os.getpid(), os.getppid(), flush=True)\n"
        "guard = ProcessWatcherGuard(apps, terminate=True, grace=1.0, scope=TEST_SCOPE)\n"
        "guard.start(lambda e: print(e.type, e.payload.get('pid'), flush=True))\n"
        "time.sleep(30)\n"
    )
    script = tmp_path / "guard.py"
    script.write_text(child)
    recorder = subprocess.Popen(
        [str(recorder_exe), "-c", f"{sys.executable} {script}; sleep 30"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
        # the script lives in tmp_path: it finds the tests package through the path
        env={**os.environ, **SESSION_ENV, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert recorder.stdout is not None
    guard_pid = 0
    try:
        lines = iter(recorder.stdout.readline, "")
        ready = next(line for line in lines if line.startswith("ready"))
        _, guard_pid_text, parent = ready.split()
        guard_pid = int(guard_pid_text)
        assert int(parent) == recorder.pid  # the recorder is the guard's parent
        assert any(line.split() == [EVENT_CLOSED, str(recorder.pid)] for line in lines)
        assert recorder.wait(5) is not None
    finally:
        if guard_pid:
            os.kill(guard_pid, 9)
        recorder.kill()
        recorder.wait()
        recorder.stdout.close()


NAME_VARIANTS = [REC.upper(), f"{REC} (1)", f"{REC}.bin", f"{REC}-2", f"{REC.title()} Copy"]


def test_copies_with_case_and_copy_suffixes_in_a_folder_with_spaces_are_caught(
    tmp_path: Path, detached: Detached
) -> None:
    folder = tmp_path / "My Downloads"
    folder.mkdir()
    with watching() as journal:
        pids = {}
        for name in NAME_VARIANTS:
            program = folder / name
            shutil.copy2("/bin/sleep", program)
            pids[name] = detached.start(program, "30")
        for name, pid in pids.items():
            detected = journal.wait_for(EVENT_DETECTED, pid)
            assert detected.payload["app"] == f"extra:{REC}"
            assert detected.payload["matched_on"] == "exe"
            assert detected.payload["exe"] == str(folder / name)
            assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated", name


@pytest.mark.parametrize(
    "options", [("-W", "ignore"), ("-X", "dev"), ("-u", "-W", "ignore", "-X", "dev", "--")]
)
def test_a_recorder_script_behind_interpreter_options_is_caught(
    tmp_path: Path, detached: Detached, options: tuple[str, ...]
) -> None:
    script = tmp_path / REC
    script.write_text("import time\ntime.sleep(30)\n")
    with watching() as journal:
        pid = detached.start(Path(sys.executable), *options, str(script))
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert (detected.payload["matched_on"], detected.payload["matched_name"]) == (
            "script",
            REC,
        )
        assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"


def _capture(
    detached: Detached, program: str, args: list[str], *, env: dict[str, str]
) -> tuple[int, float]:
    started = time.monotonic()
    pid = detached.start(Path(shutil.which(program) or program), *args, env=env)
    return pid, started


@pytest.mark.parametrize("terminate", [True, False], ids=["close", "journal-positive-control"])
def test_ffmpeg_x11grab_on_the_test_display_is_caught_before_it_writes(
    tmp_path: Path, detached: Detached, xserver: Xvfb, terminate: bool
) -> None:
    out = tmp_path / "grab.png"
    args = ["-loglevel", "quiet", "-f", "x11grab", "-i", xserver.display, "-frames:v", "1"]
    with watching(terminate=terminate) as journal:
        pid, _ = _capture(detached, "ffmpeg", [*args, str(out)], env=xserver.env)
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert (detected.payload["app"], detected.payload["matched_on"]) == ("ffmpeg-grab", "args")
        assert detected.payload["matched_name"] == "ffmpeg x11grab"
        if terminate:
            assert detected.payload.get("stopped") is True
            assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"
            assert not out.exists(), "the grab was written although the exec was seen"
        else:
            assert detected.payload["action"] == "journal"
            assert _gone_soon(pid, 10)
            assert out.stat().st_size > 0  # without the close policy the capture succeeds


ONE_SHOT = {
    "xwd": (["-root", "-silent", "-out"], "xwd"),
    "import": (["-window", "root"], "import"),
}


@pytest.mark.parametrize("tool", sorted(ONE_SHOT))
@pytest.mark.parametrize("terminate", [True, False], ids=["close", "journal-positive-control"])
def test_a_one_shot_screenshot_is_stopped_at_exec_before_it_writes(
    tmp_path: Path, detached: Detached, xserver: Xvfb, terminate: bool, tool: str
) -> None:
    args, matched = ONE_SHOT[tool]
    out = tmp_path / ("screen.xwd" if tool == "xwd" else "screen.png")
    with watching(terminate=terminate) as journal:
        pid, _ = _capture(detached, tool, [*args, str(out)], env=xserver.env)
        detected = journal.wait_for(EVENT_DETECTED, pid)
        assert (detected.payload["app"], detected.payload["matched_name"]) == ("scrot", matched)
        if terminate:
            assert detected.payload.get("stopped") is True
            assert journal.wait_for(EVENT_CLOSED, pid).payload["how"] == "terminated"
            assert not out.exists() or out.stat().st_size == 0, f"{tool} wrote the screen"
        else:
            assert _gone_soon(pid, 10)
            assert out.stat().st_size > 0  # the journal-only policy lets it write
