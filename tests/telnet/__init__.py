"""The telnet door (chatd.telnet)."""
