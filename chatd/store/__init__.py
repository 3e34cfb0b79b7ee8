"""The chat's memory: the stores behind chatd.core.store's interface (SQLite on one machine)."""
