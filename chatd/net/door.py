"""
What the doors of one server share: the settings every connection gets
(the same limits on every door), what every door's factory holds (`Door`),
and the open connections of a door (`Connections`), which shutdown tells
and closes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import attrs
from attrs import define, field, frozen
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatd.core.server import ChatServer
from chatd.net.flow import FlowCounts, Flusher
from chatd.net.handshake import TLSEntrance
from chatd.net.keepalive import TimerWheel
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
    motd: tuple[str, ...] = ()  # the message of the day's lines (--motd-file), shown at login


class Connection(Protocol):
    """A door's connection, as shutdown and the metrics need it (chatd.net.life.ConnectionLife)."""

    @property
    def tls(self) -> bool:
        """Whether it runs over TLS."""

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
            try:
                connection.shutting_down()
                connection.disconnect("server shutting down")
            except Exception:  # one broken connection never stops the rest of the shutdown
                log.failure("closing a connection at shutdown failed")
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
    # One timer for every connection's login timeout and keep-alive (whole seconds, never early).
    timers: TimerWheel = field(default=attrs.Factory(lambda self: TimerWheel(self.clock), takes_self=True))
    # The way in for a connection whose first bytes are a TLS ClientHello (None: --no-tls).
    tls: TLSEntrance | None = None
    # The door's name in the log, after a peer: "" (telnet), " (web)", " (IRC)".
    log_name = ""

    def shut_down(self, grace_seconds: float) -> Deferred[None]:
        """Tell everyone the server is shutting down and close every connection (see Connections.shut_down)."""
        return self.connections.shut_down(self.flusher, grace_seconds)

    # -- from the door's connections

    def opened(self, connection: Connection) -> None:
        self.connections.opened(connection)

    def closed(self, connection: Connection) -> None:
        self.connections.closed(connection)
