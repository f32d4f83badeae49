"""A loaded, verified exam: what the session runs (below the launch and the UI)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lockdown.config.settings import Organisation, Settings


@dataclass(frozen=True)
class LoadedExam:
    """A verified exam: frozen settings, exam keys, where it came from, its title."""

    settings: Settings
    keys: Any
    origin: str
    title: str
    kind: str  # "lockdown" or "seb"
    organisation: Organisation = field(default_factory=Organisation)
    #: facts about how the configuration was fetched, for the journal
    notes: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: the bundled demo exam (its camera is a test pattern, allowed even when installed)
    demo: bool = False
