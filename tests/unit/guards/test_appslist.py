"""The prohibited-apps data file and the matcher: names, copies, interpreters, arguments."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lockdown.config.settings import Organisation, Settings, flatten, layer
from lockdown.guards.appslist import (
    AppList,
    AppListError,
    ProcessFacts,
    default_list_path,
    name_variants,
)

CATEGORIES = {
    "screen_capture",
    "remote_control",
    "meetings_chat",
    "clipboard_injection",
    "browsers",
}


@pytest.fixture(scope="module")
def linux() -> AppList:
    return AppList.load(os_name="linux")


@pytest.fixture(scope="module")
def windows() -> AppList:
    return AppList.load(os_name="windows")


@pytest.fixture(scope="module")
def macos() -> AppList:
    return AppList.load(os_name="macos")


def test_the_data_file_covers_every_category_on_every_os() -> None:
    for os_name in ("linux", "windows", "macos"):
        apps = AppList.load(os_name=os_name)  # type: ignore[arg-type]
        assert {a.category for a in apps.apps} == CATEGORIES, os_name
        assert apps.essential and apps.remote_servers


@pytest.mark.parametrize(
    "name",
    [
        "obs",
        "simplescreenrecorder",
        "kazam",
        "vokoscreen",
        "peek",
        "anydesk",
        "teamviewer",
        "rustdesk",
        "x11vnc",
        "zoom",
        "teams",
        "discord",
        "slack",
        "skypeforlinux",
        "copyq",
        "clipit",
        "diodon",
        "parcellite",
        "xdotool",
        "autokey",
        "chrome",
        "firefox",
    ],
)
def test_well_known_linux_apps_are_listed(linux: AppList, name: str) -> None:
    assert linux.matcher().match(ProcessFacts(pid=10, exe=f"/usr/bin/{name}")) is not None


def test_linux_matches_the_executable_not_only_the_truncated_comm(linux: AppList) -> None:
    facts = ProcessFacts(
        pid=42,
        name="simplescreenrec",  # the kernel's 15-character comm
        exe="/usr/bin/simplescreenrecorder",
        cmdline=("simplescreenrecorder", "--start-hidden"),
    )
    match = linux.matcher().match(facts)
    assert match is not None
    assert (match.app.id, match.matched_on) == ("simplescreenrecorder", "exe")


def test_linux_matches_cmdline0_when_exe_is_unreadable(linux: AppList) -> None:
    facts = ProcessFacts(pid=42, name="x", cmdline=("/opt/anydesk/anydesk", "--service"))
    match = linux.matcher().match(facts)
    assert match is not None and match.matched_on == "cmdline"


def test_linux_matches_a_script_run_by_an_interpreter(linux: AppList) -> None:
    facts = ProcessFacts(
        pid=7, exe="/usr/bin/python3.11", cmdline=("python3", "-O", "/usr/bin/kazam")
    )
    match = linux.matcher().match(facts)
    assert match is not None and (match.app.id, match.matched_on) == ("kazam", "script")


def test_linux_truncated_comm_alone_matches_when_nothing_else_is_readable(linux: AppList) -> None:
    facts = ProcessFacts(pid=99, ppid=1, name="simplescreenrec")
    match = linux.matcher().match(facts)
    assert match is not None and match.app.id == "simplescreenrecorder"


@pytest.mark.parametrize(
    "exe",
    [
        "/usr/bin/OBS",
        "/home/c/Downloads/obs (1)",
        "/home/c/Downloads/obs.bin",
        "/opt/obs-studio",
        "/home/c/my apps/Obs Copy 2",
        "/tmp/OBS.AppImage",
        "/tmp/obs-2",
        "/tmp/obs.real~",
    ],
)
def test_linux_names_match_case_insensitively_and_past_copy_suffixes(
    linux: AppList, exe: str
) -> None:
    match = linux.matcher().match(ProcessFacts(pid=5, exe=exe, cmdline=(exe,)))
    assert match is not None and (match.app.id, match.matched_on) == ("obs", "exe")


@pytest.mark.parametrize("exe", ["/usr/bin/observer", "/usr/bin/jobs", "/usr/bin/sleep"])
def test_names_that_only_contain_a_listed_name_do_not_match(linux: AppList, exe: str) -> None:
    assert linux.matcher().match(ProcessFacts(pid=5, exe=exe, cmdline=(exe,))) is None


@pytest.mark.parametrize(
    "cmdline",
    [
        ("python3", "-W", "ignore", "/tmp/obs"),
        ("python3", "-X", "dev", "/tmp/obs"),
        ("python3", "-OWignore", "-X", "dev", "--", "/tmp/obs", "--start"),
        ("python3", "-u", "-m", "tools.obs"),
        ("python3", "-mobs"),
        ("env", "A=1", "-u", "HOME", "python3", "-W", "error", "obs.py"),
        ("perl", "-I", "/tmp/lib", "/tmp/OBS"),
        ("perl", "-w", "-l", "/tmp/obs"),
        ("ruby", "-r", "json", "-W0", "/tmp/obs.rb"),
        ("bash", "-o", "errexit", "/tmp/obs (1)"),
        ("node", "--require", "x", "/tmp/obs.js"),
    ],
)
def test_a_script_is_found_past_the_interpreters_options(
    linux: AppList, cmdline: tuple[str, ...]
) -> None:
    facts = ProcessFacts(pid=7, exe=f"/usr/bin/{cmdline[0]}", cmdline=cmdline)
    match = linux.matcher().match(facts)
    assert match is not None and (match.app.id, match.matched_on) == ("obs", "script")


@pytest.mark.parametrize(
    "cmdline",
    [
        ("python3", "-c", "import obs"),
        ("python3", "-W", "obs", "/tmp/notes"),  # obs is the option's value, not the script
        ("bash", "-c", "obs"),
        ("python3",),
    ],
)
def test_inline_code_and_option_values_are_not_taken_for_a_script(
    linux: AppList, cmdline: tuple[str, ...]
) -> None:
    facts = ProcessFacts(pid=7, exe=f"/usr/bin/{cmdline[0]}", cmdline=cmdline)
    assert linux.matcher().match(facts) is None


LINUX_MATCHER = AppList.load(os_name="linux").matcher()
RUNNERS = ["python3", "env", "bash", "perl", "ruby", "node", "sleep"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(["-W", "-X", "-c", "-m", "--", "-OW", "obs"]), st.text())
    ).map(tuple),
    st.sampled_from(RUNNERS),
)
def test_any_command_line_is_parsed_without_error(args: tuple[str, ...], runner: str) -> None:
    facts = ProcessFacts(pid=9, exe=f"/usr/bin/{runner}", cmdline=(runner, *args))
    match = LINUX_MATCHER.match(facts)
    assert match is None or match.app.id in {a.id for a in LINUX_MATCHER.list.apps}
    assert not LINUX_MATCHER.is_essential(facts)  # no owner read: never essential


@given(st.text())
def test_name_variants_only_ever_shorten_a_name(name: str) -> None:
    variants = name_variants("linux", name)
    assert all(len(b) < len(a) for a, b in itertools.pairwise(variants))
    assert all(v == v.casefold().strip() for v in variants)


@pytest.mark.parametrize(
    ("cmdline", "app"),
    [
        (("ffmpeg", "-f", "x11grab", "-i", ":0", "out.mkv"), "ffmpeg-grab"),
        (("avconv", "-f", "KMSGRAB", "-i", "-", "out.mkv"), "ffmpeg-grab"),
        (("gst-launch-1.0", "ximagesrc", "!", "videoconvert"), "ffmpeg-grab"),
        (("magick", "import", "-window", "root", "shot.png"), "scrot"),
    ],
)
def test_argument_patterns_catch_general_tools_used_for_capture(
    linux: AppList, cmdline: tuple[str, ...], app: str
) -> None:
    facts = ProcessFacts(pid=7, exe=f"/usr/bin/{cmdline[0]}", cmdline=cmdline)
    match = linux.matcher().match(facts)
    assert match is not None and (match.app.id, match.matched_on) == (app, "args")


def test_a_general_tool_without_capture_arguments_is_left_alone(linux: AppList) -> None:
    facts = ProcessFacts(pid=7, exe="/usr/bin/ffmpeg", cmdline=("ffmpeg", "-i", "a.mp4", "b.webm"))
    assert linux.matcher().match(facts) is None


def test_argument_patterns_go_by_the_executable_not_argv0(linux: AppList) -> None:
    facts = ProcessFacts(pid=7, exe="/tmp/ffmpeg", cmdline=("pipewire", "-f", "x11grab"))
    match = linux.matcher().match(facts)
    assert match is not None and match.matched_name == "ffmpeg x11grab"


def test_a_broken_argument_pattern_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "apps.toml"
    bad.write_text(
        '[categories]\na = "A"\n[[app]]\nid = "x"\nname = "X"\ncategory = "a"\n'
        'linux_args = [{ programs = ["ffmpeg"] }]\n'
    )
    with pytest.raises(AppListError, match=r"linux_args #1: programs and any must not be empty"):
        AppList.load(bad, "linux")


def test_an_unlisted_process_does_not_match(linux: AppList) -> None:
    facts = ProcessFacts(pid=5, name="sleep", exe="/usr/bin/sleep", cmdline=("sleep", "9"))
    assert linux.matcher().match(facts) is None


def test_windows_is_case_insensitive_and_exe_is_optional(windows: AppList) -> None:
    m = windows.matcher()
    hit = m.match(ProcessFacts(pid=5, name="OBS64.EXE", exe=r"C:\Program Files\obs\bin\OBS64.exe"))
    assert hit is not None and hit.app.id == "obs"
    assert m.match(ProcessFacts(pid=5, name="anydesk")) is not None


def test_windows_original_filename_catches_a_renamed_copy(windows: AppList) -> None:
    facts = ProcessFacts(
        pid=5, name="notes.exe", exe=r"C:\Users\a\notes.exe", original_filename="AnyDesk.exe"
    )
    match = windows.matcher().match(facts)
    assert match is not None
    assert (match.app.id, match.matched_on) == ("anydesk", "original_filename")


def test_macos_matches_bundle_ids_and_names_case_insensitively(macos: AppList) -> None:
    m = macos.matcher()
    renamed = ProcessFacts(
        pid=5,
        name="Helper",
        exe="/Applications/Helper.app/Contents/MacOS/Helper",
        bundle_id="US.ZOOM.XOS",
    )
    hit = m.match(renamed)
    assert hit is not None and (hit.app.id, hit.matched_on) == ("zoom", "bundle_id")
    assert m.match(ProcessFacts(pid=6, exe="/Applications/OBS.app/Contents/MacOS/obs")) is not None


ROOT_EXE = {"exe_owner": 0, "exe_mode": 0o100755}


def test_essential_and_kernel_processes_are_recognised(linux: AppList) -> None:
    m = linux.matcher()
    assert m.is_essential(ProcessFacts(pid=1, name="anything"))
    assert m.is_essential(ProcessFacts(pid=55, ppid=2, name="kworker/0:1"))
    assert m.is_essential(ProcessFacts(pid=300, ppid=1, exe="/usr/lib/xorg/Xorg", **ROOT_EXE))
    assert not m.is_essential(
        ProcessFacts(pid=301, ppid=1, exe="/usr/bin/obs", cmdline=("obs",), **ROOT_EXE)
    )


@pytest.mark.parametrize(
    "facts",
    [
        # exec -a pipewire /tmp/obs: argv[0] and comm claim an essential name
        ProcessFacts(pid=9, exe="/tmp/x/obs", cmdline=("pipewire",), name="pipewire", uid=1000),
        # a copy renamed like an essential program, outside the system folders
        ProcessFacts(pid=9, exe="/home/c/pipewire", cmdline=("pipewire",), exe_owner=1000),
        # in a system folder, but the candidate could write it
        ProcessFacts(pid=9, exe="/usr/bin/pipewire", exe_owner=1000, exe_mode=0o100755),
        ProcessFacts(pid=9, exe="/usr/bin/pipewire", exe_owner=0, exe_mode=0o100777),
        # a look-alike folder name
        ProcessFacts(pid=9, exe="/usr/binx/pipewire", exe_owner=0, exe_mode=0o100755),
        # the owner could not be read
        ProcessFacts(pid=9, exe="/usr/bin/pipewire"),
    ],
)
def test_essential_goes_by_the_real_executable_never_by_name_claims(
    linux: AppList, facts: ProcessFacts
) -> None:
    assert not linux.matcher().is_essential(facts)
    real = ProcessFacts(pid=9, exe="/usr/bin/pipewire", cmdline=("obs",), **ROOT_EXE)
    assert linux.matcher().is_essential(real)


def test_remote_servers_are_recognised(linux: AppList, macos: AppList) -> None:
    assert linux.matcher().remote_server(ProcessFacts(pid=8, exe="/usr/bin/x11vnc")) == "x11vnc"
    assert macos.matcher().remote_server(ProcessFacts(pid=8, name="screensharingd")) is not None
    assert linux.matcher().remote_server(ProcessFacts(pid=8, exe="/usr/bin/sleep")) is None


def _settings(**guards: object) -> Settings:
    return layer(Organisation(), flatten({"guards": guards}, origin="test"))


def test_the_exam_can_extend_the_list(linux: AppList) -> None:
    apps = linux.for_settings(_settings(prohibited_apps_extra=["calculator-pro"]))
    match = apps.matcher().match(ProcessFacts(pid=5, exe="/opt/calc/calculator-pro"))
    assert match is not None and match.app.category == "extra"


def test_the_exam_can_permit_an_app_by_id_or_by_name(linux: AppList) -> None:
    apps = linux.for_settings(_settings(permitted_apps=["firefox", "zoom.real"]))
    m = apps.matcher()
    assert m.match(ProcessFacts(pid=5, exe="/usr/bin/firefox-esr")) is None  # whole app by id
    assert m.match(ProcessFacts(pid=5, exe="/usr/bin/zoom.real")) is None  # one name
    assert m.match(ProcessFacts(pid=5, exe="/usr/bin/zoom")) is not None  # the rest stays


def test_restricting_to_unknown_ids_is_an_error(linux: AppList) -> None:
    assert [a.id for a in linux.restricted_to(["obs"]).apps] == ["obs"]
    with pytest.raises(AppListError, match="nope"):
        linux.restricted_to(["nope"])


def test_a_broken_data_file_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "apps.toml"
    bad.write_text('[categories]\na = "A"\n[[app]]\nid = "x"\nname = "X"\ncategory = "b"\n')
    with pytest.raises(AppListError, match=r"app #1 \(x\): unknown category 'b'"):
        AppList.load(bad, "linux")
    with pytest.raises(AppListError, match="not found"):
        AppList.load(tmp_path / "missing.toml", "linux")
    assert default_list_path().is_file()
