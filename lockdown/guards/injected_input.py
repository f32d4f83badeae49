"""Injected-input guard: keys and clicks another program injects never reach the exam.

On a shared X display any client can type into the focused window through XTEST (a
renamed ``xdotool type`` enters prepared text into an answer) or send it synthetic key
events (``XSendEvent``). The X server knows the difference: every event of an input
device produces an XInput2 raw event naming its *source device*, and XTEST events come
from the XTEST devices (:mod:`lockdown.platform.x11_input`).

How it decides, for each key press or release and each mouse button press, release or
double click that reaches one of our windows (an event filter on the window's
``QWindow``, which sees them before any widget or the web engine):

1. The raw events received so far are read (never blocking: the X server writes the raw
   event in the same flush as the event Qt delivers). The Qt event's X server time and
   keycode (button) name its raw event, whose source device decides: a real device
   passes; an XTEST device is **refused** (``how: xtest``).
2. No raw event at all within :data:`MATCH_WAIT_S`: the event was not made by any input
   device, it was sent by a client (``XSendEvent``), and is refused
   (``how: no_device_event``). Within a second of such a refusal the wait is
   :data:`FLOOD_WAIT_S` (a flood cannot freeze the exam). The server's own key repeat (a real key held down)
   makes no raw event: a repeat of a key whose press passed, passes.
3. Events made inside this process (no native keycode) pass.

Each refusal is journalled as ``guards.injected_input`` (rate-limited per device).

Exceptions, each journalled when the guard starts: the organisation's assistive-technology
option (``accessibility.assistive_technology``: on-screen keyboards and screen readers
inject through XTEST) and, in a development build only, the switch
``LOCKDOWN_DEV_ACCEPT_XTEST=1`` (``session.dev_switch``; the test suite drives the kiosk
with xdotool). Elsewhere than X11: the Windows keyboard hook rejects injected keys itself
(``LLKHF_INJECTED``); macOS has no equivalent here (journalled as unavailable).

Unverified on hardware: the test machine's Xvfb has only XTEST input; the real-device
branch is tested through a fake raw-event source. Not told apart: a virtual input device
made through the kernel (``uinput``: ``ydotool``, needs write access to ``/dev/uinput``)
is a real device to the X server.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QWidget

from lockdown import build, log
from lockdown.config.settings import Settings
from lockdown.events import Event, EventSink
from lockdown.guards.base import Availability, GuardInfo, GuardUnavailable
from lockdown.guards.ratelimit import RateLimitedSink
from lockdown.guards.windows import FilteredWindows
from lockdown.platform.base import DesktopPlatform

if TYPE_CHECKING:
    from lockdown.platform.x11_input import InputSource, RawInput

#: The development switch that accepts XTEST input (``LOCKDOWN_DEV_ACCEPT_XTEST=1``).
DEV_SWITCH: Final = "ACCEPT_XTEST"
#: How long to wait for the raw event of a Qt event before calling it synthetic.
MATCH_WAIT_S: Final = 0.1
#: Within a second of a refused device-less event, wait only this long (a flood of them
#: cannot freeze the exam; a real key's raw event is written in the same flush anyway).
FLOOD_WAIT_S: Final = 0.005
#: Raw events remembered for matching (a burst of typing is far fewer).
REMEMBERED: Final = 512
_KEY_EVENTS: Final = (QEvent.Type.KeyPress, QEvent.Type.KeyRelease)
_BUTTON_EVENTS: Final = (
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease,
    QEvent.Type.MouseButtonDblClick,
)
_PRESSES: Final = (
    QEvent.Type.KeyPress,
    QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonDblClick,
)

Kind = Literal["key", "button"]


@dataclass(frozen=True)
class Verdict:
    """What the judge made of one event: ``device`` (passes), ``xtest`` or
    ``no_device_event`` (refused), ``own`` (made in this process, passes)."""

    how: str
    device: str = ""

    @property
    def refused(self) -> bool:
        return self.how in ("xtest", "no_device_event")


class InputJudge:
    """Matches events Qt delivers with the raw events of their source devices."""

    def __init__(self, source: InputSource, wait_s: float = MATCH_WAIT_S) -> None:
        self._source = source
        self._wait_s = wait_s
        self._seen: deque[RawInput] = deque(maxlen=REMEMBERED)
        self._real_keys: set[int] = set()
        self._last_unmatched = 0.0

    def _take(self) -> bool:
        found = self._source.read()
        self._seen.extend(found)
        return bool(found)

    def _find(self, kind: Kind, detail: int, stamp: int, pressed: bool) -> RawInput | None:
        for raw in reversed(self._seen):
            if raw.kind != kind or raw.time != stamp or raw.pressed != pressed:
                continue
            if kind == "key" and raw.detail != detail:
                continue
            return raw
        return None

    def judge(self, kind: Kind, detail: int, stamp: int, pressed: bool) -> Verdict:
        """The verdict on one event (``detail``: keycode or button; ``stamp``: X time)."""
        if kind == "key" and detail == 0:
            return Verdict("own")
        self._take()
        raw = self._find(kind, detail, stamp, pressed)
        if raw is None:
            flooding = time.monotonic() - self._last_unmatched < 1.0
            deadline = time.monotonic() + (FLOOD_WAIT_S if flooding else self._wait_s)
            while raw is None and (left := deadline - time.monotonic()) > 0:
                if self._source.wait(left) and self._take():
                    raw = self._find(kind, detail, stamp, pressed)
        if raw is None:
            if kind == "key" and detail in self._real_keys:
                if not pressed:
                    self._real_keys.discard(detail)
                return Verdict("device", "key repeat")
            self._last_unmatched = time.monotonic()
            return Verdict("no_device_event")
        device = self._source.device(raw.source)
        name = device.name if device is not None else f"device {raw.source}"
        if device is not None and device.injecting:
            return Verdict("xtest", name)
        if kind == "key":
            if pressed:
                self._real_keys.add(detail)
            else:
                self._real_keys.discard(detail)
        return Verdict("device", name)


_X_BUTTONS: Final = {
    Qt.MouseButton.LeftButton: 1,
    Qt.MouseButton.MiddleButton: 2,
    Qt.MouseButton.RightButton: 3,
    Qt.MouseButton.BackButton: 8,
    Qt.MouseButton.ForwardButton: 9,
}


class _InputFilter(QObject):
    """On our windows: swallows key and button events the judge refuses."""

    def __init__(self, decide: Callable[[QEvent], bool]) -> None:
        super().__init__()
        self._decide = decide

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind not in _KEY_EVENTS and kind not in _BUTTON_EVENTS:
            return False
        return self._decide(event)


class InjectedInputGuard:
    """Refuses (and journals) key and button events injected by other X clients."""

    def __init__(
        self,
        settings: Settings,
        window: QWidget,
        platform: DesktopPlatform,
        source_factory: Callable[[str | None], InputSource] | None = None,
    ) -> None:
        self._assistive = bool(settings["accessibility.assistive_technology"])
        self._window = window
        self._platform = platform
        self._source_factory = source_factory
        self._source: InputSource | None = None
        self._judge: InputJudge | None = None
        self._windows: FilteredWindows | None = None
        self._report: RateLimitedSink | None = None
        self._running = False
        #: refusals so far (tests and the bench read it)
        self.refused = 0

    @property
    def name(self) -> str:
        return "injected_input"

    def _applies(self) -> bool:
        return self._platform.name == "x11" or self._source_factory is not None

    def info(self) -> GuardInfo:
        if not self._applies():
            if self._platform.name == "windows":
                return GuardInfo(self.name, "keyboard hook (LLKHF_INJECTED)", Availability.FULL)
            return GuardInfo(
                self.name, "none", Availability.PARTIAL, "injected input is not told apart here"
            )
        if self._assistive:
            return GuardInfo(
                self.name,
                "xinput2 raw events",
                Availability.PARTIAL,
                "assistive technology may inject input (organisation setting)",
            )
        return GuardInfo(self.name, "xinput2 raw events", Availability.FULL)

    # -- start / stop -----------------------------------------------------------------

    def start(self, report: EventSink) -> None:
        if self._running or not self._applies():
            return
        if self._assistive:
            log.guards.info("Injected input accepted: assistive technology is enabled")
            report(Event("guards.injected_input_accepted", {"reason": "assistive_technology"}))
            return
        if build.dev_switch(DEV_SWITCH) == "1":
            log.guards.warning("Injected input accepted (development switch %s)", DEV_SWITCH)
            report(Event("session.dev_switch", {"name": DEV_SWITCH}))
            return
        factory = self._source_factory or _x11_source
        try:
            source = factory(getattr(self._platform, "display_name", None))
        except Exception as exc:
            raise GuardUnavailable(f"cannot tell injected input apart: {exc}") from exc
        self._source = source
        self._judge = InputJudge(source)
        self._report = RateLimitedSink(report, 5.0, key_field="device")
        self._window.winId()
        # our dialogs get the filter as they take the focus
        self._windows = FilteredWindows(_InputFilter(self._decide))
        self._windows.start(self._window.windowHandle())
        self._running = True
        log.guards.info("Injected-input guard started")

    def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        if self._windows is not None:
            self._windows.stop()
            self._windows = None
        if self._source is not None:
            self._source.close()
            self._source = None
        self._judge = None
        if self._report is not None:
            self._report.flush()
        log.guards.info("Injected-input guard stopped (%d refused)", self.refused)

    # -- the decision -----------------------------------------------------------------

    def _decide(self, event: QEvent) -> bool:
        """True swallows ``event`` (refused); never raises into Qt."""
        try:
            return self._verdict(event)
        except Exception:
            log.guards.exception("Judging an input event failed; letting it pass")
            return False

    def _verdict(self, event: QEvent) -> bool:
        judge = self._judge
        if judge is None:
            return False
        kind = event.type()
        if isinstance(event, QKeyEvent) and kind in _KEY_EVENTS:
            verdict = judge.judge(
                "key",
                int(event.nativeScanCode()),
                int(event.timestamp()),
                kind == QEvent.Type.KeyPress,
            )
            what = "key"
        elif isinstance(event, QMouseEvent) and kind in _BUTTON_EVENTS:
            verdict = judge.judge(
                "button",
                _X_BUTTONS.get(event.button(), 0),
                int(event.timestamp()),
                kind != QEvent.Type.MouseButtonRelease,
            )
            what = "button"
        else:
            return False
        if not verdict.refused:
            return False
        self.refused += 1
        if kind in _PRESSES and self._report is not None:
            log.guards.warning(
                "Refused injected %s input (%s %s)", what, verdict.how, verdict.device
            )
            self._report(
                Event(
                    "guards.injected_input",
                    {
                        "device": verdict.device or verdict.how,
                        "kind": what,
                        "how": verdict.how,
                        "action": "refused",
                    },
                )
            )
        return True


def _x11_source(display_name: str | None) -> InputSource:
    from lockdown.platform.x11_input import X11InputSource

    return X11InputSource(display_name)
