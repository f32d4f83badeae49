"""Reference proctoring service for Lockdown (never imported by the client, no Qt)."""

from lockdown import __version__

__all__ = ["__version__"]
