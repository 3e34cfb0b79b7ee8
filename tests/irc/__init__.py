"""The IRC door (chatd.irc)."""
