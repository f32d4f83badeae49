"""The web engine sandbox is off only for root, and only when someone switched it off."""

from __future__ import annotations

import pytest

from lockdown.ui.hardening import SandboxRefused, sandbox_state


def test_normal_user_keeps_the_sandbox() -> None:
    assert sandbox_state({}, euid=1000) == "on"


def test_root_with_the_sandbox_switched_off_knowingly() -> None:
    assert sandbox_state({"QTWEBENGINE_DISABLE_SANDBOX": "1"}, euid=0) == "off"
    assert sandbox_state({"QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox"}, euid=0) == "off"


def test_root_without_it_gets_one_clear_line_instead_of_a_silent_death() -> None:
    with pytest.raises(SandboxRefused, match="running as root") as exc:
        sandbox_state({}, euid=0)
    assert exc.value.exit_code == 2
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    "environ",
    [{"QTWEBENGINE_DISABLE_SANDBOX": "1"}, {"QTWEBENGINE_CHROMIUM_FLAGS": "--foo --no-sandbox"}],
)
def test_a_normal_user_never_runs_without_the_sandbox(environ: dict[str, str]) -> None:
    with pytest.raises(SandboxRefused, match="sandbox is switched off"):
        sandbox_state(environ, euid=1000)
