"""Integration tests of the system check: real HTTP servers, the real X server, tmpfs."""
