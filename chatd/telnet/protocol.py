"""
The telnet front door: a TCP connection as a session of the chat server.

    bytes -> TelnetServer (negotiation.py) -> LineEditor (lineedit.py) -> clean (core/text.py)
          -> parse_line (parse.py) -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) / send(replies) -> lines (render.py)
          -> bytes in this connection's charset (dialect.py) -> socket

This front door owns its login dialogue (a greeting, then any line is the
nickname wanted), its syntax and every string it shows; /charset and /help
are answered here, because they belong to the connection, not the chat.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
from attrs import define, field, frozen
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProtocolFactory,
    IReactorTime,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.core import commands
from chatd.core.batch import Share
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.text import clean
from chatd.net.flow import FloodGate, SendQueue, unacknowledged_bytes
from chatd.net.addresses import describe_peer
from chatd.net.connection import Door, Timeouts, after_what_was_sent
from chatd.net.twisted_private import hand_over
from chatd.telnet import render
from chatd.telnet.charset import CharsetError, check_charset
from chatd.telnet.dialect import Outgoing, TelnetDialect, encode
from chatd.telnet.lineedit import Echo, Line, LineEditor, LineTooLong, Undecodable
from chatd.telnet.negotiation import TelnetServer, wrong_protocol
from chatd.telnet.parse import Charset, Help, Invalid, LineCommand, parse_line

log = Logger()

# After chatd's FIN: how long a client has to close by itself before the
# connection is reset, and how long to wait for a slow client to acknowledge
# what it was sent before resetting anyway.
RESET_AFTER_FIN_SECONDS = 0.5
MAX_UNACKNOWLEDGED_WAIT_SECONDS = 10.0
# How long a new connection waits for the greeting.  A client that speaks
# first within it is not a telnet user waiting to be greeted: a browser or
# curl sends its request together with the last packet of the TCP handshake
# (within microseconds here, a few milliseconds across a LAN's Wi-Fi), so
# it is served as HTTP; an IRC client's first line is served as IRC.  50 ms
# is ten times a LAN's round trip and half of the 100 ms at which a delay
# starts to be noticed: nobody waiting at a telnet prompt sees it.
GREETING_WAIT_SECONDS = 0.05


@implementer(ISession, IHalfCloseableProtocol)
class ChatProtocol(TelnetServer):
    """One user's connection."""

    # A TCP transport: ITCPTransport, and an IPushProducer (pause and resume reading).
    transport: Any

    def __init__(self, factory: ChatFactory, peer: IAddress) -> None:
        super().__init__()
        self.factory = factory
        self._server = factory.server
        self._settings = factory.settings
        self.peer = peer
        self._editor = LineEditor(self._settings.max_line_bytes, self._settings.charset)
        self.dialect = TelnetDialect.of(self._settings.charset, self._server.default_channel)
        self._hinted_charset = False
        self._closing = False
        self._lost = False  # the transport is closed
        self._read_closed = False  # the client sent EOF
        self._write_closed = False  # chatd sent everything and its FIN
        self._reset_timer: IDelayedCall | None = None
        self._admitted = False
        self._first_data = True
        self._awaiting_greeting = False  # until the greeting is sent (or the first bytes make it moot)
        self._timeouts: Timeouts | None = None
        self.logged_in = False  # has chosen a nickname
        self._send_queue: SendQueue | None = None
        self._flood_gate: FloodGate | None = None

    @property
    def charset(self) -> str:
        return self._editor.charset

    # -- from the transport

    @property
    def address(self) -> str:
        return self._host

    def connectionMade(self) -> None:
        moderation = self._server.moderation
        if moderation is not None and moderation.is_banned(self._host):
            log.info("refused {peer}: banned", peer=describe_peer(self.peer))
            self._tell(render.error("you are banned from this server"))
            self.disconnect("banned")
            return
        refusal = self.factory.limits.admit(self._host)
        if refusal is not None:
            log.info("refused {peer}: {refusal}", peer=describe_peer(self.peer), refusal=refusal)
            self._tell(render.error(refusal))
            self.disconnect(refusal)
            return
        self._admitted = True
        self.factory.opened(self)
        settings = self._settings
        send_queue = self._send_queue = SendQueue(
            self.transport, settings.send_queue_bytes, self._send_queue_exceeded, self.factory.flusher
        )
        self._flood_gate = FloodGate(
            self.factory.clock, settings.rate_lines_per_second, settings.rate_burst_lines,
            settings.flood_queue_lines, self._line_received, self.transport.pauseProducing,
            self.transport.resumeProducing, self.factory.counts,
        )
        # Keepalive finds peers that vanished without a word (a laptop closed,
        # Wi-Fi gone). No Nagle: chat writes are whole messages, and Nagle's
        # algorithm meeting delayed ACKs holds them back about 40 ms.
        for option in ("setTcpKeepAlive", "setTcpNoDelay"):
            set_option = getattr(self.transport, option, None)
            if set_option is not None:
                set_option(True)
        # No log line yet: one when a nickname is chosen (the server's), or
        # one when the connection closes without (see _gone).  A login storm
        # of thousands is then thousands of lines, not twice as many.
        self._timeouts = Timeouts(self.factory.clock, settings, self, self._flood_gate)
        self._server.arrive(self)
        self._awaiting_greeting = True
        self.factory.greeting_wait.add(self)

    def greeting_due(self) -> None:
        """GREETING_WAIT_SECONDS have passed in silence: a telnet user, waiting to be greeted."""
        if self._awaiting_greeting and not self._closing:
            self._greet()

    def _greet(self) -> None:
        """The welcome and the prompt for a nickname, at the end of this turn."""
        self._awaiting_greeting = False
        self._write(Outgoing(greeting(self._server)).encoded(self.charset))

    @property
    def _host(self) -> str:
        return str(getattr(self.peer, "host", self.peer))

    def dataReceived(self, data: bytes) -> None:
        if not self._admitted or self._closing:
            return
        if self._first_data:
            self._first_data = False
            if not self._first_words(data):
                return
        assert self._timeouts is not None
        self._timeouts.activity()
        # Whatever goes wrong with one connection's input stays with that
        # connection: it is logged and this connection closed, the rest go on.
        try:
            super().dataReceived(data)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=describe_peer(self.peer))
            self.transport.abortConnection()

    def _first_words(self, data: bytes) -> bool:
        """
        A connection's first bytes: False if they show it is not a telnet
        user's, and it was handed on or closed.  A browser that speaks before
        the greeting (`http://HOST:8088/`) is served the web page, as on the
        web port, and an IRC client (its first line CAP, NICK, USER or PASS)
        as on the IRC port.  A TLS client is closed (chatd speaks no TLS
        yet).  Any other
        client that types ahead (`printf 'alice\nhi\n' | nc HOST 8088`) is
        greeted at once, and its first answer goes out with the greeting.
        """
        kind = wrong_protocol(data)
        waiting, self._awaiting_greeting = self._awaiting_greeting, False
        if kind == "TLS":
            log.info("{peer} spoke TLS, which chatd does not; closing", peer=describe_peer(self.peer))
            self.disconnect("TLS client")
            return False
        if kind == "HTTP" and waiting and self.factory.web is not None:
            self._hand_over(self.factory.web, "web", data)
            return False
        if kind == "IRC" and waiting and self.factory.irc is not None:
            self._hand_over(self.factory.irc, "IRC", data)
            return False
        if kind == "HTTP":
            here = self.transport.getHost()
            self._tell(render.wrong_protocol(kind, here.host, here.port))
            self.disconnect(f"{kind} client")
            return False
        if waiting:
            self._greet()
        return True

    def _hand_over(self, door: IProtocolFactory, name: str, data: bytes) -> None:
        """
        Hand this connection, and its place in the connection limits, to
        another front door: it was a browser (or curl), or an IRC client, all
        along.
        """
        self._closing = True
        self._gone(name)
        assert self._send_queue is not None
        self._send_queue.close()  # no longer the transport's producer
        hand_over(self.transport, door.buildProtocol(self.peer), data)

    def readConnectionLost(self) -> None:
        """
        The client sent EOF (nc at the end of its input): a last line without
        a line end still counts, the user leaves with Quit, and what was
        already queued for them is sent before the connection closes.
        """
        self._read_closed = True
        if self._editor.partial and not self._closing:
            self.applicationDataReceived(b"\n")
        if self._flood_gate is None:  # refused before being admitted
            self.transport.loseConnection()
            return
        self._flood_gate.when_drained(self._end_of_input)

    def _end_of_input(self) -> None:
        self.leave_chat("Quit")
        self.disconnect("end of input")

    def writeConnectionLost(self) -> None:
        """
        Everything for the client was sent, and chatd's FIN after it (see
        disconnect).  A client that closes when the server does (telnet)
        closes now.  Others wait for their own input to end first (nc and
        plink -raw stay open until the user presses Enter or Ctrl-D), so once
        the client has acknowledged all it was sent, the connection is reset,
        which ends them.
        """
        self._write_closed = True
        if self._read_closed:
            self.transport.loseConnection()
            return
        self._reset_timer = self.factory.clock.callLater(RESET_AFTER_FIN_SECONDS, self._reset_once_delivered)

    def _reset_once_delivered(self, waited: float = RESET_AFTER_FIN_SECONDS) -> None:
        if unacknowledged_bytes(self.transport) and waited < MAX_UNACKNOWLEDGED_WAIT_SECONDS:
            self._reset_timer = self.factory.clock.callLater(
                RESET_AFTER_FIN_SECONDS, self._reset_once_delivered, waited + RESET_AFTER_FIN_SECONDS)
            return
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        The connection is closed, cleanly or not.  Lines the user sent
        before it went that still wait in the flood queue are still said,
        at the usual rate, as after an EOF: what was sent was said.  Until
        then the user counts against the connection limits, so a reset
        cannot be used to pile up queued lines.
        """
        super().connectionLost(reason)
        self._lost = True
        if self._timeouts is not None:
            self._timeouts.stop()
        self._awaiting_greeting = False
        if self._reset_timer is not None and self._reset_timer.active():
            self._reset_timer.cancel()
        after_what_was_sent(reason, self._flood_gate, self._closing, self._gone)

    def _gone(self, reason: str) -> None:
        """The connection is closed and nothing it sent is left to say: it leaves the chat and the counts."""
        if self._timeouts is not None:
            self._timeouts.stop()
        if self._flood_gate is not None:
            self._flood_gate.stop()
        if self._admitted:
            self._admitted = False
            if not self.logged_in and reason not in ("web", "IRC"):
                log.info("{peer} left before choosing a nickname ({reason})", peer=describe_peer(self.peer), reason=reason)
            self.factory.limits.release(self._host)
            self.leave_chat(reason)
            self.factory.closed(self)

    def leave_chat(self, reason: str) -> None:
        self._server.depart(self, reason)

    # -- timers

    def login_timed_out(self) -> None:
        self._tell(render.login_timeout(self._settings.login_timeout_seconds))
        self.disconnect("login timeout")

    def idle_timed_out(self) -> None:
        self.leave_chat("Idle timeout")
        self._tell(render.idle_timeout(self._settings.idle_timeout_seconds))
        self.disconnect("idle timeout")

    def _send_queue_exceeded(self) -> None:
        self.factory.counts.send_queue_drops += 1
        log.info("{peer} fell over {limit} bytes behind; dropping it", peer=describe_peer(self.peer),
                 limit=self._settings.send_queue_bytes)
        self._closing = True
        self.leave_chat("Send queue exceeded")
        self.transport.abortConnection()

    def _logged_in(self) -> None:
        self.logged_in = True
        assert self._timeouts is not None
        self._timeouts.logged_in()

    # -- from the telnet layer

    def echo_changed(self, echoing: bool) -> None:
        self._editor.echo = echoing

    def window_size_changed(self, columns: int, rows: int) -> None:
        self._editor.columns = columns

    def applicationDataReceived(self, data: bytes) -> None:
        for item in self._editor.feed(data):
            match item:
                case Line(text):
                    assert self._flood_gate is not None
                    self._flood_gate.line(text)
                case Echo(text):
                    self._write(encode(text, self.charset))
                case LineTooLong():
                    self._tell(render.line_too_long(self._settings.max_line_bytes))
                case Undecodable():
                    if not self._hinted_charset:
                        self._hinted_charset = True
                        self._tell(render.undecodable_hint(self.charset))

    def _line_received(self, text: str) -> None:
        if self._closing:
            return
        assert self._timeouts is not None
        self._timeouts.activity()  # a line let through from the flood queue is activity too
        command = parse_line(clean(text))
        if command is None:
            return
        if isinstance(command, Charset):
            self._set_charset(command.name)
            return
        if self.logged_in and not isinstance(command, _FRONT_DOOR_COMMANDS):
            self._server.handle(self, command)  # the usual line, the short way
            return
        carry_out(self._server, self, command)
        if not self.logged_in and self._server.nick_of(self) is not None:
            self._logged_in()

    def _set_charset(self, name: str | None) -> None:
        if name is None:
            self._tell(render.charset_shown(self.charset))
            return
        try:
            charset = check_charset(name)
        except CharsetError as refusal:
            self._tell(render.error(str(refusal)))
            return
        # Through the chat, as a reply: what it has for this user before this
        # goes out first, in the charset they had.
        self._server.tell(self, CharsetSwitch(charset))

    def _switch_charset(self, charset: str) -> str:
        self._editor.set_charset(charset)
        self.dialect = TelnetDialect.of(charset, self._server.default_channel)
        self._hinted_charset = False
        return render.charset_is(charset)

    def _tell(self, line: str) -> None:
        self._server.tell(self, line)

    # -- ISession, from the chat server

    def deliver(self, share: Share) -> None:
        if self.echoing and self._editor.partial:
            self._write_above_input(share.encoded(self.dialect))
        elif self._send_queue is not None:
            self._send_queue.write_parts(share.parts(self.dialect))
        else:
            self._write(share.encoded(self.dialect))

    def send(self, replies: Sequence[object]) -> None:
        lobby = self._server.default_channel
        if type(replies[0]) is CharsetSwitch:
            replies = [self._switch_charset(replies[0].charset)]
        self._write_above_input(Outgoing([line for reply in replies for line in render.reply_lines(reply, lobby)])
                                .encoded(self.charset))

    def _write_above_input(self, data: bytes) -> None:
        partial = self._editor.partial if self.echoing else ""
        if partial:
            # The user is typing: print the message above their partial line,
            # then draw the partial line again, so nothing gets garbled.
            clear = self._editor.clear_partial()
            data = encode(clear, self.charset) + data + encode(partial, self.charset)
        self._write(data)

    def shutting_down(self) -> None:
        self._tell(render.shutting_down())

    def abort(self) -> None:
        self.transport.abortConnection()

    def disconnect(self, reason: str) -> None:
        """
        Close once everything delivered has been sent: chatd closes its side
        first (a FIN after the last byte) and the rest follows in
        writeConnectionLost.  A transport that cannot half-close just closes.
        """
        self._closing = True
        self._awaiting_greeting = False  # not greeted yet (refused, or shut down at once): no greeting after the farewell
        if self._send_queue is not None:
            self._send_queue.close()  # the transport waits for a registered producer
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None or self._read_closed or self._write_closed:
            self.transport.loseConnection()
        else:
            half_close()
        if self._lost:  # closed already, and was still saying its queued lines: no more
            self._gone("Connection lost")

    def _write(self, data: bytes) -> None:
        if self._send_queue is not None:
            self._send_queue.write(data)
        else:  # refused before being admitted
            self.transport.write(data)


@frozen
class CharsetSwitch:
    """This door's own reply to itself: from here on, the connection's charset is `charset`."""

    charset: str


# The commands this front door answers itself.
_FRONT_DOOR_COMMANDS = (Help, Invalid, Charset)


def greeting(server: ChatServer) -> tuple[str, str]:
    """The login dialogue's start: a welcome, and the question."""
    return render.welcome(server.name, server.everyone), render.choose_nickname()


def greet(server: ChatServer, session: ISession) -> None:
    """A new session is welcomed and asked for a nickname (ChatProtocol does the same, a turn later)."""
    server.arrive(session)
    server.tell(session, *greeting(server))


def carry_out(server: ChatServer, session: ISession, command: LineCommand) -> None:
    """
    One line's command, as this front door means it.  Until a nickname is
    chosen, a line is the nickname wanted, and every answer ends with the
    prompt for one.
    """
    logged_in = server.nick_of(session) is not None
    prompt = () if logged_in else (render.choose_nickname(),)
    match command:
        case Help():
            server.tell(session, *render.help_lines(server.moderation is not None), *prompt)
        case Invalid(reason):
            server.tell(session, render.error(reason), *prompt)
        case Charset():
            raise TypeError("/charset belongs to the connection")
        case _ if logged_in:
            server.handle(session, command)
        case commands.Say(text, None) | commands.Nick(text):
            server.handle(session, commands.LogIn(text))
            if server.nick_of(session) is None:
                server.tell(session, *prompt)
        case commands.Names(None):
            server.handle(session, command)
            server.tell(session, *prompt)
        case commands.Quit():
            server.handle(session, command)
        case _:
            server.tell(session, render.error("choose a nickname first"), *prompt)


class GreetingWait:
    """
    The connections waiting for their greeting, each until
    GREETING_WAIT_SECONDS after it came, with one timer for all of them: a
    login storm would otherwise make (and mostly cancel) a delayed call for
    every connection, which costs time and, kept, memory.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self._waiting: deque[tuple[float, ChatProtocol]] = deque()  # by when each is due, which is the order they came
        self._call: IDelayedCall | None = None

    def add(self, connection: ChatProtocol) -> None:
        self._waiting.append((self._clock.seconds() + GREETING_WAIT_SECONDS, connection))
        if self._call is None:
            self._call = self._clock.callLater(GREETING_WAIT_SECONDS, self._due)

    def _due(self) -> None:
        self._call = None
        now, waiting = self._clock.seconds(), self._waiting
        while waiting and waiting[0][0] <= now:
            waiting.popleft()[1].greeting_due()
        if waiting:
            self._call = self._clock.callLater(waiting[0][0] - now, self._due)


@define(slots=False)  # Factory keeps state in instance attributes of its own
class ChatFactory(Door, Factory[ChatProtocol]):
    """Builds a ChatProtocol for each telnet connection to the chat."""

    # The web page's HTTP server, for a browser at the chat port (None: --no-web),
    # and the IRC door, for an IRC client there (None: --no-irc).
    web: IProtocolFactory | None = None
    irc: IProtocolFactory | None = None
    greeting_wait: GreetingWait = field(default=attrs.Factory(lambda self: GreetingWait(self.clock), takes_self=True))
    noisy = False  # no "Starting factory" log lines

    def buildProtocol(self, addr: IAddress | None) -> ChatProtocol:
        assert addr is not None  # Twisted's TCP ports always pass the peer's address
        return ChatProtocol(self, addr)
