"""
The telnet front door: a TCP connection as a session of the chat server.

    bytes -> TelnetServer (negotiation.py) -> LineEditor (lineedit.py) -> clean (core/text.py)
          -> parse_line (parse.py) -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) / send(replies) -> lines (render.py)
          -> bytes in this connection's charset (dialect.py) -> socket

This front door owns its login dialogue (a greeting, then any line is the
nickname wanted, and for a registered one the next line is its password),
its syntax and every string it shows; /charset and /help are answered
here, because they belong to the connection, not the chat.

While a password is typed, nothing of it is shown.  A client that echoes
what its user types itself (line mode: Linux telnet to any port but 23
starts so, without a word of telnet) is asked to stop: the server WILL
ECHO, as telnetd's login does, and then echoes nothing of the password but
its line end.  A client in character mode is echoed nothing but the line
end.  A client that agreed stays in character mode afterwards, with chatd
echoing and editing, as it would have been had it negotiated from the
start.  This is the one place chatd sends telnet bytes to a client that
has not shown it speaks telnet: nc shows them as a stray character or two
before the password prompt, and cannot hide the password.
"""

from __future__ import annotations

import re
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
from twisted.conch.telnet import ECHO
from twisted.internet.protocol import Factory, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.core import commands, replies as core_replies
from chatd.core.batch import Share
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.text import clean
from chatd.net.addresses import describe_peer, peer_host
from chatd.net.door import Door
from chatd.net.flow import unacknowledged_bytes
from chatd.net.handshake import login_deadline_of
from chatd.net.life import LOGIN, ConnectionLife
from chatd.net.twisted_private import hand_over, input_waiting
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
class TelnetSession(TelnetServer):
    """One user's connection."""

    # A TCP transport: ITCPTransport, and an IPushProducer (pause and resume reading).
    transport: Any
    lists_members = False  # /list NAME shows a channel's members
    quiet_lobby = False
    hears_tags = False
    hears_watched = False
    username = realname = ""  # no user name but the nickname, no real name
    # In slots, not a __dict__ (as TelnetServer's): Protocol's attributes, then the session's.
    __slots__ = ("factory", "transport", "connected", "_server", "_settings", "address", "_editor", "dialect",
                 "_hinted_charset", "_read_closed", "_write_closed", "_reset_timer", "_first_data",
                 "_awaiting_greeting", "_life", "awaits_password")

    def __init__(self, factory: TelnetDoor, peer: IAddress) -> None:
        super().__init__()
        self.factory = factory
        self._server = factory.server
        self._settings = factory.settings
        self.address = peer_host(peer)
        self._editor = LineEditor(self._settings.max_line_bytes, self._settings.charset)
        self.dialect = TelnetDialect.of(self._settings.charset, self._server.default_channel)
        self._hinted_charset = False
        self._read_closed = False  # the client sent EOF
        self._write_closed = False  # chatd sent everything and its FIN
        self._reset_timer: IDelayedCall | None = None
        self._first_data = True
        self._awaiting_greeting = False  # until the greeting is sent (or the first bytes make it moot)
        self._life: ConnectionLife | None = None
        self.awaits_password = False  # the next line is a registered nickname's password

    @property
    def peer(self) -> IAddress:
        """The peer's address, asked of the transport (not kept: 96 bytes a connection)."""
        peer: IAddress = self.transport.getPeer()
        return peer

    @property
    def charset(self) -> str:
        return self._editor.charset

    # -- from the transport

    def connectionMade(self) -> None:
        self._life = ConnectionLife(self.factory, self, self, self.transport, self.peer)
        if self._life.admit(login_deadline=login_deadline_of(self.transport)):
            self._awaiting_greeting = True
            self.factory.greeting_wait.add(self)

    def greeting_due(self) -> None:
        """
        GREETING_WAIT_SECONDS have passed in silence: a telnet user, waiting
        to be greeted.  Unless the first bytes are in fact here, not yet
        read: a busy server's reactor may come to the timer before the read
        (a storm of logins), and a greeting sent then would break a TLS
        client's handshake or a browser's page.  Those bytes decide, as if
        they had been read in time.
        """
        if self._awaiting_greeting and self._life is not None and not self._life.closing:
            if input_waiting(self.transport):
                return
            self._greet()

    def _greet(self) -> None:
        """The welcome and the prompt for a nickname, at the end of this turn."""
        self._awaiting_greeting = False
        self._write(Outgoing(greeting(self._server)).encoded(self.charset))

    def dataReceived(self, data: bytes) -> None:
        life = self._life
        if life is None or not life.started or life.closing:
            return
        if self._first_data:
            self._first_data = False
            if not self._first_words(data):
                return
        life.activity()
        # Whatever goes wrong with one connection's input stays with that
        # connection: it is logged and this connection closed, the rest go on.
        try:
            super().dataReceived(data)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=describe_peer(self.peer))
            life.abort()

    def _first_words(self, data: bytes) -> bool:
        """
        A connection's first bytes: False if they show it is not a telnet
        user's, and it was handed on or closed.  A browser that speaks before
        the greeting (`http://HOST:8088/`) is served the web page, as on the
        web port, and an IRC client (its first line CAP, NICK, USER or PASS)
        as on the IRC port.  A TLS client's connection becomes a TLS one, and
        is then served as a plain one would be (unless TLS is off: then it is
        closed).  Any other client that types ahead (`printf 'alice\nhi\n' |
        nc HOST 8088`) is greeted at once, and its first answer goes out
        with the greeting.
        """
        kind = wrong_protocol(data)
        waiting, self._awaiting_greeting = self._awaiting_greeting, False
        if kind == "TLS":
            life = self._life
            assert life is not None
            if not life.start_tls(self.factory.tls, data):
                log.info("{peer} spoke TLS{inside}; closing", peer=describe_peer(self.peer),
                         inside=" inside TLS" if life.tls else ", which is off here (--no-tls)")
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
        assert self._life is not None
        self._life.hand_over(name)
        hand_over(self.transport, door.buildProtocol(self.peer), data)

    def readConnectionLost(self) -> None:
        """
        The client sent EOF (nc at the end of its input): a last line without
        a line end still counts, the user leaves with Quit, and what was
        already queued for them is sent before the connection closes.
        """
        self._read_closed = True
        life = self._life
        assert life is not None
        if self._editor.partial and not life.closing:
            self.applicationDataReceived(b"\n")
        if life.refused:
            self.transport.loseConnection()
            return
        life.after_input(self._end_of_input)

    def _end_of_input(self) -> None:
        assert self._life is not None
        self._life.leave_chat("Quit")
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
        super().connectionLost(reason)
        self._awaiting_greeting = False
        if self._reset_timer is not None and self._reset_timer.active():
            self._reset_timer.cancel()
        if self._life is not None:
            self._life.connection_lost(reason)

    # -- from the telnet layer

    def echo_changed(self, echoing: bool) -> None:
        self._editor.echo = echoing

    def window_size_changed(self, columns: int, rows: int) -> None:
        self._editor.columns = columns

    def applicationDataReceived(self, data: bytes) -> None:
        life = self._life
        gate = None if life is None else life.flood_gate
        assert gate is not None
        # Most reads are whole, plain lines: those go through the flood gate
        # together.  (Unless one may be a /charset, which changes how the
        # lines after it are decoded: the editor then takes them one by one.)
        lines = None if _CHARSET_COMMAND.search(data) else self._editor.whole_lines(data)
        if lines is not None:
            gate.lines(lines)
            return
        for item in self._editor.feed(data):
            match item:
                case Line(text):
                    gate.line(text)
                case Echo(text):
                    if not self.awaits_password or text == "\r\n":  # a password shows nothing but its Enter
                        self._write(encode(text, self.charset))
                case LineTooLong():
                    self._tell(render.line_too_long(self._settings.max_line_bytes))
                case Undecodable():
                    if not self._hinted_charset:
                        self._hinted_charset = True
                        self._tell(render.undecodable_hint(self.charset))

    # -- the wire, for the connection's life

    def let_through(self, text: str) -> None:
        life = self._life
        assert life is not None
        if self.awaits_password:
            self._password_typed(text)
            return
        command = parse_line(clean(text))
        if command is None:
            return
        if isinstance(command, Charset):
            self._set_charset(command.name)
            return
        if life.logged_in and not isinstance(command, _FRONT_DOOR_COMMANDS):
            self._server.handle(self, command)  # the usual line, the short way
            return
        carry_out(self._server, self, command)

    def _password_typed(self, password: str) -> None:
        """The line after `*** NICK is registered; password:`; an empty one chooses another nickname."""
        self.awaits_password = False
        if password.strip():
            self._server.handle(self, commands.Identify(password))
        else:
            self._server.tell(self, render.choose_nickname())

    def _hide_password(self) -> None:
        """The next line is a password: nothing of it is shown (see the module's docstring)."""
        self.awaits_password = True
        if not self.echoing:
            self.will(ECHO).addErrback(lambda failure: None)  # refused, or already asked: the client echoes

    def refuse(self, reason: str) -> None:
        self._tell(render.error(reason))

    def timed_out(self, timeout: str) -> str:
        if timeout == LOGIN:
            self._tell(render.login_timeout(self._settings.login_timeout_seconds))
            return "login timeout"
        self._tell(render.idle_timeout(self._settings.idle_timeout_seconds))
        return "idle timeout"

    def ping(self) -> None:
        pass  # TCP's keepalive finds a telnet peer that vanished

    def shutting_down(self) -> None:
        self._tell(render.shutting_down())

    def goodbye(self, reason: str) -> None:
        pass  # what there was to say was said

    def close(self) -> None:
        """
        chatd closes its side first (a FIN after the last byte) and the rest
        follows in writeConnectionLost.  A transport that cannot half-close
        just closes.
        """
        self._awaiting_greeting = False  # not greeted yet (refused, or shut down at once): no greeting after the farewell
        half_close = getattr(self.transport, "loseWriteConnection", None)
        if half_close is None or self._read_closed or self._write_closed:
            self.transport.loseConnection()
        else:
            half_close()

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
        else:
            life = self._life
            queue = None if life is None else life.send_queue
            if queue is not None:
                queue.write_parts(share.parts(self.dialect))

    def send(self, replies: Sequence[object]) -> None:
        lobby = self._server.default_channel
        if type(replies[0]) is CharsetSwitch:
            replies = [self._switch_charset(replies[0].charset)]
        lines = [line for reply in replies for line in render.reply_lines(reply, lobby)]
        if self._settings.motd and any(type(reply) is core_replies.LoggedIn for reply in replies):
            lines += render.motd(self._settings.motd)
        if self.factory.tls is not None and any(type(reply) in _PASSWORD_SET for reply in replies):
            life = self._life
            if life is not None and not life.tls:
                here = self.transport.getHost()
                lines.append(render.unencrypted_password(here.host, here.port))
        self._write_above_input(Outgoing(lines).encoded(self.charset))
        life = self._life
        if life is not None and not life.logged_in:
            for reply in replies:
                if type(reply) is core_replies.PasswordWanted:
                    self._hide_password()
                elif type(reply) is core_replies.LoggedIn:
                    life.chose_nickname()

    def _write_above_input(self, data: bytes) -> None:
        partial = self._editor.partial if self.echoing and not self.awaits_password else ""
        if partial:
            # The user is typing: print the message above their partial line,
            # then draw the partial line again, so nothing gets garbled.
            clear = self._editor.clear_partial()
            data = encode(clear, self.charset) + data + encode(partial, self.charset)
        self._write(data)

    def disconnect(self, reason: str) -> None:
        """Close once everything delivered has been sent (see close)."""
        assert self._life is not None
        self._life.disconnect(reason)

    def _write(self, data: bytes) -> None:
        life = self._life
        assert life is not None
        queue = life.send_queue
        if queue is not None:  # admitted: the send queue, the short way (every reply and echo)
            queue.write(data)
        else:
            life.write(data)


@frozen
class CharsetSwitch:
    """This door's own reply to itself: from here on, the connection's charset is `charset`."""

    charset: str


# Replies to a password just chosen: on a plain connection, the user hears it was not encrypted.
_PASSWORD_SET = (core_replies.Registered, core_replies.PasswordChanged)

# A line that may be a /charset command (or its start).
_CHARSET_COMMAND = re.compile(rb"^/charset", re.IGNORECASE | re.MULTILINE)

# The commands this front door answers itself.
_FRONT_DOOR_COMMANDS = (Help, Invalid, Charset)


def greeting(server: ChatServer) -> tuple[str, str]:
    """The login dialogue's start: a welcome, and the question."""
    return render.welcome(server.name, server.everyone), render.choose_nickname()


def carry_out(server: ChatServer, session: TelnetSession, command: LineCommand) -> None:
    """
    One line's command, as this front door means it.  Until a nickname is
    chosen, a line is the nickname wanted, and every answer ends with the
    prompt for one.
    """
    logged_in = server.nick_of(session) is not None
    prompt = () if logged_in else (render.choose_nickname(),)
    match command:
        case Help():
            server.tell(session, *render.help_lines(server.moderation is not None, server.keeps_accounts), *prompt)
        case Invalid(reason):
            server.tell(session, render.error(reason), *prompt)
        case Charset():
            raise TypeError("/charset belongs to the connection")
        case commands.Identify(password, None) if " " in password:
            # /identify NICK PASSWORD, or a password with a space in it
            first, _, rest = password.partition(" ")
            named = server.registered(first)
            server.handle(session, commands.Identify(rest.strip(), named) if named else command)
        case _ if logged_in:
            server.handle(session, command)
        case commands.Say(text, None) | commands.Nick(text):
            server.handle(session, commands.LogIn(text))
            if server.nick_of(session) is None and not session.awaits_password:
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
        self._waiting: deque[tuple[float, TelnetSession]] = deque()  # by when each is due, which is the order they came
        self._call: IDelayedCall | None = None

    def add(self, connection: TelnetSession) -> None:
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
class TelnetDoor(Door, Factory[TelnetSession]):
    """Builds a TelnetSession for each telnet connection to the chat."""

    # The web page's HTTP server, for a browser at the chat port (None: --no-web),
    # and the IRC door, for an IRC client there (None: --no-irc).
    web: IProtocolFactory | None = None
    irc: IProtocolFactory | None = None
    greeting_wait: GreetingWait = field(default=attrs.Factory(lambda self: GreetingWait(self.clock), takes_self=True))
    noisy = False  # no "Starting factory" log lines

    def buildProtocol(self, addr: IAddress | None) -> TelnetSession:
        assert addr is not None  # Twisted's TCP ports always pass the peer's address
        return TelnetSession(self, addr)
