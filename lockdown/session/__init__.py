"""Protocol client for the proctoring service and the session state machine (coming)."""
