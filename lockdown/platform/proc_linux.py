"""Linux process-start notification: the kernel's process connector, or a cheap /proc scan.

The process connector (``NETLINK_CONNECTOR``, ``CN_IDX_PROC``) tells every listener about
each ``exec`` as it happens, at no cost while nothing starts. Subscribing needs root or
``CAP_NET_ADMIN`` (and a kernel with ``CONFIG_PROC_EVENTS``); without them the caller
falls back to :func:`proc_pids`, a listing of ``/proc`` diffed at a short interval.

:class:`LogindSessions` tells the login session of a process the way ``sd_pid_get_session``
does: from the ``session-ID.scope`` unit in its control group (``/proc/PID/cgroup``),
which systemd-logind creates and the process cannot leave on its own.
:class:`EnvironmentSessions` stands in for logind where there is none (tests, and a
development build's ``LOCKDOWN_DEV_PROCESS_SESSION``): a variable in each process's
environment names its session — anyone can set it, so never in an installed build.

Wire format (``linux/netlink.h``, ``linux/connector.h``, ``linux/cn_proc.h``), native
byte order: ``nlmsghdr`` (16 bytes) + ``cn_msg`` (20 bytes) + ``proc_event`` whose
``what``/``cpu``/``timestamp_ns`` header (16 bytes) is followed by the event data; for
``PROC_EVENT_EXEC`` that is ``process_pid``, ``process_tgid``.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Final

from lockdown import log

NETLINK_CONNECTOR: Final = 11
CN_IDX_PROC: Final = 1
CN_VAL_PROC: Final = 1
NLMSG_DONE: Final = 3
NLMSG_ERROR: Final = 2
PROC_CN_MCAST_LISTEN: Final = 1
PROC_CN_MCAST_IGNORE: Final = 2
PROC_EVENT_EXEC: Final = 0x00000002
_NLMSGHDR: Final = struct.Struct("=IHHII")
_CN_MSG: Final = struct.Struct("=IIIIHH")
_EVENT_HEADER: Final = struct.Struct("=IIQ")
_EXEC_DATA: Final = struct.Struct("=II")
_RECV_BUFFER: Final = 1 << 20

#: Called with the pid (thread-group id) of a process that just exec'd and the
#: ``time.monotonic()`` at which the event was read.
ExecCallback = Callable[[int, float], None]
#: Called when events were lost (socket buffer overflow): rescan everything.
OverflowCallback = Callable[[], None]
#: Called once, with the reason, when the source stops working for good.
FailureCallback = Callable[[str], None]


class ExecSourceUnavailable(Exception):
    """The process connector cannot be used here; the message says why."""


def subscribe_message(op: int, port: int) -> bytes:
    """The netlink datagram that (un)subscribes from process events."""
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, port) + cn


def parse_exec_pids(data: bytes) -> Iterator[int]:
    """The tgids of every ``PROC_EVENT_EXEC`` in one datagram (other events ignored)."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return
        body = offset + _NLMSGHDR.size
        if msg_type == NLMSG_DONE and length >= _NLMSGHDR.size + _CN_MSG.size + 16:
            idx, val, *_rest = _CN_MSG.unpack_from(data, body)
            event = body + _CN_MSG.size
            what, _cpu, _ts = _EVENT_HEADER.unpack_from(data, event)
            if (idx, val) == (CN_IDX_PROC, CN_VAL_PROC) and what == PROC_EVENT_EXEC:
                _pid2, tgid = _EXEC_DATA.unpack_from(data, event + _EVENT_HEADER.size)
                yield tgid
        offset += (length + 3) & ~3


class NetlinkExecSource:
    """Reports each ``exec`` on the machine through the kernel's process connector."""

    backend = "netlink-proc-connector"

    def __init__(self) -> None:
        self.reason = "kernel process connector: exec events pushed by the kernel"
        self._sock: socket.socket | None = None
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Create and subscribe the socket, or raise :class:`ExecSourceUnavailable`."""
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        except (OSError, AttributeError) as exc:
            raise ExecSourceUnavailable(f"no netlink connector socket ({exc})") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECV_BUFFER)
            sock.bind((0, CN_IDX_PROC))
            port = sock.getsockname()[0]
            sock.send(subscribe_message(PROC_CN_MCAST_LISTEN, port))
        except OSError as exc:
            sock.close()
            why = (
                "needs root or CAP_NET_ADMIN"
                if exc.errno in (errno.EPERM, errno.EACCES)
                else exc.strerror or str(exc)
            )
            raise ExecSourceUnavailable(f"process connector refused: {why}") from None
        self._sock = sock

    def start(
        self, on_exec: ExecCallback, on_overflow: OverflowCallback, on_failure: FailureCallback
    ) -> None:
        if self._sock is None:
            self.open()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(
            target=self._run,
            args=(on_exec, on_overflow, on_failure),
            name="proc-connector",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self, on_exec: ExecCallback, on_overflow: OverflowCallback, on_failure: FailureCallback
    ) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            ready, _, _ = select.select([sock.fileno(), self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                data = sock.recv(65536)
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.guards.warning("Process connector overflowed; rescanning")
                    self._safe(on_overflow)
                    continue
                log.guards.error("Process connector failed: %s", exc)
                self._safe(on_failure, f"the process connector failed: {exc}")
                return
            now = time.monotonic()
            for pid in parse_exec_pids(data):
                try:
                    on_exec(pid, now)
                except Exception:
                    log.guards.exception("Process event handler failed")

    @staticmethod
    def _safe(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:
            log.guards.exception("Process event handler failed")

    def stop(self) -> None:
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            try:
                port = self._sock.getsockname()[0]
                self._sock.send(subscribe_message(PROC_CN_MCAST_IGNORE, port))
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1


def proc_comm(pid: int, root: str = "/proc") -> str | None:
    """The kernel's name of ``pid`` (world-readable; it changes on ``exec``); None if gone."""
    try:
        with open(f"{root}/{pid}/comm", "rb") as fh:
            return fh.read().decode("utf-8", "replace").rstrip("\n")
    except OSError:
        return None


def proc_pids(root: str = "/proc") -> set[int]:
    """The pids listed under /proc (a few hundred µs for a few hundred processes)."""
    return {int(e.name) for e in os.scandir(root) if e.name.isdigit()}


_SESSION_SCOPE: Final = re.compile(r"/session-([A-Za-z0-9_]+)\.scope(?:/|$)")
_USER_SLICE: Final = re.compile(r"/user-(\d+)\.slice(?:/|$)")


class LogindSessions:
    """Login sessions as systemd-logind places them (``session-ID.scope`` cgroups)."""

    def __init__(self, root: str = "/proc") -> None:
        self.root = root

    def _paths(self, pid: int) -> list[str]:
        try:
            with open(f"{self.root}/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
                return [line.split(":", 2)[-1] for line in fh.read().splitlines()]
        except OSError:
            return []

    def session_of(self, pid: int) -> str | None:
        """The logind session id of ``pid``; None without logind or when it is in none."""
        for path in self._paths(pid):
            if found := _SESSION_SCOPE.search(path):
                return found.group(1)
        return None

    def owner_of(self, pid: int) -> int | None:
        """The uid of the user whose session ``pid`` is in (``user-UID.slice``), or None."""
        for path in self._paths(pid):
            if _SESSION_SCOPE.search(path) and (found := _USER_SLICE.search(path)):
                return int(found.group(1))
        return None


class EnvironmentSessions:
    """Sessions named by an environment variable of each process (development and tests).

    A process without the variable (or whose environment cannot be read) is in a session
    of its own, never the one the variable names.
    """

    def __init__(self, variable: str, root: str = "/proc") -> None:
        self.variable = variable
        self.root = root

    def session_of(self, pid: int) -> str | None:
        try:
            with open(f"{self.root}/{pid}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError:
            return f"unreadable-{pid}"
        prefix = f"{self.variable}=".encode()
        for entry in environ:
            if entry.startswith(prefix):
                return entry[len(prefix) :].decode(errors="replace")
        return f"none-{pid}"
