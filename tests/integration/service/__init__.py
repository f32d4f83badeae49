"""Integration tests of the proctoring service and its test support."""
