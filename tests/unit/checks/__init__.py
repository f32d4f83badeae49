"""Unit tests of the system check (no Qt, no network)."""
