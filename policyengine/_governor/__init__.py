"""The traffic governor (shared state for callers of one client)."""
