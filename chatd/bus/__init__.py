"""The cluster bus over Redis (the in-process bus is the core's LocalBus)."""
