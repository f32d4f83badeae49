"""The python-xlib connection whose keyboard map is read at its first use, on a real Xvfb."""

from __future__ import annotations

import subprocess
import time

import pytest
from Xlib import XK, X, display

from lockdown.platform.xconnect import open_display
from tests.support.xserver import Xvfb, need

KEYS = ("a", "z", "Return", "F4", "Tab", "Escape")


def _answers(dpy: display.Display) -> list[tuple[int, int]]:
    out = []
    for name in KEYS:
        code = dpy.keysym_to_keycode(XK.string_to_keysym(name))
        out.append((code, dpy.keycode_to_keysym(code, 0)))
    return out


def _mapping_notify(dpy: display.Display, timeout: float = 10.0) -> display.Display:
    """Wait for the server's MappingNotify on ``dpy`` and hand it to python-xlib."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        while dpy.pending_events():
            event = dpy.next_event()
            if event.type == X.MappingNotify:
                dpy.refresh_keyboard_mapping(event)
                return dpy
        time.sleep(0.02)
        dpy.sync()  # reads what the server sent meanwhile
    pytest.fail(f"no MappingNotify within {timeout:.0f} s")


def _counted(dpy: display.Display) -> list[int]:
    """Count the keyboard-map requests ``dpy`` makes from now on."""
    calls: list[int] = []
    real = dpy.get_keyboard_mapping

    def get_keyboard_mapping(first: int, count: int) -> object:
        calls.append(first)
        return real(first, count)

    dpy.get_keyboard_mapping = get_keyboard_mapping
    return calls


def test_the_lazy_keymap_answers_like_python_xlib_before_and_after_a_change(
    fresh_xserver: Xvfb,
) -> None:
    eager = display.Display(fresh_xserver.display)
    lazy = open_display(fresh_xserver.display)
    try:
        assert lazy.display.info.roots[0].root.id == eager.display.info.roots[0].root.id
        reads = _counted(lazy)
        assert lazy._keymap_syms == {}  # nothing read at the open
        assert _answers(lazy) == _answers(eager)
        assert len(reads) == 1  # read once, at the first lookup
        assert lazy.keysym_to_keycode(XK.string_to_keysym("Return")) != 0
        assert list(lazy.keysym_to_keycodes(XK.string_to_keysym("a"))) == list(
            eager.keysym_to_keycodes(XK.string_to_keysym("a"))
        )
        # the candidate (or a layout switch) remaps a key: both see the new map
        a_code = eager.keysym_to_keycode(XK.string_to_keysym("a"))
        subprocess.run(
            [need("xmodmap"), "-display", fresh_xserver.display, "-e", f"keycode {a_code} = q"],
            check=True,
            timeout=10,
        )
        _mapping_notify(eager)
        _mapping_notify(lazy)
        assert len(reads) == 1  # the change marks the map stale; nothing read yet
        assert eager.keycode_to_keysym(a_code, 0) == XK.string_to_keysym("q")
        assert _answers(lazy) == _answers(eager)
        assert len(reads) == 2
        assert lazy.keycode_to_keysym(a_code, 0) == XK.string_to_keysym("q")
    finally:
        eager.close()
        lazy.close()
