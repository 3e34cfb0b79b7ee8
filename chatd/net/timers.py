"""
A connection's timers, the same on every door: the login and idle
timeouts (`Timeouts`), and keep-alive for a peer that vanished without
closing (`KeepAlive`).  Time comes from an injected clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from chatd.net.door import Settings
from chatd.net.flow import FloodGate


class TimedOut(Protocol):
    """What a connection does when its timeouts fire."""

    def login_timed_out(self) -> None:
        """No nickname was chosen in time."""

    def idle_timed_out(self) -> None:
        """No input came in time."""


class Timeouts:
    """
    A connection's two timeouts, the same on every front door: it has
    --login-timeout seconds to choose a nickname, and then, with
    --idle-timeout, that long without input before it is closed.  A user
    whose lines are still being let through the flood queue is not idle: the
    time counts from the last line let through.
    """

    __slots__ = ("_clock", "_settings", "_owner", "_flood_gate", "_login", "_idle", "_stopped")

    def __init__(self, clock: IReactorTime, settings: Settings, owner: TimedOut, flood_gate: FloodGate) -> None:
        self._clock = clock
        self._settings = settings
        self._owner = owner
        self._flood_gate = flood_gate
        self._login: IDelayedCall | None = clock.callLater(settings.login_timeout_seconds, owner.login_timed_out)
        self._idle: IDelayedCall | None = None
        self._stopped = False

    def logged_in(self) -> None:
        """The nickname is chosen: the login timeout is over, the idle one begins (if there is one)."""
        self._cancel(self._login)
        self._login = None
        if self._settings.idle_timeout_seconds > 0 and not self._stopped:
            self._idle = self._clock.callLater(self._settings.idle_timeout_seconds, self._idle_over)

    def activity(self) -> None:
        """Input: the idle timeout starts over."""
        idle = self._idle
        if idle is None or self._stopped:
            return
        if idle.active():
            idle.reset(self._settings.idle_timeout_seconds)
        else:  # it has just fired
            self._idle = self._clock.callLater(self._settings.idle_timeout_seconds, self._idle_over)

    def stop(self) -> None:
        """The connection is closing: neither timeout fires."""
        self._stopped = True
        self._cancel(self._login)
        self._cancel(self._idle)
        self._login = self._idle = None

    def _idle_over(self) -> None:
        if self._flood_gate.waiting:  # lines still being let through: not idle
            self.activity()
        else:
            self._owner.idle_timed_out()

    @staticmethod
    def _cancel(call: IDelayedCall | None) -> None:
        if call is not None and call.active():
            call.cancel()


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
