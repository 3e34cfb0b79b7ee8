"""End to end: the real twistd, real clients, real servers."""
