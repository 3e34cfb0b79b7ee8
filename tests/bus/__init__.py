"""The cluster bus (chatd.bus)."""
