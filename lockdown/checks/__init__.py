"""The system check: checks, runner and report (coming)."""
