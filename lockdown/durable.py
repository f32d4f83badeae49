"""The one place that writes files crash-safely: appended records and whole files.

- :class:`AppendLog` appends whole records to a file: every byte of a record is written
  (short writes are continued), and when the disk refuses (``ENOSPC``, ``EFBIG`` under
  ``RLIMIT_FSIZE``, ``EIO``) the file is cut back to the end of the last whole record and
  :class:`DiskError` says why, so a reader never finds half a record in the middle.
  ``sync()`` makes what was appended durable (one fsync for many records: group commit).
- :func:`atomic_write` replaces a file as a whole: a temporary file in the same folder,
  written, fsynced, renamed over the old one, and the folder fsynced.
- :func:`make_folder` creates a folder (and its parents) and fsyncs each new folder's
  parent, so the folder itself survives a crash.

The journal, the spool manifest and its segments, the restore log and every key file
go through this module; nothing else writes them by hand.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Final

#: errno values that mean "the disk cannot take this now" (full, over quota, too large).
DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})


class DiskError(OSError):
    """Writing failed; the file was cut back to its last whole record (or left unchanged)."""


def fsync_folder(folder: Path, *, strict: bool = False) -> bool:
    """fsync a folder so a rename or a new or removed entry in it survives a crash.

    Returns whether it worked; with ``strict`` a failure raises :class:`DiskError`.
    Windows cannot open a folder: there the file's own fsync has to do (True).
    """
    if os.name == "nt":  # pragma: no cover - Windows cannot open a folder
        return True
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        if strict:
            raise DiskError(exc.errno or errno.EIO, f"{folder}: {exc.strerror}") from None
        return False
    return True


def make_folder(folder: Path, mode: int = 0o700) -> None:
    """Create ``folder`` and missing parents, fsyncing the parent of each one made."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for made in reversed(missing):
        with contextlib.suppress(FileExistsError):
            made.mkdir(mode=mode)
        fsync_folder(made.parent)


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte of ``data`` to ``fd``, continuing short writes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - os.write raises rather than return 0
            raise DiskError(errno.EIO, "the disk accepted no bytes")
        view = view[written:]


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` as a whole (temp file, fsync, rename, fsync folder).

    Raises:
        DiskError: the data could not be written; ``path`` is unchanged.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_folder(path.parent, strict=True)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, DiskError):
            raise
        raise DiskError(exc.errno or errno.EIO, f"{path}: {exc.strerror or exc}") from None


class AppendLog:
    """An append-only file of whole records (lines, JSON, anything the caller frames)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd
        self._end = os.lseek(fd, 0, os.SEEK_END)

    @classmethod
    def open(cls, path: Path, mode: int = 0o600) -> AppendLog:
        """Open (or create) ``path`` for appending; the folder is made durable first.

        Raises:
            OSError: the file cannot be opened.
        """
        if not path.parent.exists():
            make_folder(path.parent)
        created = not path.exists()
        fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
        if created:
            fsync_folder(path.parent)
        return cls(path, fd)

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def end(self) -> int:
        """The offset just after the last whole record."""
        return self._end

    def read_all(self) -> bytes:
        """The whole file as it is on disk now."""
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0)

    def truncate(self, size: int) -> None:
        """Cut the file to ``size`` bytes (a torn tail found at open)."""
        os.ftruncate(self._fd, size)
        self._end = size

    def append(self, record: bytes) -> None:
        """Append one whole record, or nothing.

        Raises:
            DiskError: the disk refused; the file is back at its last whole record.
        """
        start = self._end
        try:
            view = memoryview(record)
            offset = start
            while view:
                written = os.pwrite(self._fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            raise DiskError(exc.errno or errno.EIO, exc.strerror or str(exc)) from None
        self._end = start + len(record)

    def sync(self) -> None:
        """Make every appended record durable (one fsync).

        Raises:
            DiskError: fsync failed (the records may not be on the disk).
        """
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise DiskError(exc.errno or errno.EIO, exc.strerror or str(exc)) from None

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = -1
