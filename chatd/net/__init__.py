"""The connection runtime every door shares: the connection life, send queues, flood gates, the end of the turn, limits, peer addresses, and the one module of Twisted private state."""
