"""Settings schema, layered settings and exam configuration files."""
