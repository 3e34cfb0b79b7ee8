"""The connection runtime (chatd.net)."""
