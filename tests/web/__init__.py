"""The web door (chatd.web)."""
