"""The one bridge from worker threads to the GUI thread: callbacks in, Qt signals out.

Guards, recorders and the session client call plain callbacks from their own threads;
:meth:`Bridge.sink` gives them an :data:`~lockdown.events.EventSink` whose events are
re-emitted as :attr:`Bridge.reported` on the GUI thread, and :meth:`Bridge.call` runs a
function there.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot

from lockdown.events import Event, EventSink


class Bridge(QObject):
    """Lives on the GUI thread; safe to call from any thread."""

    #: an Event reported from any thread, delivered on the GUI thread
    reported = Signal(object)
    #: internal: a callable to run on the GUI thread
    _call = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._call.connect(self._run, Qt.ConnectionType.QueuedConnection)

    def sink(self) -> EventSink:
        def report(event: Event) -> None:
            self.reported.emit(event)

        return report

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` on the GUI thread (soon, never inline)."""
        self._call.emit(function)

    @Slot(object)
    def _run(self, function: Callable[[], None]) -> None:
        function()
