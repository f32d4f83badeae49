"""The web engine's environment and flags come from an allow-list; loader variables refuse an
installed build."""

from __future__ import annotations

import pytest

from lockdown.ui.hardening import (
    EnginePlan,
    EnvironmentRefused,
    SandboxRefused,
    apply_plan,
    plan_engine,
)

ATTACKS = {
    "QTWEBENGINE_CHROMIUM_FLAGS": "'-remote-debugging-port=9222' --proxy-server=127.0.0.1:8"
    " --renderer-cmd-prefix=/tmp/wrap.sh",
    "QTWEBENGINE_REMOTE_DEBUGGING": "9223",
    "QT_PLUGIN_PATH": "/tmp/plugins",
    "QT_QPA_PLATFORM_PLUGIN_PATH": "/tmp/platforms",
    "QTWEBENGINEPROCESS_PATH": "/tmp/fake-renderer",
    "QTWEBENGINE_RESOURCES_PATH": "/tmp/res",
    "http_proxy": "http://127.0.0.1:8",
    "CHROME_DEVEL_SANDBOX": "/tmp/sandbox",
    "SOME_UNKNOWN_VARIABLE": "x",
}
SESSION = {"DISPLAY": ":5", "HOME": "/home/c", "LANG": "de_DE.UTF-8", "LC_TIME": "C"}


def plan(
    env: dict[str, str], *, installed: bool = False, switches: dict[str, str] | None = None
) -> EnginePlan:
    return plan_engine(
        env, euid=1000, installed=installed, proxy="socks5://127.0.0.1:9", switches=switches
    )


def test_only_allowed_variables_reach_the_engine_and_the_flags_are_ours() -> None:
    result = plan({**SESSION, **ATTACKS, "QT_QPA_PLATFORM": "vnc"})
    flags = result.environ["QTWEBENGINE_CHROMIUM_FLAGS"].split(" ")
    assert flags == result.flags
    assert not any("remote-debugging" in f or "renderer-cmd-prefix" in f for f in flags)
    assert "--proxy-server=socks5://127.0.0.1:9" in flags
    assert "--force-webrtc-ip-handling-policy=disable_non_proxied_udp" in flags
    assert "--no-sandbox" not in flags
    assert result.environ == {**SESSION, "QTWEBENGINE_CHROMIUM_FLAGS": " ".join(flags)}
    assert set(result.removed) == {*ATTACKS, "QT_QPA_PLATFORM"}
    assert result.refused["QTWEBENGINE_REMOTE_DEBUGGING"] == "9223"
    assert result.refused["http_proxy"] == "http://127.0.0.1:8"
    assert "SOME_UNKNOWN_VARIABLE" not in result.refused  # removed, journalled by name
    assert plan({"QT_QPA_PLATFORM": "xcb"}).environ["QT_QPA_PLATFORM"] == "xcb"


def test_apply_makes_the_environment_exactly_the_plan() -> None:
    env = {**SESSION, **ATTACKS}
    apply_plan(plan(env), env)
    assert set(env) == {*SESSION, "QTWEBENGINE_CHROMIUM_FLAGS"}


@pytest.mark.parametrize("name", ["LD_PRELOAD", "LD_LIBRARY_PATH", "PYTHONPATH", "PYTHONHOME"])
def test_loader_variables_refuse_an_installed_build_and_are_journalled_in_development(
    name: str,
) -> None:
    env = {**SESSION, name: "/tmp/evil"}
    with pytest.raises(EnvironmentRefused, match=name):
        plan(env, installed=True)
    result = plan(env)
    assert result.loader == {name: "/tmp/evil"}
    assert name not in result.environ
    kinds = [kind for kind, _ in result.journal_payloads()]
    assert "kiosk.loader_variables" in kinds


def test_sandbox_off_only_for_root_and_then_our_flag_says_so() -> None:
    env = {**SESSION, "QTWEBENGINE_DISABLE_SANDBOX": "1"}
    result = plan_engine(env, euid=0, installed=False, proxy=None)
    assert "--no-sandbox" in result.flags
    assert result.environ["QTWEBENGINE_DISABLE_SANDBOX"] == "1"
    with pytest.raises(SandboxRefused):
        plan_engine(env, euid=1000, installed=False, proxy=None)
    with pytest.raises(SandboxRefused):
        plan_engine(SESSION, euid=0, installed=False, proxy=None)


def test_development_switches_are_ignored_by_an_installed_build() -> None:
    switches = {"engine_environment": "inherit", "chromium_flags": "--use-fake-ui"}
    installed = plan({**SESSION, **ATTACKS}, installed=True, switches=switches)
    assert "QT_PLUGIN_PATH" not in installed.environ
    assert installed.switches == {}
    development = plan({**SESSION, **ATTACKS}, switches=switches)
    assert development.environ["QT_PLUGIN_PATH"] == "/tmp/plugins"
    assert development.switches["LOCKDOWN_DEV_ENGINE_ENVIRONMENT"] == "inherit"
    extra = plan(SESSION, switches={"chromium_flags": "--use-fake-ui"})
    assert extra.flags[-1] == "--use-fake-ui"


def test_a_frozen_bundles_own_library_path_is_not_the_candidates() -> None:
    # PyInstaller's bootloader prepends the bundle to LD_LIBRARY_PATH and keeps what the
    # process was started with in LD_LIBRARY_PATH_ORIG
    clean = {**SESSION, "LD_LIBRARY_PATH": "/opt/lockdown/_internal"}
    result = plan_engine(
        clean, euid=1000, installed=True, proxy=None, bundle="/opt/lockdown/_internal"
    )
    assert result.loader == {}
    assert result.environ["LD_LIBRARY_PATH"] == "/opt/lockdown/_internal"
    candidates = {
        **SESSION,
        "LD_LIBRARY_PATH": "/opt/lockdown/_internal:/home/c/evil",
        "LD_LIBRARY_PATH_ORIG": "/home/c/evil",
    }
    with pytest.raises(EnvironmentRefused, match="LD_LIBRARY_PATH"):
        plan_engine(
            candidates, euid=1000, installed=True, proxy=None, bundle="/opt/lockdown/_internal"
        )
    # positive control: without the bundle the same variable is the candidate's
    with pytest.raises(EnvironmentRefused, match="LD_LIBRARY_PATH"):
        plan_engine(clean, euid=1000, installed=True, proxy=None)
