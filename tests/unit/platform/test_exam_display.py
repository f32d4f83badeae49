"""The exam display's fixed plan: the Xorg command and config, the cookie's authority
entries, which helper runs where (polkit and pkexec are files and fakes here: unverified
against a real polkit daemon), and the packaged polkit action."""

from __future__ import annotations

import io
import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from Xlib import xauth

from lockdown.platform import exam_display, exam_server
from lockdown.platform.exam_server import ServerPlan
from lockdown.platform.vt_linux import FakeVt

ROOT = Path(__file__).resolve().parents[3]


def _plan(share: bool = False) -> ServerPlan:
    return ServerPlan("/usr/lib/xorg/Xorg", Path("/run/lockdown/exam-display-x"), 3, 5, 7, share)


def test_the_server_command_is_fixed_and_closed_to_the_network() -> None:
    argv = exam_server.server_argv(_plan())
    assert argv[0] == "/usr/lib/xorg/Xorg"
    assert argv[argv.index("-auth") + 1] == "/proc/self/fd/3"
    assert argv[argv.index("-displayfd") + 1] == "5"
    assert argv[argv.index("-config") + 1] == "/run/lockdown/exam-display-x/xorg.conf"
    assert argv[argv.index("-logfile") + 1] == "/run/lockdown/exam-display-x/Xorg.log"
    pairs = list(itertools.pairwise(argv))
    assert ("-nolisten", "tcp") in pairs and ("-nolisten", "local") in pairs
    assert {"-noreset", "-novtswitch"} <= set(argv)
    assert "-modulepath" not in argv and "-sharevts" not in argv
    assert argv[-1] == "vt7"


def test_fake_terminals_share_the_active_one() -> None:
    argv = exam_server.server_argv(_plan(share=True))
    assert argv[-2:] == ["-sharevts", "vt7"]


@pytest.mark.parametrize("fake", [True, False])
def test_the_server_config_forbids_switching_and_zapping(fake: bool) -> None:
    config = exam_server.xorg_config(fake_vt=fake)
    for option in ("DontVTSwitch", "DontZap", "DontZoom"):
        assert f'Option "{option}" "true"' in config
    assert ('"AutoAddDevices" "false"' in config) is fake  # the test machine's devices
    assert 'Driver "dummy"' in config
    assert 'Driver "modesetting"' in exam_server.xorg_config(fake_vt=False, driver="modesetting")


def test_the_authority_entries_are_what_xlib_reads(tmp_path: Path) -> None:
    cookie = bytes(range(16))
    path = tmp_path / "auth"
    path.write_bytes(exam_server.authority(cookie, 12))
    entries = xauth.Xauthority(str(path)).entries
    assert [(e[0], e[2], e[3], e[4]) for e in entries] == [
        (256, b"12", b"MIT-MAGIC-COOKIE-1", cookie),
        (65535, b"12", b"MIT-MAGIC-COOKIE-1", cookie),
    ]
    any_display = exam_server.authority(cookie)
    assert any_display.count(b"MIT-MAGIC-COOKIE-1") == 2


def test_the_memory_file_holds_the_data_from_its_start() -> None:
    import os

    fd = exam_server.memory_file("t", b"secret", inheritable=False)
    try:
        assert not os.get_inheritable(fd)
        assert os.read(fd, 16) == b"secret"
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:t")
    finally:
        os.close(fd)


def test_fake_terminals_hand_out_a_free_one_and_log_switches() -> None:
    vt = FakeVt()
    assert vt.active() == 1 and vt.free() == 2
    vt.activate(2)
    vt.activate(1)
    assert vt.switches == [2, 1] and vt.free() == 3


def _plan_for(**kw: object) -> tuple[exam_display.HelperCommand | None, str]:
    args: dict[str, object] = {
        "installed": True,
        "euid": 1000,
        "exists": lambda p: True,
        "which": lambda name: f"/usr/bin/{name}",
        "environ": {},
    }
    args.update(kw)
    return exam_display.helper_command(**args)  # type: ignore[arg-type]


def test_an_installed_build_runs_the_helper_through_pkexec() -> None:
    command, why = _plan_for()
    assert command is not None and why == ""
    assert command.argv == ("/usr/bin/pkexec", str(exam_display.HELPER_PATH))
    assert command.how == "pkexec"
    root, _ = _plan_for(euid=0)
    assert root is not None and root.argv == (str(exam_display.HELPER_PATH),)


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"exists": lambda p: p != exam_display.HELPER_PATH}, "display helper is not installed"),
        ({"which": lambda name: None}, "pkexec is not installed"),
        ({"exists": lambda p: p != exam_display.POLKIT_ACTION}, "polkit rule"),
    ],
)
def test_without_the_helper_or_polkit_the_reason_is_said(
    kw: dict[str, object], reason: str
) -> None:
    command, why = _plan_for(**kw)
    assert command is None and reason in why


def test_a_development_build_runs_the_helper_only_when_tests_ask() -> None:
    command, why = _plan_for(installed=False, euid=0)
    assert command is None and "only in tests" in why
    env = {"LOCKDOWN_DEV_DISPLAY_HELPER": "1"}
    command, _ = _plan_for(installed=False, euid=0, environ=env)
    assert command is not None and command.how == "development"
    assert command.argv[1:] == ("-m", "lockdown.platform.display_helper")
    command, why = _plan_for(installed=False, euid=1000, environ=env)
    assert command is None and "as root" in why


def test_an_installed_build_ignores_the_development_switch() -> None:
    command, _ = _plan_for(exists=lambda p: False, environ={"LOCKDOWN_DEV_DISPLAY_HELPER": "1"})
    assert command is None


def test_the_polkit_action_allows_the_active_local_user_only() -> None:
    """The file the package installs (unverified against a running polkit daemon)."""
    path = ROOT / "packaging" / "linux" / "org.lockdown.display-helper.policy"
    tree = ET.parse(io.StringIO(path.read_text(encoding="utf-8")))
    action = tree.getroot().find("action")
    assert action is not None
    assert action.get("id") == exam_display.POLKIT_ACTION.stem
    defaults = {child.tag: child.text for child in action.find("defaults") or []}
    assert defaults == {"allow_any": "no", "allow_inactive": "no", "allow_active": "yes"}
    annotations = {a.get("key"): a.text for a in action.findall("annotate")}
    assert annotations["org.freedesktop.policykit.exec.path"] == str(exam_display.HELPER_PATH)
