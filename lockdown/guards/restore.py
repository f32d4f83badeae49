"""Restore records: every change to system state is written down before it is made.

A guard that changes something outside our process (XKB options, a registry value, a
killed process) first calls :meth:`RestoreLog.record`, which writes one JSON file under
``paths.restore`` and fsyncs it and its folder, then makes the change; after undoing the
change it calls :meth:`RestoreLog.done`, which removes the file. If the run dies in
between (``kill -9``, a power cut), the file survives and :func:`undo_leftovers`, called
at the next start, undoes it through the handler registered for its ``kind`` and
journals ``guards.restore_undone``. Records of a still-running Lockdown are left alone.

Some changes cannot be undone: a process Lockdown terminated cannot be brought back.
Their kinds are registered as *evidence* (``process_terminated``, and ``journal_held``:
the count of journal events a rate limit held back, rewritten as it grows): at the end of a
session the owner journals them and drops the records; a leftover one is "undone" at the
next start by journalling ``guards.restore_undone`` with the record's data (which
process, why), so the candidate and reviewers learn what the run that died had done.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import psutil

from lockdown import durable, log
from lockdown.events import Event, EventSink
from lockdown.platform.base import DesktopPlatform

SUFFIX: Final = ".restore.json"

#: Undoes one record's change: (platform, record data) -> None; raises OSError on failure.
UndoHandler = Callable[[DesktopPlatform, Mapping[str, Any]], None]


def _undo_system_keys(platform: DesktopPlatform, data: Mapping[str, Any]) -> None:
    platform.restore_system_keys(data)


def _evidence_only(platform: DesktopPlatform, data: Mapping[str, Any]) -> None:
    """A change that cannot be undone (a terminated process): only journalled."""
    log.guards.warning(
        "A previous run terminated %s (pid %s, %s): %s",
        data.get("name", "?"),
        data.get("pid", "?"),
        data.get("exe") or "exe unknown",
        data.get("reason", "no reason recorded"),
    )


def _held_events(platform: DesktopPlatform, data: Mapping[str, Any]) -> None:
    """Journal events a rate limit held back when the run died: journalled as evidence."""
    log.guards.warning(
        "A previous run held back %s %s event(s) it had not journalled yet",
        data.get("suppressed", "?"),
        data.get("type", "?"),
    )


_HANDLERS: dict[str, UndoHandler] = {
    "system_keys": _undo_system_keys,
    "process_terminated": _evidence_only,
    "journal_held": _held_events,
}
#: Kinds whose record data goes into the journal when a leftover is "undone".
_EVIDENCE: set[str] = {"process_terminated", "journal_held"}


def register_undo(kind: str, handler: UndoHandler, *, evidence: bool = False) -> None:
    """Teach :func:`undo_leftovers` how to undo records of ``kind``.

    ``evidence``: the change cannot be reverted, so the record's data is journalled.
    """
    _HANDLERS[kind] = handler
    if evidence:
        _EVIDENCE.add(kind)
    else:
        _EVIDENCE.discard(kind)


@dataclass(frozen=True)
class RestoreRecord:
    """One recorded change: its file, kind, data and the process that made it."""

    path: Path
    kind: str
    data: Mapping[str, Any]
    pid: int
    started: float


def _process_start(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return 0.0


class RestoreLog:
    """Writes and removes restore records in one folder (``paths.restore``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def record(self, kind: str, data: Mapping[str, Any]) -> RestoreRecord:
        """Write the record durably; call it BEFORE making the change."""
        durable.make_folder(self.directory)
        pid = os.getpid()
        started = _process_start(pid)
        name = f"{int(time.time() * 1000):013d}-{uuid.uuid4().hex[:8]}-{kind}{SUFFIX}"
        path = self.directory / name
        body = {"kind": kind, "pid": pid, "started": started, "data": dict(data)}
        durable.atomic_write(path, json.dumps(body, sort_keys=True).encode())
        log.guards.debug("Restore record %s written", path.name)
        return RestoreRecord(path, kind, dict(data), pid, started)

    def update(self, record: RestoreRecord, data: Mapping[str, Any]) -> RestoreRecord:
        """Replace a record's data in place (atomically: the old or the new, never torn)."""
        body = {"kind": record.kind, "pid": record.pid, "started": record.started}
        body["data"] = dict(data)
        tmp = record.path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, json.dumps(body, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, record.path)
        return RestoreRecord(record.path, record.kind, dict(data), record.pid, record.started)

    def done(self, record: RestoreRecord) -> None:
        """The change was undone: drop its record."""
        try:
            record.path.unlink()
        except FileNotFoundError:
            return
        durable.fsync_folder(self.directory)

    def pending(self) -> list[RestoreRecord]:
        """Every readable record in the folder, oldest first."""
        records = []
        if not self.directory.is_dir():
            return []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
                records.append(
                    RestoreRecord(
                        path,
                        str(body["kind"]),
                        dict(body.get("data", {})),
                        int(body.get("pid", 0)),
                        float(body.get("started", 0.0)),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.guards.warning("Unreadable restore record %s (%s)", path.name, exc)
        return records


def _owner_alive(record: RestoreRecord) -> bool:
    """The process that wrote the record still runs (same pid AND same start time)."""
    started = _process_start(record.pid)
    return started != 0.0 and abs(started - record.started) < 1.0


def undo_leftovers(
    restore_dir: Path, report: EventSink, platform: DesktopPlatform | None = None
) -> int:
    """Undo the changes of a previous run that died; returns how many were undone.

    Call once at startup, before any guard starts. A record whose undo fails stays for
    the next start and is journalled as ``guards.restore_failed``. Evidence kinds (a
    terminated process) journal ``guards.restore_undone`` with the record's ``data``.
    """
    restore = RestoreLog(restore_dir)
    leftovers = [r for r in restore.pending() if not _owner_alive(r)]
    return _undo(restore, leftovers, report, platform)


def undo_own(restore_dir: Path, report: EventSink, platform: DesktopPlatform | None = None) -> int:
    """Undo now the changes this process recorded and has not undone (its display died).

    For a run that cannot revert through its guards (``xkill`` of the kiosk). Evidence
    kinds stay for their owner. Returns how many were undone; each is journalled as
    ``guards.restore_undone`` with ``"own": true``.
    """
    restore = RestoreLog(restore_dir)
    mine = [r for r in restore.pending() if r.pid == os.getpid() and r.kind not in _EVIDENCE]
    return _undo(restore, mine, report, platform, own=True)


def _undo(
    restore: RestoreLog,
    leftovers: list[RestoreRecord],
    report: EventSink,
    platform: DesktopPlatform | None,
    *,
    own: bool = False,
) -> int:
    if not leftovers:
        return 0
    if platform is None:
        from lockdown.platform.factory import desktop_platform

        platform = desktop_platform()
    undone = 0
    for record in reversed(leftovers):  # newest change first, like a revert
        handler = _HANDLERS.get(record.kind)
        payload: dict[str, Any] = {"kind": record.kind, "pid": record.pid}
        if own:
            payload["own"] = True
        if record.kind in _EVIDENCE:
            payload["data"] = dict(record.data)
        if handler is None:
            log.guards.error("No undo for restore record kind %r (%s)", record.kind, record.path)
            report(Event("guards.restore_failed", {**payload, "error": "unknown kind"}))
            continue
        try:
            handler(platform, record.data)
        except OSError as exc:
            log.guards.error("Cannot undo %s from a previous run: %s", record.kind, exc)
            report(Event("guards.restore_failed", {**payload, "error": str(exc)}))
            continue
        restore.done(record)
        undone += 1
        log.guards.warning("Undid %s left by a previous run (pid %d)", record.kind, record.pid)
        report(Event("guards.restore_undone", payload))
    return undone
