"""The composition root (chatd.service)."""
