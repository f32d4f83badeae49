"""Test support: another X client with a named window (``xev``), for focus and key tests."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.xserver import Xvfb


def find_window(x: Xvfb, name: str, timeout: float = 10) -> int:
    """The id of the window titled exactly ``name``, waiting up to ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = x.run("xdotool", "search", "--name", f"^{name}$", check=False)
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
