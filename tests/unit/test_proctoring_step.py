"""The session's proctoring step: a recording that cannot stop cleanly never keeps the
candidate locked in."""

from __future__ import annotations

from pathlib import Path

from lockdown.app import ProctoringStep
from lockdown.config.settings import Settings
from lockdown.lifecycle.base import Outcome
from lockdown.paths import temp_paths


class JournalFull:
    """A recording whose stop fails the way a full disk makes it fail."""

    def revert(self) -> Outcome:
        raise OSError(28, "No space left on device")


def test_a_failing_stop_is_reported_not_raised_and_is_not_tried_twice(tmp_path: Path) -> None:
    step = ProctoringStep(Settings.defaults(), lambda _e: None, temp_paths(tmp_path), "s1")
    step._operation = JournalFull()
    assert step.wind_down() is Outcome.FAILED
    assert step.wind_down() is Outcome.SUCCESS  # nothing left to stop
    assert step.revert() is Outcome.SUCCESS
