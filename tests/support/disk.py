"""A full disk for tests: fill a (small tmpfs) file system to its last byte."""

from __future__ import annotations

import os
from pathlib import Path


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; the filler file's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler
