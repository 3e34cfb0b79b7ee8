"""
One connection's life in the chat, whatever its door:

    admitted (bans, --max-clients, --max-per-ip) or refused in the door's words
      -> TCP options, the send queue, the flood gate, the timeouts, keep-alive
      -> input: heard (keep-alive) and activity (idle timeout); lines through
         the flood gate to the door's parser (`Wire.let_through`)
      -> output: the send queue (bounded: a reader too far behind is dropped)
      -> closing: the door's goodbye (`Wire.close`), or aborted
      -> lost: what the user sent and still waits in the flood queue is said,
         then the user leaves the chat and the limits

A door supplies only its wire (`Wire`): how to read a line, how to say no,
how to tell a user a timeout, how to ping and how to close.  Everything
else is here, once, for every door.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.core.session import ISession
from chatd.net.addresses import describe_peer, peer_host
from chatd.net.door import Door
from chatd.net.flow import FloodGate, SendQueue
from chatd.net.handshake import TLSEntrance, is_tls
from chatd.net.limits import Slot
from chatd.net.keepalive import KeepAlive

log = Logger()

LOGIN = "login"
IDLE = "idle"
PING = "ping"


class Wire(Protocol):
    """A door's part of a connection: what its life asks of it."""

    def let_through(self, text: str) -> None:
        """A line (a message) the flood gate let through: parse it and hand it to the chat."""

    def refuse(self, reason: str) -> None:
        """Refused before being admitted: say why, in the door's form (the life closes the connection)."""

    def timed_out(self, timeout: str) -> str:
        """
        Tell the user they are being closed for a timeout (LOGIN, IDLE or
        PING), in the door's words; the result is the reason for its goodbye.
        """

    def ping(self) -> None:
        """Ask a silent peer for a word (IRC's PING, WebSocket's ping)."""

    def shutting_down(self) -> None:
        """Tell the user the server is shutting down."""

    def goodbye(self, reason: str) -> None:
        """The door's last words, after everything delivered (IRC's ERROR line); most doors say nothing here."""

    def close(self) -> None:
        """Close the connection once what was written is out (telnet's FIN, a WebSocket close frame)."""


class ConnectionLife:
    """
    One connection of a door, from admission to leaving the chat (see the
    module's docstring).  `transport` is the TCP transport (writes, pauses,
    aborts).  Kept small: there is one for every connection, and a storm
    of them.

    Its two timeouts: --login-timeout seconds to choose a nickname (on the
    door's timer wheel, to the whole second), and then, with --idle-timeout,
    that long without input before it is closed.  A user whose lines are
    still being let through the flood queue is not idle: the time counts
    from the last line let through.  (They are fields here, not an object
    of their own: every line read restarts the idle one, so that is a call
    less per line.)
    """

    __slots__ = ("_door", "_wire", "session", "_transport", "address", "_slot", "_counted", "send_queue",
                 "flood_gate", "_login_second", "_idle_call", "_keepalive", "started", "closing", "lost", "logged_in",
                 "refused")

    def __init__(self, door: Door, wire: Wire, session: ISession, transport: Any, peer: IAddress) -> None:
        self._door = door
        self._wire = wire
        self.session = session
        self._transport = transport
        self.address = peer_host(peer)
        self._slot: Slot | None = None  # a place in the limits taken by another (the web's HTTP connection)
        self._counted = False  # counted in the limits by this life
        # The door's hot paths write to the send queue and read into the flood gate directly.
        self.send_queue: SendQueue | None = None
        self.flood_gate: FloodGate | None = None
        # The login timeout, until a nickname is chosen: its second on the door's timer wheel.
        self._login_second: int | None = None
        self._idle_call: IDelayedCall | None = None  # the idle timeout, after (with --idle-timeout)
        self._keepalive: KeepAlive | None = None
        self.started = False  # admitted and counted, until it leaves
        self.closing = False  # chatd is closing it: no more input is read
        self.lost = False  # the transport is closed
        self.logged_in = False
        self.refused = False  # refused at the door: never admitted

    @property
    def peer(self) -> IAddress:
        """The peer's address, asked of the transport when the log needs it (kept, 96 bytes a connection)."""
        peer: IAddress = self._transport.getPeer()
        return peer

    # -- from the door: the life's steps

    def admit(self, consumer: Any = None, ping_interval: float | None = None, slot: Slot | None = None,
              login_deadline: float | None = None) -> bool:
        """
        Count the connection in the limits and start its life, or refuse it
        (False).  `consumer` is what the send queue registers with as a
        producer (the transport, unless something already is its producer: a
        web request); a `ping_interval` turns keep-alive pings on; a `slot`
        is a place in the limits already taken (the web door's HTTP
        connection), so the limits are not asked again.  A `login_deadline`
        (a TLS connection's, from its TCP connect) is when the login timeout
        ends, instead of --login-timeout from now.
        """
        door = self._door
        if slot is None:
            moderation = door.server.moderation
            refusal = "you are banned from this server" if moderation is not None and moderation.is_banned(
                self.address) else door.limits.admit(self.address)
            if refusal is not None:
                log.info("refused {peer}{what}: {refusal}", peer=describe_peer(self.peer), what=door.log_name,
                         refusal="banned" if refusal.startswith("you are banned") else refusal)
                self.closing = self.refused = True
                self._wire.refuse(refusal)
                self._wire.close()
                return False
            self._counted = True
        self._slot = slot
        self._start(consumer, ping_interval, login_deadline)
        return True

    def _start(self, consumer: Any, ping_interval: float | None, login_deadline: float | None) -> None:
        door, settings, transport = self._door, self._door.settings, self._transport
        self.started = True
        door.opened(self)
        self.send_queue = SendQueue(transport, settings.send_queue_bytes, self, door.flusher,
                                    consumer=consumer)
        self.flood_gate = FloodGate(
            door.clock, settings.rate_lines_per_second, settings.rate_burst_lines, settings.flood_queue_lines,
            self, transport, door.counts)
        # Keep-alive and no Nagle (chatd.net.twisted_private.CONNECTION_OPTIONS),
        # unless the connection has them from its listener already.
        if not getattr(transport, "options_from_listener", False):
            for option in ("setTcpKeepAlive", "setTcpNoDelay"):
                set_option = getattr(transport, option, None)
                if set_option is not None:
                    set_option(True)
        login_seconds = settings.login_timeout_seconds
        if login_deadline is not None:
            login_seconds = max(0.0, login_deadline - door.clock.seconds())
        self._login_second = door.timers.schedule(self, login_seconds)  # on the door's one timer: see `due`
        if ping_interval is not None:
            self._keepalive = KeepAlive(door.timers, ping_interval, self)
        # No log line yet: one when a nickname is chosen (the server's), or one
        # when the connection closes without.  A login storm of thousands is
        # then thousands of lines, not twice as many.
        door.server.arrive(self.session)

    def heard(self) -> None:
        """Anything came from the peer: it is not gone (keep-alive)."""
        if self._keepalive is not None:
            self._keepalive.heard = True

    def activity(self) -> None:
        """Input from the user: the idle timeout starts over."""
        idle = self._idle_call
        if idle is None:
            return
        if idle.active():
            idle.reset(self._door.settings.idle_timeout_seconds)
        else:  # it has just fired
            self._idle_call = self._door.clock.callLater(self._door.settings.idle_timeout_seconds, self._idle_over)

    def line(self, text: str) -> None:
        """A line (a message) read: through the flood gate to the door's parser."""
        if self.flood_gate is not None and not self.closing:
            self.flood_gate.line(text)

    def chose_nickname(self) -> None:
        """The user is in the chat: the login timeout is over, the idle one begins."""
        self.logged_in = True
        self._cancel_login_timeout()
        idle_timeout = self._door.settings.idle_timeout_seconds
        if idle_timeout > 0 and self.started and not self.lost:  # not once its timers are stopped
            self._idle_call = self._door.clock.callLater(idle_timeout, self._idle_over)

    @property
    def login_deadline(self) -> float | None:
        """When the login timeout ends (None: logged in, or not started)."""
        second = self._login_second
        return None if second is None else float(second)

    @property
    def tls(self) -> bool:
        """Whether the connection runs over TLS."""
        return is_tls(self._transport)

    def write(self, data: bytes) -> None:
        if self.send_queue is not None:
            self.send_queue.write(data)
        elif not self.lost:  # refused before being admitted
            self._transport.write(data)

    def after_input(self, then: Callable[[], None]) -> None:
        """Call `then` once every line waiting in the flood queue has been let through (at once if none)."""
        if self.flood_gate is None:
            then()
        else:
            self.flood_gate.when_drained(then)

    def leave_chat(self, reason: str) -> None:
        """Leave the chat (if in it), for `reason`."""
        self._door.server.depart(self.session, reason)

    def disconnect(self, reason: str) -> None:
        """Close once everything delivered has been sent, with the door's goodbye."""
        first = not self.closing
        self.closing = True
        if first:
            self._wire.goodbye(reason)
        if self.send_queue is not None:
            self.send_queue.close()  # what is queued goes to the transport before it closes
        if first and not self.lost:  # (a lost connection's transport is gone: nothing to close)
            self._wire.close()
        if self.lost:  # closed already, and was still saying its queued lines: no more
            self._gone("Connection lost")

    def abort(self) -> None:
        """Close now, whatever is still unsent."""
        self._transport.abortConnection()

    def shutting_down(self) -> None:
        self._wire.shutting_down()

    def start_tls(self, entrance: TLSEntrance | None, first_bytes: bytes) -> bool:
        """
        The connection's first bytes were a ClientHello: it goes to TLS (this
        life ends, its place in the limits and its login deadline go with
        it), and a new session of the door serves it after the handshake.
        False if TLS is off (no entrance) or this is TLS already.
        """
        if entrance is None or self.tls:
            return False
        deadline = self.login_deadline
        self.hand_over("TLS")
        entrance.unwrap(self._transport, self.peer, first_bytes, deadline)
        return True

    def hand_over(self, door: str) -> None:
        """The connection goes to another door (with its place in the limits): this life ends, quietly."""
        self.closing = True
        self._end(door, quiet=True)
        if self.send_queue is not None:
            self.send_queue.close()  # no longer the transport's producer

    def connection_lost(self, reason: Failure) -> None:
        """
        The connection is closed, cleanly or not.  Lines the user sent before
        it went that still wait in the flood queue are still said, at the
        usual rate (what was sent was said), unless chatd itself was closing
        it; until then the user counts against the connection limits, so a
        reset cannot be used to pile up queued lines.  Then the user leaves:
        "Quit" for a clean close, "Connection lost" for anything else.
        """
        self.lost = True
        self._stop_timers()
        leaving = "Quit" if reason.check(ConnectionDone) else "Connection lost"
        if self.flood_gate is None or self.closing:
            self._gone(leaving)
        else:
            self.flood_gate.when_drained(lambda: self._gone(leaving))

    # -- the end

    def _gone(self, reason: str) -> None:
        """Closed, and nothing it sent is left to say: it leaves the chat and the counts."""
        self._end(reason)

    def _end(self, reason: str, quiet: bool = False) -> None:
        self._stop_timers()
        if self.flood_gate is not None:
            self.flood_gate.stop()
        if self._slot is not None:
            self._slot.release()
        elif self._counted:
            self._counted = False
            self._door.limits.release(self.address)
        if self.started:
            self.started = False
            if not self.logged_in and not quiet:
                log.info("{peer}{what} left before choosing a nickname ({reason})", peer=describe_peer(self.peer),
                         what=self._door.log_name, reason=reason)
            self.leave_chat(reason)
            self._door.closed(self)

    def _stop_timers(self) -> None:
        self._cancel_login_timeout()
        _cancel(self._idle_call)
        self._idle_call = None
        if self._keepalive is not None:
            self._keepalive.stop()

    # -- the flood gate, the timers and the send queue

    def let_through(self, text: str) -> None:
        if self.closing:
            return
        if self._idle_call is not None:  # a line let through from the flood queue is activity too
            self.activity()
        self._wire.let_through(text)

    def let_through_all(self, texts: Sequence[str]) -> None:
        """One read's lines, let through together: as let_through for each, until one closes the connection."""
        if self.closing:
            return
        if self._idle_call is not None:
            self.activity()
        wire = self._wire
        for text in texts:
            if self.closing:
                return
            wire.let_through(text)

    def due(self) -> None:
        """
        The login timeout's second has come (the door's timer wheel).  One
        timer for every connection still choosing a nickname, not a
        DelayedCall each: a login storm is thousands of them at once, each
        made and cancelled within a few milliseconds.
        """
        self._login_second = None
        self.disconnect(self._wire.timed_out(LOGIN))

    def _cancel_login_timeout(self) -> None:
        second = self._login_second
        if second is not None:
            self._login_second = None
            self._door.timers.cancel(self, second)

    def _idle_over(self) -> None:
        assert self.flood_gate is not None
        if self.flood_gate.waiting:  # lines still being let through: not idle
            self.activity()
            return
        self.leave_chat("Idle timeout")
        self.disconnect(self._wire.timed_out(IDLE))

    def ping_peer(self) -> None:
        """Keep-alive: the peer was silent for an interval."""
        if not self.closing:
            self._wire.ping()

    def peer_silent(self) -> None:
        """Keep-alive: the peer stayed silent after a ping."""
        if not self.closing:
            self.leave_chat("Ping timeout")
            self.disconnect(self._wire.timed_out(PING))

    def send_queue_exceeded(self) -> None:
        self._door.counts.send_queue_drops += 1
        log.info("{peer}{what} fell over {limit} bytes behind; dropping it", peer=describe_peer(self.peer),
                 what=self._door.log_name, limit=self._door.settings.send_queue_bytes)
        self.closing = True
        self.leave_chat("Send queue exceeded")
        self.abort()


def _cancel(call: IDelayedCall | None) -> None:
    if call is not None and call.active():
        call.cancel()
