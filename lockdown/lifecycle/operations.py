"""Generic operations for the session sequence: a step from two callables, the kiosk step.

Qt-free: the kiosk step talks to anything with ``start()`` and ``close()`` (the
:class:`lockdown.ui.kiosk.Kiosk`), so the composition root decides what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lockdown import log
from lockdown.events import Event, EventSink
from lockdown.lifecycle.base import Outcome


class CallbackOperation:
    """An operation made of two callables; an exception becomes FAILED with a log line."""

    def __init__(
        self,
        name: str,
        perform: Callable[[], object],
        revert: Callable[[], object] | None = None,
    ) -> None:
        self._name = name
        self._perform = perform
        self._revert = revert

    @property
    def name(self) -> str:
        return self._name

    def perform(self) -> Outcome:
        try:
            result = self._perform()
        except Exception:
            log.init.exception("%s failed", self._name)
            return Outcome.FAILED
        return result if isinstance(result, Outcome) else Outcome.SUCCESS

    def revert(self) -> Outcome:
        if self._revert is None:
            return Outcome.SUCCESS
        try:
            result = self._revert()
        except Exception:
            log.init.exception("Reverting %s failed", self._name)
            return Outcome.FAILED
        return result if isinstance(result, Outcome) else Outcome.SUCCESS


class KioskLike(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...


class KioskOperation:
    """Shows the kiosk with the exam (perform) and closes it (revert); journals both."""

    name = "kiosk"

    def __init__(self, kiosk: KioskLike, journal: EventSink) -> None:
        self._kiosk = kiosk
        self._journal = journal

    def perform(self) -> Outcome:
        try:
            self._kiosk.start()
        except Exception as exc:
            log.init.exception("The kiosk could not start")
            self._journal(Event("kiosk.failed", {"error": str(exc)[:500]}))
            return Outcome.FAILED
        return Outcome.SUCCESS

    def revert(self) -> Outcome:
        try:
            self._kiosk.close()
        except Exception:
            log.init.exception("The kiosk could not close cleanly")
            return Outcome.FAILED
        self._journal(Event("kiosk.closed", {}))
        return Outcome.SUCCESS
