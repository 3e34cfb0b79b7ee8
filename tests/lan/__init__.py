"""The LAN side (chatd.lan)."""
