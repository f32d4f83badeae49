"""The test overrides a development build honours and an installed build refuses.

``lockdown open`` in an installed build reads settings only from the signed exam
configuration and the system organisation file. Each override below would let the
candidate change what the exam enforces (their own organisation file trusting the exam's
key with every guard off, their own injected JavaScript, a data folder of their own, a
second session beside the first), so an installed build refuses to start with any of
them, in one line with exit code 2. A development build honours them and journals them.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from lockdown import build
from lockdown.errors import UserError

#: Environment variables that change where settings, code or data come from.
VARIABLES: Final = (
    "LOCKDOWN_ORGANISATION_FILE",
    "LOCKDOWN_RESOURCES",
    "LOCKDOWN_INSTANCE_NAME",
)
#: Command-line options of the same kind (attribute name, as typed).
OPTIONS: Final = (("organisation", "--organisation"), ("temp_basedir", "--temp-basedir"))
DEV_PREFIX: Final = "LOCKDOWN_DEV_"


class OverrideRefused(UserError):
    """An installed build was asked to take settings from somewhere IT did not put them."""


@dataclass(frozen=True)
class Override:
    """One override found on the command line or in the environment."""

    name: str
    value: str

    def describe(self) -> str:
        return f"{self.name}={self.value}" if self.value else self.name


def present(
    args: argparse.Namespace | None, environ: Mapping[str, str], *, allow_temp_basedir: bool
) -> list[Override]:
    """Every override in ``args`` and ``environ``."""
    found: list[Override] = []
    if args is not None:
        for attribute, flag in OPTIONS:
            if attribute == "temp_basedir" and allow_temp_basedir:
                continue
            value = getattr(args, attribute, None)
            if value:
                found.append(Override(flag, value if isinstance(value, str) else ""))
    for name in VARIABLES:
        if environ.get(name):
            found.append(Override(name, environ[name]))
    found.extend(
        Override(name, value)
        for name, value in sorted(environ.items())
        if name.startswith(DEV_PREFIX) and value
    )
    return found


def check(
    args: argparse.Namespace | None,
    environ: Mapping[str, str],
    *,
    allow_temp_basedir: bool = False,
) -> list[Override]:
    """Refuse any override in an installed build; in a development build, list them.

    Raises:
        OverrideRefused: this is an installed build and an override is present.
    """
    found = present(args, environ, allow_temp_basedir=allow_temp_basedir)
    if found and build.current().installed:
        names = ", ".join(o.name for o in found)
        raise OverrideRefused(
            f"refused {names}: an installed Lockdown takes its settings only from the exam "
            "configuration and the organisation file IT installed; remove it and start again"
        )
    return found
