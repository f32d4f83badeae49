"""One way to open a python-xlib connection: :func:`open_display`.

python-xlib reads the whole keyboard map (``GetKeyboardMapping``, a few thousand keysyms
parsed in Python) whenever a connection opens. Lockdown opens about eight connections
at every start (the guards each keep their own, as python-xlib wants one per thread)
and none of them translates keys. :class:`LazyKeymapDisplay` reads the map at its first
use instead, and again after the map changed: the same answers, later. (On Xvfb that
saves ~0.5 ms of a 6.7 ms open; a desktop keymap with more keysyms costs more.)
"""

from __future__ import annotations

import threading
from typing import Any

from Xlib import display

_Display: Any = display.Display  # python-xlib has no type information
#: one lock for every connection's first read: a rare event, never on a hot path
_KEYMAP_LOCK = threading.Lock()


class LazyKeymapDisplay(_Display):  # type: ignore[misc]
    """A python-xlib ``Display`` whose keyboard map is read when first asked for.

    The read happens under a lock (python-xlib's own map was complete from the open, so
    a lookup from another thread never saw it half-built), and a read that failed (the
    connection closed) is tried again at the next lookup.
    """

    _keymap_stale = True

    def _update_keymap(self, first_keycode: int, count: int) -> None:
        # called by python-xlib when the connection opens and on a MappingNotify
        # (``refresh_keyboard_mapping``): the whole map is read again at the next use
        self._keymap_stale = True

    def _current_keymap(self) -> None:
        if not self._keymap_stale:
            return
        with _KEYMAP_LOCK:
            if not self._keymap_stale:
                return
            info = self.display.info
            self._keymap_codes: list[Any] = [()] * 256
            self._keymap_syms: dict[int, Any] = {}
            super()._update_keymap(info.min_keycode, info.max_keycode - info.min_keycode + 1)
            self._keymap_stale = False

    def keycode_to_keysym(self, keycode: int, index: int) -> int:
        self._current_keymap()
        return int(super().keycode_to_keysym(keycode, index))

    def keysym_to_keycode(self, keysym: int) -> int:
        self._current_keymap()
        return int(super().keysym_to_keycode(keysym))

    def keysym_to_keycodes(self, keysym: int) -> Any:
        self._current_keymap()
        return super().keysym_to_keycodes(keysym)


def open_display(name: str | None = None) -> Any:
    """A new connection to the X display ``name`` (None: ``$DISPLAY``).

    Raises what python-xlib raises: ``Xlib.error.DisplayError``,
    ``Xlib.error.ConnectionClosedError`` or ``OSError``.
    """
    return LazyKeymapDisplay(name or None)
