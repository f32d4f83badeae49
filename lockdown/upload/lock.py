"""One process per spool folder: an exclusive, non-blocking ``flock`` on its lock file.

The holder writes its pid into the file so a second process can say who holds it; the
kernel drops the lock when the holder dies, so a crash leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from lockdown.upload.base import SpoolError
from lockdown.upload.format import LOCK_FILE


class FolderLock:
    """An exclusive ``flock`` on the spool's lock file: one process per spool folder."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def take(cls, folder: Path) -> FolderLock:
        """Raises SpoolError when another process holds the spool (naming its pid)."""
        path = folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise SpoolError(
                f"{folder}: cannot open the spool's lock file: the folder is not writable "
                f"({exc.strerror}); choose a writable spool folder"
            ) from None
        if not _try_lock(fd):
            try:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            except OSError:
                holder = "unknown"
            os.close(fd)
            raise SpoolError(
                f"{folder}: the spool is in use by another Lockdown process (pid {holder}); "
                "close it first"
            )
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)

    def release(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1


if sys.platform == "win32":  # pragma: no cover - not run on Windows yet (docs/spool.md)
    import msvcrt

    def _try_lock(fd: int) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
