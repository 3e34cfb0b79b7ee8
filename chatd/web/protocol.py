"""
The web front door's WebSocket (`/chat` on the web port): one browser tab
as a session of the chat server.

    WebSocket message -> FloodGate (service/flow.py) -> parse_message (parse.py)
          -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) -> one text frame per turn (dialect.py)
               -> send(replies) -> one text frame each (render.py) -> socket

The protocol.  Every message, both ways, is a WebSocket text frame holding
one JSON object with a "type"; all text is UTF-8 and is shown as text.

From the browser (fields in [] may be left out; a channel left out is the
user's current one):

    {"type": "login", "nick": N}                 choose a nickname: the first message
    {"type": "say", "text": T, ["channel": C]}   a public message
    {"type": "act", "text": T, ["channel": C]}   an action (/me)
    {"type": "msg", "to": N, "text": T}          a private message
    {"type": "join", "channel": C}               join (creating it if needed) and talk there
    {"type": "part", ["channel": C], ["reason": R]}
    {"type": "topic", ["channel": C], ["topic": T]}   show the topic; set it; "" clears it
    {"type": "names", ["channel": C]}            the channel's members; without: everyone online
    {"type": "channels"}                         the channel list
    {"type": "nick", "nick": N}                  rename
    {"type": "quit", ["reason": R]}
    {"type": "oper", "password": P}              then, as an operator:
    {"type": "kick", "nick": N, ["reason": R]}
    {"type": "ban", "target": NICK_OR_ADDRESS, ["minutes": M]}   60 unless given; 0: until restart
    {"type": "unban", "address": A}
    {"type": "bans"}

To the browser:

    {"type": "welcome", "server": NAME, "users": N}           on connecting
    {"type": "logged-in", "nick": N, "channel": C, "history": [EVENT ...]}
    {"type": "events", "events": [EVENT ...]}                  what happened: one frame per turn
    {"type": "channel-joined", "channel": C, "count": N, "topic": T, "history": [EVENT ...]}
    {"type": "now-talking-in", "channel": C}                   a join of a channel one is in
    {"type": "channel-parted", "channel": C, "current": C or null}
    {"type": "members", "channel": C, "nicks": [N ...]}        names of a channel
    {"type": "users", "nicks": [N ...]}                        names without a channel
    {"type": "channels", "channels": [{"name": C, "count": N, "topic": T} ...]}
    {"type": "topic", "channel": C, "topic": T}                "" when none is set
    {"type": "private", "sender": N, "text": T}                a private message to you
    {"type": "private-sent", "to": N, "text": T}               yours, as sent
    {"type": "operator"}, {"type": "kicked", "by": N, "reason": R},
    {"type": "ban-added", "address": A, "minutes": M}, {"type": "ban-lifted", "address": A},
    {"type": "bans", "bans": [TEXT ...]}, {"type": "bye"}
    {"type": "contact", "contact": BOOL, "gap": BOOL}          in a cluster: this server lost
        (false) or regained (true) contact with the others; gap: some of what
        was said elsewhere meanwhile is lost
    {"type": "error", "reason": TEXT, "code": CODE}            a refusal; nothing closes
    {"type": "closing", "reason": TEXT, "code": CODE}          the server closes the connection next

An EVENT is an array: its kind, its unix time in seconds, then the fields
the transcript has for it (README, "Transcript"), in this order:

    ["said", TS, CHANNEL, NICK, TEXT]          a message
    ["acted", TS, CHANNEL, NICK, TEXT]         an action (/me)
    ["joined", TS, CHANNEL, NICK, COUNT]       COUNT: members now
    ["parted", TS, CHANNEL, NICK, REASON, COUNT]
    ["topic", TS, CHANNEL, NICK, TOPIC]        "" when cleared
    ["crowd", TS, CHANNEL, JOINED, LEFT, COUNT, [NICK ...], [NICK ...]]
        in a channel above --quiet-joins: how many came and went since the
        last one, who of them is in now and who is gone (for member lists)
    ["renamed", TS, OLD, NEW]
    ["left", TS, NICK, REASON]                 left the chat, so every channel

(Arrays, not objects with keys: every event goes to every member, and with
chat-sized lines keys made each delivery twice the bytes of telnet's.)

Error codes are the core's (nickname-taken, not-in-channel, banned, ...),
plus line-too-long and bad-request.  A "closing" code is one of
bad-message (not JSON, not an object, an unknown type or a binary message:
the close code is 1003, or 1009 for a message over the bound),
login-timeout, idle-timeout, ping-timeout and shutting-down.  (A browser
the limits refuse, or whose address is banned, gets an HTTP 503 or 403 to
its handshake instead.)  The page reconnects by itself after shutting-down
and after a connection lost without a word; after the others, a kick or a
ban, it says why and waits for its user.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define
from twisted.internet.interfaces import IAddress
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from chatd.core import commands
from chatd.core.batch import Share
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.net.flow import FloodGate, SendQueue
from chatd.net.limits import Slot
from chatd.net.addresses import describe_peer
from chatd.net.connection import Door, KeepAlive, Timeouts, after_what_was_sent
from chatd.net.twisted_private import after_each_read, partial_message_size, tcp_transport_of
from chatd.web import render
from chatd.web.dialect import JSON, text_frame
from chatd.web.parse import Invalid, TooLong, Unreadable, parse_message

log = Logger()

# A ping after this long without a word from the browser; another as long
# without an answer, and the connection is closed ("Ping timeout").
PING_INTERVAL_SECONDS = 30.0
# WebSocket close codes (RFC 6455, 7.4.1).
NORMAL_CLOSURE = 1000
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009


def max_message_size(max_line_bytes: int) -> int:
    """The longest message read at all: room for a text of --max-line bytes, JSON-escaped, and the other fields."""
    return 2 * max_line_bytes + 1024


@implementer(ISession)
class WebSession:
    """One browser tab's WebSocket (a twisted.web.websocket WebSocketProtocol) as a chat session."""

    dialect = JSON

    def __init__(self, factory: WebSessions, request: Request) -> None:
        self.factory = factory
        self._server = factory.server
        self._settings = factory.settings
        self._request = request
        peer: IAddress = request.getClientAddress()
        self.address = str(getattr(peer, "host", peer))
        self._peer = describe_peer(peer)
        # The HTTP connection's place in the connection limits, which this session now holds.
        self._slot: Slot | None = getattr(request.channel, "slot", None)
        self._websocket: Any = None
        self._tcp: Any = None
        self._send_queue: SendQueue | None = None
        self._flood_gate: FloodGate | None = None
        self._started = False
        self._closing = False
        self._lost = False
        self.logged_in = False
        self._timeouts: Timeouts | None = None
        self._keepalive: KeepAlive | None = None

    # -- from twisted.web.websocket

    def negotiationStarted(self, transport: Any) -> None:
        self._websocket = transport

    def negotiationFinished(self) -> None:
        """The WebSocket is open: the browser is welcomed, and waits for its nickname."""
        self._started = True
        self.factory.opened(self)
        tcp = self._tcp = tcp_transport_of(self._websocket)
        settings = self._settings
        # Paused and resumed through the request: the HTTP channel is the TCP
        # transport's producer and passes pauses on to the request's.  (The
        # WebSocket's own attachProducer registers with the TCP transport,
        # which refuses a second producer.)
        self._send_queue = SendQueue(tcp, settings.send_queue_bytes, self._send_queue_exceeded,
                                     self.factory.flusher, consumer=self._request)
        self._flood_gate = FloodGate(
            self.factory.clock, settings.rate_lines_per_second, settings.rate_burst_lines,
            settings.flood_queue_lines, self._message_let_through, tcp.pauseProducing, tcp.resumeProducing,
            self.factory.counts,
        )
        set_keepalive = getattr(tcp, "setTcpKeepAlive", None)
        if set_keepalive is not None:
            set_keepalive(True)
        after_each_read(self._request.channel, self._check_partial_message)
        clock = self.factory.clock
        self._timeouts = Timeouts(clock, settings, self, self._flood_gate)
        self._keepalive = KeepAlive(clock, PING_INTERVAL_SECONDS, self._ping, self._ping_timed_out)
        self._server.arrive(self)
        self._send_queue.write(text_frame(render.welcome(self._server.name, self._server.everyone)))

    def textMessageReceived(self, message: str) -> None:
        self._heard()
        if self._closing or self._flood_gate is None:
            return
        limit = max_message_size(self._settings.max_line_bytes)
        if len(message) > limit:  # whole in one read, so not seen by _check_partial_message: not queued either
            self._refuse_input(f"message too long (max {limit} bytes)", MESSAGE_TOO_BIG)
            return
        # Whatever goes wrong with one connection's input stays with that
        # connection: it is logged and this connection closed, the rest go on.
        try:
            self._flood_gate.line(message)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=self._peer)
            self.abort()

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        self._heard()
        self._refuse_input("binary messages are not part of the chat protocol", UNSUPPORTED_DATA)

    def pongReceived(self, payload: bytes) -> None:
        self._heard()

    def connectionLost(self, reason: Failure) -> None:
        """
        The connection is closed.  As on telnet, messages that still wait
        in the flood queue are still said at the usual rate, then the user
        leaves.
        """
        self._lost = True
        if self._timeouts is not None:
            self._timeouts.stop()
        if self._keepalive is not None:
            self._keepalive.stop()
        after_what_was_sent(reason, self._flood_gate, self._closing, self._gone)

    def _gone(self, reason: str) -> None:
        if self._flood_gate is not None:
            self._flood_gate.stop()
        if self._slot is not None:
            self._slot.release()
        if self._started:
            self._started = False
            if not self.logged_in:
                log.info("{peer} (web) left before choosing a nickname ({reason})", peer=self._peer, reason=reason)
            self.leave_chat(reason)
            self.factory.closed(self)

    def leave_chat(self, reason: str) -> None:
        self._server.depart(self, reason)

    # -- input

    def _check_partial_message(self) -> None:
        limit = max_message_size(self._settings.max_line_bytes)
        if not self._closing and partial_message_size(self._websocket) > limit:
            self._refuse_input(f"message too long (max {limit} bytes)", MESSAGE_TOO_BIG)

    def _message_let_through(self, message: str) -> None:
        if self._closing:
            return
        assert self._timeouts is not None
        self._timeouts.activity()
        max_line = self._settings.max_line_bytes
        parsed = parse_message(message, max_line)
        match parsed:
            case None:
                pass
            case Unreadable(reason):
                self._refuse_input(reason, UNSUPPORTED_DATA)
            case Invalid(reason, code):
                self._tell(render.error(reason, code))
            case TooLong():
                self._tell(render.line_too_long(max_line))
            case commands.LogIn(nick) | commands.Nick(nick) if not self.logged_in:
                self._server.handle(self, commands.LogIn(nick))
                if self._server.nick_of(self) is not None:
                    self._logged_in()
            case _:
                self._server.handle(self, parsed)

    def _refuse_input(self, reason: str, close_code: int) -> None:
        """Input this door cannot read: the browser is told, and the connection closes."""
        if self._closing:
            return
        log.info("{peer} (web) sent what chatd cannot read ({reason}); closing", peer=self._peer, reason=reason)
        self.leave_chat("Quit")
        self._tell(render.bad_message(reason))
        self._close(close_code)

    # -- timers

    def _logged_in(self) -> None:
        self.logged_in = True
        assert self._timeouts is not None
        self._timeouts.logged_in()

    def login_timed_out(self) -> None:
        self._tell(render.login_timeout(self._settings.login_timeout_seconds))
        self.disconnect("login timeout")

    def idle_timed_out(self) -> None:
        self.leave_chat("Idle timeout")
        self._tell(render.idle_timeout(self._settings.idle_timeout_seconds))
        self.disconnect("idle timeout")

    def _heard(self) -> None:
        if self._keepalive is not None:
            self._keepalive.heard = True

    def _ping(self) -> None:
        if not self._closing:
            self._websocket.ping(b"chatd")

    def _ping_timed_out(self) -> None:
        if not self._closing:
            self.leave_chat("Ping timeout")
            self._tell(render.ping_timeout())
            self.disconnect("ping timeout")

    def _send_queue_exceeded(self) -> None:
        self.factory.counts.send_queue_drops += 1
        log.info("{peer} (web) fell over {limit} bytes behind; dropping it", peer=self._peer,
                 limit=self._settings.send_queue_bytes)
        self._closing = True
        self.leave_chat("Send queue exceeded")
        self.abort()

    def _tell(self, message: bytes) -> None:
        self._server.tell(self, message)

    # -- ISession, from the chat server

    def deliver(self, share: Share) -> None:
        if self._send_queue is not None:
            self._send_queue.write_parts(share.parts(JSON))

    def send(self, replies: Sequence[object]) -> None:
        if self._send_queue is not None:
            for reply in replies:
                self._send_queue.write(text_frame(render.reply(reply)))

    def disconnect(self, reason: str) -> None:
        """Close once everything delivered has been sent, with WebSocket's closing handshake."""
        self._close(NORMAL_CLOSURE)

    def shutting_down(self) -> None:
        self._tell(render.shutting_down())

    def abort(self) -> None:
        if self._tcp is not None:
            self._tcp.abortConnection()

    def _close(self, code: int) -> None:
        if self._closing and code == NORMAL_CLOSURE:
            return
        self._closing = True
        if self._send_queue is not None:
            self._send_queue.close()  # what is queued goes to the transport before the close frame
        if self._lost:
            self._gone("Connection lost")
            return
        try:
            self._websocket.loseConnection(code)
        except Exception:  # the closing handshake had begun from the browser's side: just close
            self._tcp.loseConnection()


@define(slots=False)
class WebSessions(Door):
    """Builds a WebSession for each WebSocket to the chat (a twisted.web.websocket WebSocketServerFactory)."""

    def buildProtocol(self, request: Request) -> WebSession:
        return WebSession(self, request)

