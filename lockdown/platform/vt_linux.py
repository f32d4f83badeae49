"""Linux virtual terminals: which one is active, a free one, switch to one (thin adapter).

:class:`LinuxVt` is the native adapter (``ioctl`` on ``/dev/tty0``: ``VT_GETSTATE``,
``VT_OPENQRY``, ``VT_ACTIVATE``, ``VT_WAITACTIVE``; root only). :class:`FakeVt` keeps the
same state in memory: the development and test machines have no console anyone looks at
(a virtual machine's), and switching it would be a change outside the test, so the
helper uses the fake there (``LOCKDOWN_DEV_FAKE_VT=1`` in a development build) and the
exam server shares the active terminal instead of taking one (``-sharevts``).
"""

from __future__ import annotations

import fcntl
import os
import struct
from dataclasses import dataclass, field
from typing import Final, Protocol

VT_OPENQRY: Final = 0x5600
VT_GETSTATE: Final = 0x5603
VT_ACTIVATE: Final = 0x5606
VT_WAITACTIVE: Final = 0x5607
CONSOLE: Final = "/dev/tty0"


class VtError(OSError):
    """The virtual terminals cannot be read or switched (no console, not root)."""


class VtAdapter(Protocol):
    """The virtual-terminal calls the display helper makes."""

    #: "linux" (the real console) or "fake"
    kind: str

    def active(self) -> int:
        """The number of the active virtual terminal."""
        ...

    def free(self) -> int:
        """The number of the first terminal nobody has open."""
        ...

    def activate(self, number: int) -> None:
        """Switch to terminal ``number`` and wait until it is active."""
        ...


class LinuxVt:
    """The real console (root)."""

    kind = "linux"

    def __init__(self, console: str = CONSOLE) -> None:
        self._console = console

    def _ioctl(self, request: int, arg: int | bytearray) -> int:
        try:
            fd = os.open(self._console, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as exc:
            raise VtError(exc.errno, f"cannot open {self._console} ({exc.strerror})") from exc
        try:
            return int(fcntl.ioctl(fd, request, arg))
        except OSError as exc:
            raise VtError(
                exc.errno, f"ioctl {request:#x} on {self._console} ({exc.strerror})"
            ) from exc
        finally:
            os.close(fd)

    def active(self) -> int:
        buf = bytearray(6)
        self._ioctl(VT_GETSTATE, buf)
        return int(struct.unpack("HHH", bytes(buf))[0])

    def free(self) -> int:
        buf = bytearray(4)
        self._ioctl(VT_OPENQRY, buf)
        number = int(struct.unpack("i", bytes(buf))[0])
        if number <= 0:
            raise VtError(0, "no free virtual terminal")
        return number

    def activate(self, number: int) -> None:
        self._ioctl(VT_ACTIVATE, number)
        self._ioctl(VT_WAITACTIVE, number)


@dataclass
class FakeVt:
    """Terminals in memory: ``current`` is active, ``taken`` are open; ``switches`` logs."""

    current: int = 1
    taken: set[int] = field(default_factory=lambda: {1})
    switches: list[int] = field(default_factory=list)
    kind: str = "fake"

    def active(self) -> int:
        return self.current

    def free(self) -> int:
        number = 1
        while number in self.taken:
            number += 1
        return number

    def activate(self, number: int) -> None:
        self.taken.add(number)
        self.current = number
        self.switches.append(number)
