"""Where Lockdown keeps its files: per-user data dirs, or one temporary base dir for tests."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "Lockdown"


@dataclass(frozen=True)
class Paths:
    """The directories of one run. ``--temp-basedir`` roots all of them in one folder."""

    data: Path
    state: Path
    runtime: Path

    @property
    def journals(self) -> Path:
        return self.data / "journals"

    @property
    def spool(self) -> Path:
        return self.data / "spool"

    @property
    def restore(self) -> Path:
        """Restore records of system changes, undone at the next start after a crash."""
        return self.state / "restore"

    def new_journal(self) -> Path:
        """The path of a new session journal (UTC time and process id in its name)."""
        from datetime import UTC, datetime

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return self.journals / f"session-{stamp}-{os.getpid()}.jsonl"

    def ensure(self) -> None:
        """Create the folders (mode 0700), each new one durable in its parent."""
        from lockdown import durable

        for folder in (self.data, self.state, self.runtime, self.journals, self.spool):
            durable.make_folder(folder)


def default_paths() -> Paths:
    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    xdg_runtime = os.environ.get("XDG_RUNTIME_DIR")
    if sys.platform.startswith("linux") and xdg_runtime and os.access(xdg_runtime, os.W_OK):
        runtime = Path(xdg_runtime) / "lockdown"
    else:
        runtime = Path(dirs.user_state_dir) / "run"
    return Paths(data=Path(dirs.user_data_dir), state=Path(dirs.user_state_dir), runtime=runtime)


def temp_paths(base: Path) -> Paths:
    return Paths(data=base / "data", state=base / "state", runtime=base / "run")


def organisation_override() -> Path | None:
    """``$LOCKDOWN_ORGANISATION_FILE``, honoured in a development build only."""
    from lockdown import build

    override = os.environ.get("LOCKDOWN_ORGANISATION_FILE")
    if override and not build.current().installed:
        return Path(override)
    return None


def organisation_file() -> Path:
    """The system-wide organisation settings file of this OS (set by IT staff).

    Fixed per OS (on Windows the ProgramData folder is asked of the shell, never taken
    from ``%PROGRAMDATA%``); only a development build honours the override variable.
    """
    from lockdown.platform.trust import system_trust

    return organisation_override() or Path(system_trust().organisation_file())
