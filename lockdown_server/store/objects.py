"""The object store: one small interface, a local folder here and S3 in ``store/s3.py``.

An upload goes to a temporary object first (:meth:`ObjectStore.begin`); only a finished,
synced one is committed under a key the service generates (:meth:`ObjectStore.commit`).
A ``kill -9`` leaves at most a temporary object, which :meth:`ObjectStore.sweep` removes
at the next start, and no row ever names an object that is not complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Protocol

from lockdown_server.errors import StorageFull

_TMP: Final = ".tmp"


class Upload(Protocol):
    """A temporary object being written."""

    def write(self, data: bytes) -> None:
        """Append ``data``.

        Raises:
            StorageFull: no room left.
        """
        ...

    def abort(self) -> None:
        """Remove the temporary object (idempotent)."""
        ...


class ObjectStore(Protocol):
    def begin(self) -> Upload: ...

    def commit(self, upload: Upload, prefix: str) -> str:
        """Make the upload durable under a generated key starting with ``prefix``; the key.

        Raises:
            StorageFull: no room left to sync it.
        """
        ...

    def read(self, key: str) -> bytes: ...

    def iter_chunks(self, key: str, size: int = 1 << 20) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def free_bytes(self) -> int | None:
        """Free space where objects go, None when unknown (remote stores)."""
        ...

    def keys(self, prefix: str, older_than_s: float = 0.0) -> Iterator[str]:
        """Committed keys under ``prefix`` last written at least ``older_than_s`` ago."""
        ...

    def sweep(self, older_than_s: float = 0.0) -> int:
        """Remove temporary objects left by a crash (at least ``older_than_s`` old); how many."""
        ...

    def ready(self) -> bool: ...


def _full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


class _LocalUpload:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.abort()
            if _full(exc):
                raise StorageFull(str(exc)) from None
            raise

    def sync_and_close(self) -> None:
        assert self._fd is not None
        try:
            os.fsync(self._fd)
        except OSError as exc:
            self.abort()
            if _full(exc):
                raise StorageFull(str(exc)) from None
            raise
        os.close(self._fd)
        self._fd = None

    def abort(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalObjectStore:
    """Objects as files under ``root/<prefix>/<2 hex>/<key>``; temporaries in ``root/.tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / _TMP).mkdir(parents=True, exist_ok=True, mode=0o700)

    def _path(self, key: str) -> Path:
        if ".." in key.split("/") or key.startswith("/") or not key:
            raise ValueError(f"bad object key {key!r}")
        return self.root / key

    def begin(self) -> _LocalUpload:
        try:
            return _LocalUpload(self.root / _TMP / secrets.token_hex(16))
        except OSError as exc:
            if _full(exc):
                raise StorageFull(str(exc)) from None
            raise

    def commit(self, upload: Upload, prefix: str) -> str:
        assert isinstance(upload, _LocalUpload)
        upload.sync_and_close()
        name = secrets.token_hex(16)
        key = f"{prefix}/{name[:2]}/{name}"
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.rename(upload.path, path)
            _fsync_dir(path.parent)
        except OSError as exc:
            upload.abort()
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if _full(exc):
                raise StorageFull(str(exc)) from None
            raise
        return key

    def read(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def iter_chunks(self, key: str, size: int = 1 << 20) -> Iterator[bytes]:
        with self._path(key).open("rb") as fh:
            while chunk := fh.read(size):
                yield chunk

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()

    def free_bytes(self) -> int | None:
        return shutil.disk_usage(self.root).free

    def keys(self, prefix: str, older_than_s: float = 0.0) -> Iterator[str]:
        top = self._path(prefix)
        cutoff = time.time() - older_than_s
        if not top.is_dir():
            return
        for path in top.rglob("*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime <= cutoff:
                    yield path.relative_to(self.root).as_posix()

    def sweep(self, older_than_s: float = 0.0) -> int:
        count = 0
        cutoff = time.time() - older_than_s
        for path in (self.root / _TMP).iterdir():
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime <= cutoff:
                    path.unlink()
                    count += 1
        return count

    def ready(self) -> bool:
        return (self.root / _TMP).is_dir()
