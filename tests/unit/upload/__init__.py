"""Tests of the encrypted segment spool."""
