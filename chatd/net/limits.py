"""
Limits shared by the services: token buckets, and how many connections the
chat room admits.  Pure: time comes from an injected clock.
"""

from __future__ import annotations

import resource

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

MAX_TRACKED_SOURCES = 10_000
# Refilling by elapsed time x rate leaves float dust: 0.9999999999999996 of a
# token is a token, and a wait shorter than a millisecond is a millisecond
# (a wait that vanishes when added to the time would reschedule forever).
TOKEN_EPSILON = 1e-9
MIN_WAIT_SECONDS = 0.001
# File descriptors kept for everything that is not a chat connection:
# listening ports, UDP services, the transcript, log files.
RESERVED_DESCRIPTORS = 64


@define
class TokenBucket:
    rate: float
    capacity: float
    tokens: float
    updated: float

    def take(self, now: float) -> bool:
        """Use a token if there is one."""
        self._refill(now)
        if self.tokens >= 1 - TOKEN_EPSILON:
            self.tokens = max(0.0, self.tokens - 1)
            return True
        return False

    def take_up_to(self, count: int, now: float) -> int:
        """Use up to `count` tokens; how many there were."""
        self._refill(now)
        taken = min(count, int(self.tokens + TOKEN_EPSILON))
        if taken > 0:
            self.tokens = max(0.0, self.tokens - taken)
        return max(taken, 0)

    def seconds_until_token(self, now: float) -> float:
        self._refill(now)
        if self.tokens >= 1 - TOKEN_EPSILON:
            return 0.0
        return max(MIN_WAIT_SECONDS, (1 - self.tokens) / self.rate)

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now


@define
class RateLimiter:
    """A token bucket per source address: `rate` per second, bursts of `burst`."""

    rate: float
    burst: float
    clock: IReactorTime
    _buckets: dict[str, TokenBucket] = field(factory=dict)

    def allow(self, source: str) -> bool:
        return self.allow_up_to(source, 1) == 1

    def allow_up_to(self, source: str, count: int) -> int:
        """How many of `count` things from `source`, arriving now, may pass."""
        now = self.clock.seconds()
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_SOURCES:
                self._forget_idle(now)
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, self.burst, now)
        return bucket.take_up_to(count, now)

    def _forget_idle(self, now: float) -> None:
        """Drop buckets that would be full again anyway, so memory stays bounded."""
        refill = self.burst / self.rate if self.rate else 0
        for source, bucket in list(self._buckets.items()):
            if now - bucket.updated >= refill:
                del self._buckets[source]
        if len(self._buckets) >= MAX_TRACKED_SOURCES:  # under a flood from many sources
            self._buckets.clear()


@define
class ConnectionLimits:
    """How many chat connections are open, in all and per address; who may open another."""

    max_clients: int
    max_per_address: int
    _total: int = 0
    _per_address: dict[str, int] = field(factory=dict)

    def admit(self, address: str) -> str | None:
        """Count a new connection from `address`, or return why it is refused."""
        if self._total >= self.max_clients:
            return "server full"
        if self._per_address.get(address, 0) >= self.max_per_address:
            return "too many connections from your address"
        self._total += 1
        self._per_address[address] = self._per_address.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        """An admitted connection from `address` has closed."""
        self._total -= 1
        left = self._per_address[address] - 1
        if left:
            self._per_address[address] = left
        else:
            del self._per_address[address]

    @property
    def total(self) -> int:
        return self._total


@define
class Slot:
    """An admitted connection's place in its ConnectionLimits, given back once, whoever gives it back first."""

    limits: ConnectionLimits
    address: str
    held: bool = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.limits.release(self.address)


def raise_open_files_limit() -> int:
    """
    Raise this process's soft limit on open files as far as the hard limit
    allows, and return how many chat connections it leaves room for.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            soft = wanted
        except (ValueError, OSError):
            pass
    return max(0, soft - RESERVED_DESCRIPTORS)
