"""CPython's static singletons made immortal before 3.12, as PySide6 6.12 assumes."""

from __future__ import annotations

import sys
from typing import Final

#: How far the reference counts of ``None``, ``True`` and ``False`` are raised on CPython
#: before 3.12 (2**40: a million emits a second would take 35 years to use it up).
MARGIN: Final = 1 << 40


def make_singletons_immortal() -> None:
    """Raise the reference counts of ``None``, ``True`` and ``False`` out of reach.

    WORKAROUND(PySide6 6.12 on CPython 3.11): every ``Signal.emit`` drops a reference to
    ``True`` it never took, and every call of a void Qt method one to ``None``: written for
    Python 3.12, where these objects are immortal (PEP 683) and their counts are never
    touched. On 3.11 ``True`` holds about 1,100 references in a running session, so about
    as many emits end the process with "bool_dealloc" — minutes into an exam. These three
    objects are static and never freed; a count raised once makes them immortal the way
    3.12 does. Only the count of CPython's own static singletons changes.
    """
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return
    import ctypes

    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (Py_ssize_t)
        count = ctypes.c_ssize_t.from_address(id(singleton))
        if count.value < MARGIN:
            count.value += MARGIN
