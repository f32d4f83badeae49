"""Unit tests of lockdown_server (no Qt, no processes)."""
