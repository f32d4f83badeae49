"""Test support: another X client with a named window (``xev``), for focus and key tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.xserver import Xvfb


def find_window(
    x: Xvfb, name: str, timeout: float = 10, *, tool: str = "xdotool", visible: bool = False
) -> int:
    """The id of the window titled exactly ``name``, waiting up to ``timeout`` seconds.

    Asked again until then: xdotool exits on the X error of a window that goes while it
    looks (a window closing as another opens).
    """
    deadline = time.monotonic() + timeout
    only = ["--onlyvisible"] if visible else []
    while True:
        found = x.run(tool, "search", *only, "--name", f"^{name}$", check=False)
        if found.stdout.strip():
            return int(found.stdout.split()[0])
        if time.monotonic() >= deadline:
            raise AssertionError(f"no window named {name!r} appeared within {timeout} s")
        time.sleep(0.05)


@contextmanager
def xev_window(x: Xvfb, name: str, log: Path | None = None) -> Iterator[int]:
    """Run ``xev`` with a window titled ``name`` (its output to ``log``); yield the window id.

    ``xev`` prints every event its window receives, so ``log`` shows whether it got keys.
    """
    out = log.open("wb") if log is not None else None
    try:
        proc = subprocess.Popen(
            ["xev", "-name", name],
            stdout=out if out is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if out is not None else subprocess.DEVNULL,
            env={**os.environ, **x.env},
        )
    finally:
        if out is not None:
            out.close()  # the child holds its own copy
    try:
        yield find_window(x, name)
    finally:
        proc.terminate()
        proc.wait(5)


#: Another X client that tries to grab the keyboard: exit 0 when someone else holds it.
GRAB_PROBE = """
from Xlib import X, display
d = display.Display()
status = d.screen().root.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
if status == X.GrabSuccess:
    d.ungrab_keyboard(X.CurrentTime)
    d.sync()
d.close()
raise SystemExit(0 if status == X.AlreadyGrabbed else 1)
"""


def keyboard_held(x: Xvfb) -> bool:
    """True when another X client cannot grab the keyboard (someone holds it)."""
    return x.run(sys.executable, "-c", GRAB_PROBE, check=False).returncode == 0


def private_xdotool() -> str:
    """A copy of xdotool under another name, for driving the tests' own windows.

    ``xdotool`` is on the prohibited-apps list: a process-watcher test running at the same
    time on this machine (``close`` policy) terminates every process of that name. One
    copy per user in the temporary folder, made once.
    """
    import shutil
    import tempfile

    from tests.support.xserver import need

    folder = Path(tempfile.gettempdir()) / f"lockdown-tests-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / "xdo-test-driver"
    if not target.exists():
        partial = folder / f"xdo-test-driver.{os.getpid()}"
        shutil.copy(need("xdotool"), partial)
        partial.replace(target)
    return str(target)


#: Another X client that converts PRIMARY the moment its owner changes (XFixes) and
#: prints what it got: ``owner ID``, then ``text 'value'`` or ``refused``.
PRIMARY_SNIFFER = """
from Xlib import X, Xatom, display
from Xlib.ext import xfixes

d = display.Display()
d.xfixes_query_version()
root = d.screen().root
window = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
d.xfixes_select_selection_input(root, Xatom.PRIMARY, xfixes.XFixesSetSelectionOwnerNotifyMask)
utf8 = d.intern_atom("UTF8_STRING")
prop = d.intern_atom("SNIFFED")
d.sync()
print("ready", flush=True)
while True:
    e = d.next_event()
    if type(e).__name__ == "SetSelectionOwnerNotify":  # a per-display copy of the class
        owner = getattr(e.owner, "id", e.owner)
        print("owner", owner, flush=True)
        if owner:
            window.convert_selection(Xatom.PRIMARY, utf8, prop, e.selection_timestamp)
            d.flush()
    elif e.type == X.SelectionNotify:
        if e.property == X.NONE:
            print("refused", flush=True)
            continue
        got = window.get_full_property(prop, X.AnyPropertyType)
        value = got.value if got is not None else b""
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        print("text", repr(value), flush=True)
"""


#: Another X client that sends key events to a window (``XSendEvent``, no input device):
#: ``python -c SEND_KEYS WINDOW TEXT`` (lower-case letters).
SEND_KEYS = """
import sys, time
from Xlib import X, XK, display
from Xlib.protocol import event

d = display.Display()
window = d.create_resource_object("window", int(sys.argv[1]))
root = d.screen().root
for char in sys.argv[2]:
    code = d.keysym_to_keycode(XK.string_to_keysym(char))
    for kind in (event.KeyPress, event.KeyRelease):
        e = kind(time=X.CurrentTime, root=root, window=window, same_screen=1, child=X.NONE,
                 root_x=0, root_y=0, event_x=1, event_y=1, state=0, detail=code)
        window.send_event(e, propagate=True)
    d.sync()
    time.sleep(0.02)
"""


#: Another X client that drags text onto a window (the XDND protocol, spoken directly):
#: ``python -c XDND_SOURCE TARGET ROOT_X ROOT_Y TEXT``. It sends XdndEnter and
#: XdndPosition, then XdndDrop whether or not the target accepted (a determined
#: candidate's tool), serves the text, and prints ``status ACCEPTED`` and ``finished``.
XDND_SOURCE = """
import sys, time
from Xlib import X, Xatom, display
from Xlib.protocol import event

d = display.Display()
target_id, x, y, text = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
root = d.screen().root
source = root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, event_mask=X.PropertyChangeMask)
target = d.create_resource_object("window", target_id)
atom = d.intern_atom
types = [atom("text/plain;charset=utf-8"), atom("UTF8_STRING"), atom("text/plain")]
source.change_property(atom("XdndTypeList"), Xatom.ATOM, 32, types)
source.change_property(atom("LOCKDOWN_TIME"), Xatom.STRING, 8, b"t")
d.sync()
now = X.CurrentTime
while now == X.CurrentTime:
    e = d.next_event()
    if e.type == X.PropertyNotify:
        now = e.time
source.set_selection_owner(atom("XdndSelection"), now)

def send(name, data):
    msg = event.ClientMessage(window=target, client_type=atom(name), data=(32, data + [0] * (5 - len(data))))
    target.send_event(msg, event_mask=0)
    d.flush()

send("XdndEnter", [source.id, 5 << 24, *types])
send("XdndPosition", [source.id, 0, (x << 16) | y, now, atom("XdndActionCopy")])
status = None
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    while d.pending_events():
        e = d.next_event()
        if e.type == X.ClientMessage and e.client_type == atom("XdndStatus"):
            status = e.data[1][1] & 1
            print("status", status, flush=True)
            send("XdndDrop", [source.id, 0, now])
        elif e.type == X.ClientMessage and e.client_type == atom("XdndFinished"):
            print("finished", flush=True)
            sys.exit(0)
        elif e.type == X.SelectionRequest:
            prop = e.property or e.target
            if e.target == atom("TARGETS"):
                e.requestor.change_property(prop, Xatom.ATOM, 32, [atom("TARGETS"), *types])
            else:
                e.requestor.change_property(prop, e.target, 8, text.encode())
            reply = event.SelectionNotify(time=e.time, requestor=e.requestor, selection=e.selection, target=e.target, property=prop)
            e.requestor.send_event(reply)
            d.flush()
    time.sleep(0.01)
print("timeout", status, flush=True)
"""
