"""The overrides a development build honours and an installed build refuses."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from lockdown import build, overrides


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    build.current.cache_clear()
    monkeypatch.setenv(build.AS_INSTALLED_VARIABLE, "1")
    yield
    build.current.cache_clear()


def _args(**values: object) -> argparse.Namespace:
    return argparse.Namespace(**{"organisation": None, "temp_basedir": False, **values})


@pytest.mark.parametrize(
    ("args", "env", "name"),
    [
        (_args(organisation="mine.toml"), {}, "--organisation"),
        (_args(temp_basedir=True), {}, "--temp-basedir"),
        (_args(), {"LOCKDOWN_ORGANISATION_FILE": "mine.toml"}, "LOCKDOWN_ORGANISATION_FILE"),
        (_args(), {"LOCKDOWN_RESOURCES": "/tmp/js"}, "LOCKDOWN_RESOURCES"),
        (_args(), {"LOCKDOWN_INSTANCE_NAME": "two"}, "LOCKDOWN_INSTANCE_NAME"),
        (_args(), {"LOCKDOWN_DEV_ACCEPT_XTEST": "1"}, "LOCKDOWN_DEV_ACCEPT_XTEST"),
    ],
)
def test_each_override_is_refused_when_installed_and_listed_in_development(
    args: argparse.Namespace, env: dict[str, str], name: str, installed: None
) -> None:
    with pytest.raises(overrides.OverrideRefused, match=f"refused {name}"):
        overrides.check(args, env)
    build.current.cache_clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(build.AS_INSTALLED_VARIABLE)
        found = overrides.check(args, env)
    assert [o.name for o in found] == [name]


def test_demo_may_keep_temp_basedir_and_nothing_else(installed: None) -> None:
    assert overrides.check(_args(temp_basedir=True), {}, allow_temp_basedir=True) == []
    with pytest.raises(overrides.OverrideRefused):
        overrides.check(
            _args(temp_basedir=True), {"LOCKDOWN_RESOURCES": "x"}, allow_temp_basedir=True
        )
    assert overrides.check(_args(), {"LOCKDOWN_RESOURCES": ""}) == []  # empty is unset
