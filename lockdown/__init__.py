"""Lockdown: an open-source lockdown exam browser with record-and-review proctoring."""

from lockdown.platform.immortal import make_singletons_immortal

__version__ = "0.1.0"

# before any Qt call of the process (PySide6 6.12 on CPython 3.11: see the function)
make_singletons_immortal()
