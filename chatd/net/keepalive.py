"""
Keep-alive: finding a peer that vanished without closing (a laptop shut,
Wi-Fi gone), for every connection of a door, on one shared timer.

One `callLater` per connection, renewed every interval, cost each idle
connection a DelayedCall, its bound method and its arguments (about 400
bytes), and kept the reactor's timer heap as long as the connections: a
door's wheel has one timer for all of them, and a connection is one entry
in a set of the second it is due.  The same wheel holds each connection's
login timeout (chatd.net.life), until a nickname is chosen.
"""

from __future__ import annotations

import math
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger()


class Due(Protocol):
    def due(self) -> None:
        """Its second has come."""


class TimerWheel:
    """
    Entries due at whole seconds (rounded up: never early), each told
    `due()` when its second comes, on one DelayedCall for the earliest
    second with entries (none when there are none).
    """

    __slots__ = ("_clock", "_seconds", "_call", "_call_at")

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._seconds: dict[int, set[Due]] = {}
        self._call: IDelayedCall | None = None
        self._call_at = 0

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._seconds.values())

    def schedule(self, entry: Due, delay: float) -> int:
        """`entry` is due in `delay` seconds (rounded up); returns the second, for `cancel`."""
        second = math.ceil(self._clock.seconds() + delay)
        entries = self._seconds.get(second)
        if entries is None:
            entries = self._seconds[second] = set()
        entries.add(entry)
        if self._call is None or second < self._call_at:
            self._wake_at(second)
        return second

    def cancel(self, entry: Due, second: int) -> None:
        entries = self._seconds.get(second)
        if entries is not None:
            entries.discard(entry)
            if not entries:
                del self._seconds[second]

    def _wake_at(self, second: int) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call_at = second
        self._call = self._clock.callLater(max(0.0, second - self._clock.seconds()), self._tick)

    def _tick(self) -> None:
        self._call = None
        now = self._clock.seconds()
        for second in sorted(second for second in self._seconds if second <= now):
            entries = self._seconds[second]
            for entry in list(entries):
                if entry not in entries:  # cancelled by an entry told before it
                    continue
                entries.discard(entry)
                try:
                    entry.due()
                except Exception:  # one connection's fault never stops the others' timers
                    log.failure("a timer of a connection failed")
            if not entries and self._seconds.get(second) is entries:
                del self._seconds[second]
        if self._seconds and self._call is None:
            self._wake_at(min(self._seconds))


class Pinged(Protocol):
    def ping_peer(self) -> None:
        """Ask the peer for a word."""

    def peer_silent(self) -> None:
        """The peer said nothing for two intervals: it is gone."""


class KeepAlive:
    """
    One connection's keep-alive: a peer silent for `interval` seconds is
    pinged (`connection.ping_peer()`); one that stays silent as long again is
    gone (`connection.peer_silent()`).  The connection sets `heard` when anything
    comes from its peer.
    """

    __slots__ = ("_wheel", "_interval", "_connection", "_second", "heard", "_pinged")

    def __init__(self, wheel: TimerWheel, interval: float, connection: Pinged) -> None:
        self._wheel = wheel
        self._interval = interval
        self._connection: Pinged | None = connection  # None once stopped
        self.heard = False
        self._pinged = False
        self._second: int | None = wheel.schedule(self, interval)

    def stop(self) -> None:
        if self._second is not None:
            self._wheel.cancel(self, self._second)
        self._second = self._connection = None

    def due(self) -> None:
        self._second = None
        connection = self._connection
        if connection is None:
            return
        if self._pinged and not self.heard:
            connection.peer_silent()
            return
        self._pinged = not self.heard  # only a silent peer is pinged
        if self._pinged:
            connection.ping_peer()
        self.heard = False
        if self._connection is not None:  # not stopped by the ping (a write that failed)
            self._second = self._wheel.schedule(self, self._interval)
