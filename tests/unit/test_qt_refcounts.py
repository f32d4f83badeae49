"""PySide6 6.12 on CPython 3.11 drops references to True and None it never took.

``import lockdown`` makes those singletons immortal, as Python 3.12 does; without it a
few thousand signal emits or void Qt calls end the process (the positive control).
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SCRIPT = """
import sys
if sys.argv[1] == "with":
    import lockdown
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal

class Source(QObject):
    changed = Signal(object)

app = QCoreApplication([])
source = Source()
timer = QTimer()
for i in range(20_000):
    source.changed.emit(i)  # each emit drops a reference to True
    timer.setInterval(i % 100 + 1)  # each void call drops one to None
print("alive")
"""

pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="True and None are immortal from Python 3.12 (PEP 683)"
)


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, mode],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_emits_and_void_qt_calls_do_not_end_the_process() -> None:
    done = run("with")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "alive"


def test_without_the_workaround_they_do() -> None:
    done = run("without")
    assert done.returncode == -signal.SIGABRT
    assert "_dealloc" in done.stderr
