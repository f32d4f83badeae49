"""Reference proctoring service for Lockdown (never imported by the client)."""
