"""Unit tests of lockdown.session."""
