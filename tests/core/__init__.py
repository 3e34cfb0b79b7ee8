"""The pure core (chatd.core)."""
