"""
What the front doors of one server share: the settings every connection
gets (the same limits on every door), what every door's factory holds
(`Door`), a connection's timeouts and keepalive, and the open connections
of a door, which shutdown tells and closes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import attrs
from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.error import ConnectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.core.server import ChatServer
from chatd.net.flow import FloodGate, FlowCounts, Flusher
from chatd.net.limits import ConnectionLimits

log = Logger()

DEFAULT_MAX_LINE_BYTES = 4096


@frozen
class Settings:
    """What every connection of a server shares, whatever its front door."""

    server_name: str
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    charset: str = "utf-8"  # a telnet connection's first charset (canonical: see chatd.telnet.charset)
    login_timeout_seconds: float = 60.0
    idle_timeout_seconds: float = 0.0  # 0: never
    rate_lines_per_second: float = 5.0
    rate_burst_lines: int = 20
    flood_queue_lines: int = 100
    send_queue_bytes: int = 1024 * 1024


def after_what_was_sent(reason: Failure, flood_gate: FloodGate | None, closing: bool,
                        gone: Callable[[str], None]) -> None:
    """
    A connection closed (for `reason`): lines it sent that still wait in its
    flood queue are said first, at the usual rate (what was sent was said),
    unless chatd itself was closing it; then `gone` with why it left: "Quit"
    for a clean close, "Connection lost" for anything else.
    """
    leaving = "Quit" if reason.check(ConnectionDone) else "Connection lost"
    if flood_gate is None or closing:
        gone(leaving)
    else:
        flood_gate.when_drained(lambda: gone(leaving))


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


class Connection(Protocol):
    """A front door's connection, as shutdown needs it."""

    def shutting_down(self) -> None:
        """Tell the user the server is shutting down (after what waits for them)."""

    def disconnect(self, reason: str) -> None:
        """Close once what was delivered has been sent."""

    def leave_chat(self, reason: str) -> None:
        """Leave the chat (if in it), for `reason`."""

    def abort(self) -> None:
        """Close now, whatever is still unsent."""


class Connections:
    """The open connections of one front door."""

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._open: set[Connection] = set()
        self._all_closed: Deferred[None] | None = None

    def opened(self, connection: Connection) -> None:
        self._open.add(connection)

    def closed(self, connection: Connection) -> None:
        self._open.discard(connection)
        if not self._open and self._all_closed is not None:
            all_closed, self._all_closed = self._all_closed, None
            all_closed.callback(None)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._open))

    def __contains__(self, connection: object) -> bool:
        return connection in self._open

    def shut_down(self, flusher: Flusher, grace_seconds: float) -> Deferred[None]:
        """
        Tell everyone the server is shutting down and close every connection,
        letting pending output flush for up to `grace_seconds`; the result
        fires when every connection is closed.
        """
        flusher.flush()  # what was said this turn comes before the notice
        closing = list(self._open)
        for connection in closing:
            connection.shutting_down()
            connection.disconnect("server shutting down")
        # Everyone leaves for that reason, as the log and the transcript say;
        # the lines that would tell the others go nowhere, as all are closing.
        for connection in closing:
            connection.leave_chat("Server shutting down")
        if not self._open:
            return succeed(None)
        self._all_closed = Deferred()
        deadline = self._clock.callLater(grace_seconds, self._abort_remaining)

        def stop_the_deadline(result: object) -> object:
            if deadline.active():
                deadline.cancel()
            return result

        self._all_closed.addBoth(stop_the_deadline)
        return self._all_closed

    def _abort_remaining(self) -> None:
        log.info("{count} connection(s) still flushing after the grace period; closing them", count=len(self._open))
        for connection in list(self._open):
            connection.abort()


@define(slots=False)  # a factory of Twisted's keeps state in instance attributes of its own
class Door:
    """What every front door's factory holds: the chat, the settings, the shared turn, counts and limits."""

    server: ChatServer
    settings: Settings
    clock: IReactorTime
    limits: ConnectionLimits = field(factory=lambda: ConnectionLimits(10_000, 32))
    flusher: Flusher = field(default=attrs.Factory(lambda self: Flusher(self.clock, self.server.turn), takes_self=True))
    counts: FlowCounts = field(factory=FlowCounts)
    connections: Connections = field(default=attrs.Factory(lambda self: Connections(self.clock), takes_self=True))

    def shut_down(self, grace_seconds: float) -> Deferred[None]:
        """Tell everyone the server is shutting down and close every connection (see Connections.shut_down)."""
        return self.connections.shut_down(self.flusher, grace_seconds)

    # -- from the door's connections

    def opened(self, connection: Connection) -> None:
        self.connections.opened(connection)

    def closed(self, connection: Connection) -> None:
        self.connections.closed(connection)
