"""The injected-input judge through a fake XI2 raw-event source (the real-device branch:
Xvfb has only XTEST input, so real devices are unverified on hardware)."""

from __future__ import annotations

import time

from lockdown.guards.injected_input import FLOOD_WAIT_S, InputJudge
from lockdown.platform.x11_input import InputDevice, RawInput

KEYBOARD = InputDevice(8, "AT Translated Set 2 keyboard", injecting=False)
XTEST = InputDevice(5, "Virtual core XTEST keyboard", injecting=True)


class FakeSource:
    """Raw events handed out as they are queued; ``later`` ones only after a wait."""

    def __init__(self) -> None:
        self.queued: list[RawInput] = []
        self.later: list[RawInput] = []
        self.waits = 0

    def fileno(self) -> int:
        return -1

    def read(self) -> list[RawInput]:
        out, self.queued = self.queued, []
        return out

    def wait(self, timeout: float) -> bool:
        self.waits += 1
        self.queued, self.later = self.queued + self.later, []
        return bool(self.queued)

    def device(self, device_id: int) -> InputDevice | None:
        return {d.id: d for d in (KEYBOARD, XTEST)}.get(device_id)

    def close(self) -> None:
        pass


def _key(code: int, at: int, device: InputDevice, pressed: bool = True) -> RawInput:
    return RawInput("key", code, at, pressed, device.id)


def test_a_key_from_a_real_keyboard_passes() -> None:
    source = FakeSource()
    judge = InputJudge(source)
    source.queued = [_key(38, 1000, KEYBOARD), _key(38, 1040, KEYBOARD, pressed=False)]
    press = judge.judge("key", 38, 1000, True)
    assert not press.refused and press.device == KEYBOARD.name
    assert not judge.judge("key", 38, 1040, False).refused


def test_a_key_from_the_xtest_device_is_refused() -> None:
    source = FakeSource()
    judge = InputJudge(source)
    source.queued = [_key(38, 1000, KEYBOARD), _key(38, 1001, XTEST)]
    verdict = judge.judge("key", 38, 1001, True)
    assert verdict.refused and verdict.how == "xtest" and verdict.device == XTEST.name


def test_the_same_millisecond_with_another_keycode_is_not_confused() -> None:
    source = FakeSource()
    judge = InputJudge(source)
    source.queued = [_key(38, 1000, XTEST), _key(39, 1000, KEYBOARD)]
    assert judge.judge("key", 39, 1000, True).how == "device"
    assert judge.judge("key", 38, 1000, True).how == "xtest"


def test_a_raw_event_arriving_a_moment_later_is_waited_for() -> None:
    source = FakeSource()
    judge = InputJudge(source)
    source.later = [_key(38, 2000, KEYBOARD)]
    assert judge.judge("key", 38, 2000, True).how == "device"
    assert source.waits == 1


def test_an_event_no_device_made_is_refused_and_a_flood_is_not_waited_for() -> None:
    source = FakeSource()
    judge = InputJudge(source, wait_s=0.5)
    assert judge.judge("key", 38, 3000, True).how == "no_device_event"
    started = time.monotonic()
    for at in range(3001, 3100):
        assert judge.judge("key", 38, at, True).refused
    # within a second of a refusal each wait is FLOOD_WAIT_S, not the full wait
    assert time.monotonic() - started < 99 * (FLOOD_WAIT_S + 0.01)


def test_the_servers_repeat_of_a_real_key_passes_an_injected_ones_does_not() -> None:
    source = FakeSource()
    judge = InputJudge(source, wait_s=0.01)
    source.queued = [_key(38, 1000, KEYBOARD), _key(40, 1000, XTEST)]
    assert judge.judge("key", 38, 1000, True).how == "device"
    assert judge.judge("key", 38, 1500, True).how == "device"  # repeat: no raw event
    assert judge.judge("key", 40, 1000, True).how == "xtest"
    assert judge.judge("key", 40, 1500, True).refused


def test_events_made_inside_this_process_pass() -> None:
    judge = InputJudge(FakeSource(), wait_s=0.01)
    assert judge.judge("key", 0, 0, True).how == "own"


def test_buttons_match_by_time_whatever_the_button_mapping() -> None:
    source = FakeSource()
    judge = InputJudge(source)
    pointer = InputDevice(4, "Virtual core XTEST pointer", injecting=True)
    source.device = lambda device_id: pointer if device_id == 4 else None  # type: ignore[method-assign]
    source.queued = [RawInput("button", 3, 5000, True, 4)]
    assert judge.judge("button", 1, 5000, True).how == "xtest"
