"""Guards: the lockdown itself (clipboard, keyboard, focus, processes, displays, VM, remote)."""
