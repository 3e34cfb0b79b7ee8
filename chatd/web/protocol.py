"""
The web front door's WebSocket (`/chat` on the web port): one browser tab
as a session of the chat server.

    WebSocket frames -> whole text messages (frames.py; from any other frame
          on: twisted.web.websocket's reader and wsproto, made then)
          -> FloodGate (net/flow.py) -> parse_message (parse.py)
          -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) -> one text frame per turn (dialect.py)
               -> send(replies) -> one text frame each (render.py) -> socket

The protocol.  Every message, both ways, is a WebSocket text frame holding
one JSON object with a "type"; all text is UTF-8 and is shown as text.

From the browser (fields in [] may be left out; a channel left out is the
user's current one):

    {"type": "login", "nick": N, ["password": P]}   choose a nickname: the first message (a registered
                                                 one's password with it, or after "password-wanted")
    {"type": "say", "text": T, ["channel": C]}   a public message
    {"type": "act", "text": T, ["channel": C]}   an action (/me)
    {"type": "msg", "to": N, "text": T}          a private message
    {"type": "join", "channel": C, ["key": K]}   join (creating it if needed) and talk there; K: a +k channel's key
    {"type": "part", ["channel": C], ["reason": R]}
    {"type": "topic", ["channel": C], ["topic": T]}   show the topic; set it; "" clears it
    {"type": "names", ["channel": C]}            the channel's members; without: everyone online
    {"type": "channels"}                         the channel list
    {"type": "nick", "nick": N}                  rename
    {"type": "quit", ["reason": R]}
    {"type": "mode", ["channel": C], ["words": [W ...]]}   show (no words) or change a channel's modes,
                                                 as IRC writes them: ["+o", "bob"], ["+k", "key"], ["b"] (its bans)
    {"type": "kick", "nick": N, "channel": C, ["reason": R]}   a channel's operator puts N out of C
    {"type": "invite", "nick": N, ["channel": C]}
    {"type": "away", ["text": T]}               marked away (why: T), or back without it
    {"type": "whois", "nick": N}                 what there is to know of N
    {"type": "oper", "password": P}              then, as an operator of the server:
    {"type": "kick", "nick": N, ["reason": R]}   (no channel: disconnect N)
    {"type": "ban", "target": NICK_OR_ADDRESS, ["minutes": M]}   60 unless given; 0: until restart
    {"type": "unban", "address": A}
    {"type": "bans"}
    {"type": "identify", "password": P, ["nick": N]}   prove a registered nickname is yours (N: become it)
    {"type": "register", "password": P}          keep your nickname for you
    {"type": "password", "old": P, "new": P}
    {"type": "unregister", "password": P}
    {"type": "history", ["channel": C], ["count": N], ["before": TIME]}   older lines (50 unless given),
                                                 said before TIME (a message's "oldest")
    {"type": "mentions"}                         the lines that named you since you left
    {"type": "read", "channel": C}               read up to now: an identified user's unread counts follow them

To the browser:

    {"type": "welcome", "server": NAME, "users": N,           on connecting; over plain HTTP, with
     ["https": {"port": P, "fingerprint": F}]}                 where the page is over TLS, and the
                                                               certificate's SHA-256 fingerprint
    {"type": "logged-in", "nick": N, "channel": C, "history": [EVENT ...], "oldest": TIME, "account": N}
                                                               account: the registered nickname
                                                               identified for ("": none); oldest: the
                                                               exact time of history's first line
                                                               (null: none), to ask for older ones
    {"type": "events", "events": [EVENT ...]}                  what happened: one frame per turn
    {"type": "channel-joined", "channel": C, "count": N, "topic": T, "history": [EVENT ...], "oldest": TIME}
    {"type": "now-talking-in", "channel": C}                   a join of a channel one is in
    {"type": "channel-parted", "channel": C, "current": C or null}
    {"type": "members", "channel": C, "nicks": [N ...]}        names of a channel, each after its rank
                                                               ("@alice" operator, "+bob" voiced)
    {"type": "modes", "channel": C, "modes": "+knt", "arguments": [A ...], "created": TS}
    {"type": "masks", "channel": C, "list": "b", "e" or "I", "entries": [{"mask": M, "by": N, "at": TS} ...]}
    {"type": "inviting", "nick": N, "channel": C}              your invitation went out
    {"type": "away", "away": BOOL}                             you are marked away (or back)
    {"type": "is-away", "nick": N, "text": T}                  N, whom you wrote to, is away
    {"type": "motd", "lines": [T ...]}                         after logged-in: the message of the day (--motd-file)
    {"type": "whois", "nick": N, "realname": R, "channels": [C ...], "away": T, "signon": TS, "idle": S,
     "account": A, "operator": BOOL, "node": NODE}             /whois: channels after N's rank in them
    {"type": "invited", "by": N, "channel": C}                 N invites you into C
    {"type": "users", "nicks": [N ...]}                        names without a channel
    {"type": "channels", "channels": [{"name": C, "count": N, "topic": T} ...]}
    {"type": "topic", "channel": C, "topic": T}                "" when none is set
    {"type": "private", "sender": N, "text": T, "notice": BOOL}   a private message (or notice) to you
    {"type": "private-sent", "to": N, "text": T}               yours, as sent
    {"type": "operator"}, {"type": "kicked", "by": N, "reason": R},
    {"type": "ban-added", "address": A, "minutes": M}, {"type": "ban-lifted", "address": A},
    {"type": "bans", "bans": [TEXT ...]}, {"type": "bye"}
    {"type": "contact", "contact": BOOL, "gap": BOOL}          in a cluster: this server lost
        (false) or regained (true) contact with the others; gap: some of what
        was said elsewhere meanwhile is lost
    {"type": "password-wanted", "nick": N, "tries": N}         N is registered: send its password (a login)
    {"type": "guest", "wanted": N, "nick": N}                  (not sent to the page: IRC's guests)
    {"type": "identified", "nick": N}, {"type": "registered", "nick": N},
    {"type": "password-changed", "nick": N}, {"type": "unregistered", "nick": N}
    {"type": "note-kept", "to": N, "text": T}                  N is away: they get it when they log in
    {"type": "notes", "notes": [{"sender": N, "text": T, "at": TS} ...]}   left for you while away
    {"type": "mentions-while-away", "counts": [[C, N] ...]}    how often each channel named you
    {"type": "mentions", "events": [EVENT ...]}                /mentions
    {"type": "unread", "counts": {C: N ...}}                   at login: said since you last read C
    {"type": "history", "channel": C, "events": [EVENT ...], "oldest": TIME}   older lines, oldest first
    {"type": "history-kept", "kept": BOOL}                     the server stopped (or went back to)
        keeping what is said
    {"type": "error", "reason": TEXT, "code": CODE, ["subject": S]}   a refusal; nothing closes (S: the
                                                               channel or nickname it is about)
    {"type": "closing", "reason": TEXT, "code": CODE}          the server closes the connection next

An EVENT is an array: its kind, its unix time in seconds, then the fields
the transcript has for it (docs/operations.md, "Transcript and history"), in this order:

    ["said", TS, CHANNEL, NICK, TEXT]          a message
    ["acted", TS, CHANNEL, NICK, TEXT]         an action (/me)
    ["noticed", TS, CHANNEL, NICK, TEXT]       a notice (an IRC client's, a bot's)
    ["joined", TS, CHANNEL, NICK, COUNT, RANK] COUNT: members now; RANK: "@" (made it, or its founder) or ""
    ["parted", TS, CHANNEL, NICK, REASON, COUNT]
    ["topic", TS, CHANNEL, NICK, TOPIC]        "" when cleared
    ["mode", TS, CHANNEL, NICK, [[CHANGE, ARGUMENT] ...]]   NICK changed C's modes: ["+o", "bob"], ["+t", ""]
    ["kicked", TS, CHANNEL, NICK, BY, REASON, COUNT]   BY put NICK out of CHANNEL
    ["crowd", TS, CHANNEL, JOINED, LEFT, COUNT, [NICK ...], [NICK ...]]
        in a channel above --quiet-joins: how many came and went since the
        last one, who of them is in now and who is gone (for member lists)
    ["renamed", TS, OLD, NEW]
    ["left", TS, NICK, REASON]                 left the chat, so every channel
    ["away", TS, NICK, TEXT]                   NICK is away (why: TEXT), or back (""); to who shares a channel

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

from collections.abc import Callable, Sequence
from typing import Any

from attrs import define
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import Request
from zope.interface import implementer

from chatd.core import commands, replies as core_replies
from chatd.core.batch import Share
from chatd.core.session import ISession
from chatd.net.addresses import describe_peer, peer_host
from chatd.net.door import Door
from chatd.net.life import IDLE, LOGIN, ConnectionLife
from chatd.net.twisted_private import leave_http, partial_message_size, websocket_wire
from chatd.web import render
from chatd.web.dialect import JSON, text_frame
from chatd.web.frames import close_frame, is_ping, ping_frame, pong_to, split
from chatd.web.parse import Invalid, TooLong, Unreadable, parse_message

log = Logger()

# A ping after this long without a word from the browser; another as long
# without an answer, and the connection is closed ("Ping timeout").
PING_INTERVAL_SECONDS = 30.0
PING = ping_frame(b"chatd")
# WebSocket close codes (RFC 6455, 7.4.1).
NORMAL_CLOSURE = 1000
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009


def max_message_size(max_line_bytes: int) -> int:
    """The longest message read at all: room for a text of --max-line bytes, JSON-escaped, and the other fields."""
    return 2 * max_line_bytes + 1024


@implementer(ISession)
class WebSession(Protocol):
    """
    One browser tab's WebSocket as a chat session: a twisted.web.websocket
    WebSocketProtocol for the upgrade, and from then on the connection's
    own protocol, which reads the browser's frames (see `dataReceived`).
    """

    dialect = JSON
    lists_members = False  # the page asks for a channel's members
    quiet_lobby = False
    hears_tags = False
    hears_watched = False
    username = realname = ""  # no user name but the nickname, no real name
    transport: Any
    # Every attribute, Protocol's included: there is one of these for every browser tab.
    __slots__ = ("factory", "transport", "connected", "address", "_request", "_websocket", "_life", "_close_code",
                 "_held")

    def __init__(self, factory: WebDoor, request: Request) -> None:
        self.factory = factory
        self.address = peer_host(request.getClientAddress())
        self._request: Request | None = request  # until the WebSocket is open
        # twisted.web.websocket's reader (its wire protocol), during the
        # upgrade and once a frame chatd.web.frames does not read has come:
        # it then reads everything for the rest of the connection.
        self._websocket: Any = None
        self._life: ConnectionLife | None = None
        self._close_code = NORMAL_CLOSURE
        # The start of a frame chatd.web.frames reads, held until the rest comes.
        self._held = b""

    # -- from twisted.web.websocket

    def negotiationStarted(self, transport: Any) -> None:
        self._websocket = transport

    def negotiationFinished(self) -> None:
        """
        The WebSocket is open: the connection is this session's, and the
        browser is welcomed and waits for its nickname.
        """
        request, self._request = self._request, None
        assert request is not None
        channel: Any = request.channel
        self._websocket = None
        # Twisted's HTTP channel, its request and wire protocol are let go
        # (twisted_private, 3), and with them the headers.  Its place in the
        # connection limits is this session's now.
        slot, channel.slot = getattr(channel, "slot", None), None
        leave_http(channel, self)
        life = self._life = ConnectionLife(self.factory, self, self, self.transport, request.getClientAddress())
        life.admit(ping_interval=PING_INTERVAL_SECONDS, slot=slot)
        https = None if life.tls else self.factory.https()
        server = self.factory.server
        life.write(text_frame(render.welcome(server.name, server.everyone, https, server.keeps_accounts)))

    def textMessageReceived(self, message: str) -> None:
        life = self._life
        if life is None:
            return
        life.heard()
        if life.closing:
            return
        limit = max_message_size(self.factory.settings.max_line_bytes)
        if len(message) > limit:  # whole in one read, so not seen by dataReceived's check: not queued either
            self._refuse_input(f"message too long (max {limit} bytes)", MESSAGE_TOO_BIG)
            return
        # Whatever goes wrong with one connection's input stays with that
        # connection: it is logged and this connection closed, the rest go on.
        try:
            life.line(message)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=describe_peer(life.peer))
            life.abort()

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        if self._life is not None:
            self._life.heard()
        self._refuse_input("binary messages are not part of the chat protocol", UNSUPPORTED_DATA)

    def pongReceived(self, payload: bytes) -> None:
        if self._life is not None:
            self._life.heard()

    # -- from the TCP transport, once the WebSocket is open

    def dataReceived(self, data: bytes) -> None:
        """
        One read of the connection.  The whole text messages at its front
        are read here (chatd.web.frames), in order with the pings and
        pongs between them; the rest, and from the first frame of any other
        kind on everything, goes to twisted.web.websocket's wire protocol,
        made then.  Then a message still in pieces there is checked against
        the limit.
        """
        limit = max_message_size(self.factory.settings.max_line_bytes)
        if self._websocket is not None:
            self._websocket.dataReceived(data)
        else:
            if self._held:
                data = self._held + data
            frames = split(data, limit)
            for message in frames.messages:
                if isinstance(message, str):
                    self.textMessageReceived(message)
                else:
                    self._control(message)
            rest = data[frames.end:] if frames.end else data
            if not frames.other:
                self._held = rest
                return
            self._held = b""
            wire = websocket_wire(self)
            wire.makeConnection(self.transport)  # as the upgrade did: negotiationStarted(wire)
            wire.dataReceived(rest)
        if self._life is not None and not self._life.closing and partial_message_size(self._websocket) > limit:
            self._refuse_input(f"message too long (max {limit} bytes)", MESSAGE_TOO_BIG)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = 0
        if self._life is not None:
            self._life.connection_lost(reason)

    # -- input

    def _control(self, frame: bytes) -> None:
        """A ping or a pong from the browser: a word from it (keep-alive); a ping is answered, unless closing."""
        life = self._life
        if life is None or life.closing:
            return
        life.heard()
        if is_ping(frame):
            self.transport.write(pong_to(frame))

    def _refuse_input(self, reason: str, close_code: int) -> None:
        """Input this door cannot read: the browser is told, and the connection closes."""
        life = self._life
        if life is None or life.closing:
            return
        log.info("{peer} (web) sent what chatd cannot read ({reason}); closing", peer=describe_peer(life.peer),
                 reason=reason)
        life.leave_chat("Quit")
        self._tell(render.bad_message(reason))
        self._close_code = close_code
        life.disconnect(reason)

    # -- the wire, for the connection's life

    def let_through(self, message: str) -> None:
        assert self._life is not None
        max_line = self.factory.settings.max_line_bytes
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
            case commands.Nick(nick) if not self._life.logged_in:
                self.factory.server.handle(self, commands.LogIn(nick))
            case _:
                self.factory.server.handle(self, parsed)

    def refuse(self, reason: str) -> None:
        pass  # admitted (or refused) with the HTTP connection, by the site

    def timed_out(self, timeout: str) -> str:
        if timeout == LOGIN:
            self._tell(render.login_timeout(self.factory.settings.login_timeout_seconds))
            return "login timeout"
        if timeout == IDLE:
            self._tell(render.idle_timeout(self.factory.settings.idle_timeout_seconds))
            return "idle timeout"
        self._tell(render.ping_timeout())
        return "ping timeout"

    def ping(self) -> None:
        if self._websocket is not None:
            self._websocket.ping(b"chatd")
        else:
            self.transport.write(PING)

    def shutting_down(self) -> None:
        self._tell(render.shutting_down())

    def goodbye(self, reason: str) -> None:
        pass  # the close frame says it

    def close(self) -> None:
        """WebSocket's closing handshake, after everything queued."""
        if self._websocket is None:
            self.transport.write(close_frame(self._close_code))
            self.transport.loseConnection()
            return
        try:
            self._websocket.loseConnection(self._close_code)
        except Exception:  # the closing handshake had begun from the browser's side: just close
            self.transport.loseConnection()

    def _tell(self, message: bytes) -> None:
        self.factory.server.tell(self, message)

    # -- ISession, from the chat server

    def deliver(self, share: Share) -> None:
        life = self._life
        queue = None if life is None else life.send_queue
        if queue is not None:
            queue.write_parts(share.parts(JSON))

    def send(self, replies: Sequence[object]) -> None:
        life = self._life
        if life is not None and life.started:
            for reply in replies:
                life.write(text_frame(render.reply(reply)))
                if type(reply) is core_replies.LoggedIn:
                    life.chose_nickname()
                    motd = self.factory.settings.motd
                    if motd:
                        life.write(text_frame(render.message("motd", lines=list(motd))))

    def disconnect(self, reason: str) -> None:
        """Close once everything delivered has been sent, with WebSocket's closing handshake."""
        if self._life is not None:
            self._life.disconnect(reason)


@define(slots=False)
class WebDoor(Door):
    """Builds a WebSession for each WebSocket to the chat (a twisted.web.websocket WebSocketServerFactory)."""

    log_name = " (web)"
    # Where the page is over TLS, and the fingerprint to check there: (port, fingerprint); None: no TLS.
    https: Callable[[], tuple[int, str] | None] = lambda: None

    def buildProtocol(self, request: Request) -> WebSession:
        return WebSession(self, request)

