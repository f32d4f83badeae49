"""Lockdown: an open-source lockdown exam browser with record-and-review proctoring."""

__version__ = "0.1.0"
