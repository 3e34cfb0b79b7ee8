"""
Keep-alive for a peer that vanished without closing, the same on every
door that pings (`KeepAlive`).  Time comes from an injected clock.  (The
login and idle timeouts are the connection life's own: chatd.net.life.)
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class KeepAlive:
    """
    Finds a peer that vanished without closing (a laptop shut, Wi-Fi gone):
    one silent for `interval` seconds is pinged (`ping`); one that stays
    silent as long again is gone (`silent`).  The connection sets `heard`
    when anything comes from its peer.
    """

    __slots__ = ("_clock", "_interval", "_ping", "_silent", "_call", "heard", "_pinged")

    def __init__(self, clock: IReactorTime, interval: float, ping: Callable[[], None],
                 silent: Callable[[], None]) -> None:
        self._clock = clock
        self._interval = interval
        self._ping = ping
        self._silent = silent
        self.heard = False
        self._pinged = False
        self._call: IDelayedCall | None = clock.callLater(interval, self._check)

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _check(self) -> None:
        self._call = None
        if self._pinged and not self.heard:
            self._silent()
            return
        self._pinged = not self.heard  # only a silent peer is pinged
        if self._pinged:
            self._ping()
        self.heard = False
        self._call = self._clock.callLater(self._interval, self._check)
