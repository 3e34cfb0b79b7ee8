"""
The IRC front door: an IRC client's TCP connection as a session of the
chat server.

    bytes -> lines of at most 512 bytes (UTF-8, else latin-1) -> FloodGate
          -> parse_line (parse.py) -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) -> IRC lines (dialect.py, render.py) -> socket

Registration as current clients do it: CAP LS (an empty list; registration
then waits for CAP END), PASS (ignored), NICK and USER; then 001-005,
LUSERS, the MOTD's absence, and the default channel's JOIN, as telnet users
are put in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attrs import define
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols import irc
from zope.interface import implementer

from chatd.core import commands, replies
from chatd.core.batch import Share
from chatd.core.nicknames import MAX_CHANNEL_CHARS, MAX_NICK_CHARS
from chatd.core.server import MAX_CHANNELS_PER_USER, ChatServer
from chatd.core.session import ISession
from chatd.irc import render
from chatd.irc.dialect import IRC, encode
from chatd.irc.parse import (
    Away,
    Cap,
    ListChannels,
    Mode,
    NeedMoreParams,
    NoRecipient,
    NoTextToSend,
    PartAll,
    Pass,
    Ping,
    Pong,
    Unknown,
    User,
    Who,
    Whois,
    parse_line,
)
from chatd.net.flow import FloodGate, SendQueue
from chatd.net.addresses import describe_peer
from chatd.net.connection import Door, KeepAlive, Timeouts, after_what_was_sent

log = Logger()

MAX_LINE_BYTES = 510  # RFC 1459: 512 with CR LF
# A PING after this long without a word from the client; as long again
# without an answer, and it is gone ("Ping timeout").
PING_INTERVAL_SECONDS = 90.0


@implementer(ISession)
class IrcSession(Protocol):
    """One IRC client's connection."""

    dialect = IRC
    transport: Any

    def __init__(self, factory: IrcFactory, peer: IAddress) -> None:
        self.factory = factory
        self._server = factory.server
        self._settings = factory.settings
        self._server_name = factory.server_name
        self.peer = peer
        self.address = str(getattr(peer, "host", peer))
        self._buffer = b""
        self._skipping = False  # dropping the rest of an over-long line
        self._admitted = False
        self._closing = False
        self._lost = False
        self._send_queue: SendQueue | None = None
        self._flood_gate: FloodGate | None = None
        self._timeouts: Timeouts | None = None
        self._keepalive: KeepAlive | None = None
        # Registration: the nickname and user given, and whether CAP holds it back.
        self._wanted_nick: str | None = None
        self._user_given = False
        self._negotiating = False
        self.registered = False
        self.away = ""
        self._subject = ""  # the nick or channel of the command being carried out, for error numerics
        self._known_nick = "*"

    @property
    def nick(self) -> str:
        """The nickname, as numerics address it: "*" until registered; the last one known once the chat is left."""
        current = self._server.nick_of(self)
        if current is not None:
            self._known_nick = current
        return self._known_nick

    # -- from the transport

    def connectionMade(self) -> None:
        moderation = self._server.moderation
        host = self.address
        if moderation is not None and moderation.is_banned(host):
            self._refuse("you are banned from this server")
            return
        refusal = self.factory.limits.admit(host)
        if refusal is not None:
            self._refuse(refusal)
            return
        self._admitted = True
        self.factory.opened(self)
        settings = self._settings
        self._send_queue = SendQueue(self.transport, settings.send_queue_bytes, self._send_queue_exceeded,
                                     self.factory.flusher)
        self._flood_gate = FloodGate(
            self.factory.clock, settings.rate_lines_per_second, settings.rate_burst_lines, settings.flood_queue_lines,
            self._line_let_through, self.transport.pauseProducing, self.transport.resumeProducing, self.factory.counts)
        for option in ("setTcpKeepAlive", "setTcpNoDelay"):
            set_option = getattr(self.transport, option, None)
            if set_option is not None:
                set_option(True)
        self._timeouts = Timeouts(self.factory.clock, settings, self, self._flood_gate)
        self._keepalive = KeepAlive(self.factory.clock, PING_INTERVAL_SECONDS, self._ping, self._ping_timed_out)
        self._server.arrive(self)

    def _refuse(self, reason: str) -> None:
        log.info("refused {peer} (IRC): {reason}", peer=describe_peer(self.peer), reason=reason)
        self.transport.write(encode([f"ERROR :Closing Link: {self.address} ({reason})"]))
        self.transport.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        if not self._admitted or self._closing:
            return
        assert self._keepalive is not None
        self._keepalive.heard = True
        try:
            self._lines(data)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=describe_peer(self.peer))
            self.transport.abortConnection()

    def _lines(self, data: bytes) -> None:
        """Cut what came into lines; a line over 512 bytes is answered with 417 and dropped."""
        assert self._flood_gate is not None and self._timeouts is not None
        self._timeouts.activity()
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        for raw in lines:
            if self._skipping:  # the end of an over-long line
                self._skipping = False
                continue
            raw = raw.rstrip(b"\r")
            if len(raw) > MAX_LINE_BYTES:
                self._too_long()
                continue
            self._flood_gate.line(_decode(raw))
        if len(self._buffer) > MAX_LINE_BYTES:
            self._buffer = b""
            if not self._skipping:
                self._skipping = True
                self._too_long()

    def _too_long(self) -> None:
        self._tell(render.numeric(self._server_name, "417", self.nick, "Input line was too long"))

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if self._timeouts is not None:
            self._timeouts.stop()
        if self._keepalive is not None:
            self._keepalive.stop()
        after_what_was_sent(reason, self._flood_gate, self._closing, self._gone)

    def _gone(self, reason: str) -> None:
        if self._flood_gate is not None:
            self._flood_gate.stop()
        if self._admitted:
            self._admitted = False
            self.factory.limits.release(self.address)
            self.leave_chat(reason)
            self.factory.closed(self)

    def leave_chat(self, reason: str) -> None:
        self._server.depart(self, reason)

    # -- lines

    def _line_let_through(self, text: str) -> None:
        if self._closing:
            return
        for command in parse_line(text):
            if self._closing:
                return
            self._carry_out(command)

    def _carry_out(self, command: object) -> None:
        server, name, nick = self._server, self._server_name, self.nick
        self._subject = ""  # each command names its own, if any
        match command:
            case Cap("LS" | "LIST"):
                if not self.registered:
                    self._negotiating = True
                self._tell(render.line(name, "CAP", nick, command.subcommand, ""))
            case Cap("REQ", wanted):
                self._tell(render.line(name, "CAP", nick, "NAK", wanted))
            case Cap("END"):
                self._negotiating = False
                self._try_to_register()
            case Cap():
                self._tell(render.numeric(name, "410", nick, command.subcommand, "Invalid CAP command"))
            case Pass():
                pass
            case Ping(token):
                self._tell(render.line(name, "PONG", name, token))
            case Pong():
                pass
            case commands.Quit():
                server.handle(self, command)
            case NeedMoreParams(verb):
                self._tell(render.numeric(name, irc.ERR_NEEDMOREPARAMS, nick, verb, "Not enough parameters"))
            case User() if self.registered:
                self._tell(render.numeric(name, irc.ERR_ALREADYREGISTRED, nick, "You may not reregister"))
            case User():
                self._user_given = True
                self._try_to_register()
            case commands.Nick(wanted) if not self.registered:
                self._wanted_nick = wanted
                self._try_to_register()
            case _ if not self.registered:
                self._tell(render.numeric(name, irc.ERR_NOTREGISTERED, nick, "You have not registered"))
            case _:
                self._carry_out_registered(command)

    def _carry_out_registered(self, command: object) -> None:
        server, name, nick = self._server, self._server_name, self.nick
        match command:
            case commands.Nick(wanted):
                self._subject = wanted
                server.handle(self, command)
            case commands.Join(channel) | commands.Part(channel) | commands.Topic(channel) | commands.Names(channel):
                self._subject = channel or ""
                server.handle(self, command)
            case commands.Say(_, channel) | commands.Act(_, channel):
                self._subject = channel or ""
                server.handle(self, command)
            case commands.Msg(to, _) | commands.Kick(to):
                self._subject = to
                server.handle(self, command)
            case PartAll():
                for channel in server.channels_of(self):
                    server.handle(self, commands.Part(channel))
            case ListChannels():
                server.handle(self, commands.Channels())
            case Away(text):
                self.away = text
                code = irc.RPL_NOWAWAY if text else irc.RPL_UNAWAY
                self._tell(render.numeric(name, code, nick, "You have been marked as being away" if text
                                          else "You are no longer marked as being away"))
            case Mode(target, change):
                self._mode(target, change)
            case Who(mask):
                self._who(mask)
            case Whois(target):
                self._whois(target)
            case NoRecipient(verb):
                self._tell(render.numeric(name, irc.ERR_NORECIPIENT, nick, f"No recipient given ({verb})"))
            case NoTextToSend():
                self._tell(render.numeric(name, irc.ERR_NOTEXTTOSEND, nick, "No text to send"))
            case Unknown(verb):
                self._tell(render.numeric(name, irc.ERR_UNKNOWNCOMMAND, nick, verb, "Unknown command"))
            case _:  # the rest of the core's commands: QUIT, OPER, LIST's Channels ...
                server.handle(self, command)  # type: ignore[arg-type]

    def _try_to_register(self) -> None:
        """NICK and USER given, and no CAP negotiation under way: the nickname is asked for."""
        if self.registered or self._negotiating or not self._user_given or self._wanted_nick is None:
            return
        self._subject = self._wanted_nick
        self._server.handle(self, commands.LogIn(self._wanted_nick))
        if self._server.nick_of(self) is not None:
            self.registered = True
            assert self._timeouts is not None
            self._timeouts.logged_in()

    def _mode(self, target: str, change: str) -> None:
        name, nick = self._server_name, self.nick
        if target.startswith("#"):
            if self._server.channel(target) is None:
                self._tell(render.numeric(name, irc.ERR_NOSUCHCHANNEL, nick, target, "No such channel"))
            elif not change or change in ("b", "+b"):  # the modes, or the ban list some clients ask for on join
                if change:
                    self._tell(render.numeric(name, irc.RPL_ENDOFBANLIST, nick, target, "End of channel ban list"))
                else:
                    self._tell(render.numeric(name, irc.RPL_CHANNELMODEIS, nick, target, "+nt"))
            else:
                self._tell(render.numeric(name, irc.ERR_CHANOPRIVSNEEDED, nick, target,
                                          "Channel modes are not kept on chatd"))
        else:
            self._tell(render.numeric(name, irc.RPL_UMODEIS, nick, "+i"))

    def _who(self, mask: str) -> None:
        name, nick = self._server_name, self.nick
        channel = self._server.channel(mask) if mask.startswith("#") else None
        online = self._server.online(mask)
        nicks = channel.nicks() if channel is not None else [online] if online is not None else []
        where = channel.name if channel is not None else "*"
        for member in nicks:
            self._tell(render.numeric(name, irc.RPL_WHOREPLY, nick, where, member, render.HOST, name, member, "H",
                                      f"0 {member}"))
        self._tell(render.numeric(name, irc.RPL_ENDOFWHO, nick, mask, "End of /WHO list"))

    def _whois(self, target: str) -> None:
        name, nick = self._server_name, self.nick
        online = self._server.online(target)
        if online is None:
            self._tell(render.numeric(name, irc.ERR_NOSUCHNICK, nick, target, "No such nick/channel"))
        else:
            self._tell(render.numeric(name, irc.RPL_WHOISUSER, nick, online, online, render.HOST, "*", online))
            self._tell(render.numeric(name, irc.RPL_WHOISSERVER, nick, online, name, "chatd"))
        self._tell(render.numeric(name, irc.RPL_ENDOFWHOIS, nick, target, "End of /WHOIS list"))

    # -- timers

    def login_timed_out(self) -> None:
        self.disconnect(f"no nickname chosen within {self._settings.login_timeout_seconds:g} s")

    def idle_timed_out(self) -> None:
        self.leave_chat("Idle timeout")
        self.disconnect("Idle timeout")

    def _ping(self) -> None:
        if not self._closing:
            self._tell(f"PING :{self._server_name}")

    def _ping_timed_out(self) -> None:
        if not self._closing:
            self.leave_chat("Ping timeout")
            self.disconnect("Ping timeout")

    def _send_queue_exceeded(self) -> None:
        self.factory.counts.send_queue_drops += 1
        log.info("{peer} (IRC) fell over {limit} bytes behind; dropping it", peer=describe_peer(self.peer),
                 limit=self._settings.send_queue_bytes)
        self._closing = True
        self.leave_chat("Send queue exceeded")
        self.transport.abortConnection()

    def _tell(self, *lines: str) -> None:
        self._server.tell(self, *lines)

    # -- ISession, from the chat server

    def deliver(self, share: Share) -> None:
        if self._send_queue is not None:
            self._send_queue.write_parts(share.parts(IRC))

    def send(self, answers: Sequence[object]) -> None:
        if self._send_queue is None:
            return
        name, nick, lines = self._server_name, self.nick, []
        for answer in answers:
            if isinstance(answer, str):  # a line of this door's own
                lines.append(answer)
            elif isinstance(answer, replies.LoggedIn):
                lines += render.welcome(name, answer.nick, self._server.everyone, self._server.channel_count,
                                        self.factory.isupport)
                lines += self._joined(answer.nick, answer.channel, answer.history)
            elif isinstance(answer, replies.ChannelJoined):
                lines += self._joined(nick, answer.channel, answer.history)
            else:
                lines += render.reply(name, nick, answer, self._subject)
        self._send_queue.write(encode(lines))

    def _joined(self, nick: str, channel: str, history: Sequence[Any]) -> list[str]:
        found = self._server.channel(channel)
        if found is None:
            return render.joined(self._server_name, nick, channel, "", "", 0.0, [nick], history)
        return render.joined(self._server_name, nick, channel, found.topic, found.topic_by, found.topic_at,
                             found.nicks(), history)

    def shutting_down(self) -> None:
        self._tell(render.line(self._server_name, "NOTICE", self.nick, "Server shutting down"))

    def disconnect(self, reason: str) -> None:
        """ERROR, then close once everything before it has been sent."""
        if self._closing:
            return
        self._closing = True
        if self._send_queue is not None:
            self._send_queue.write(encode([f"ERROR :Closing Link: {self.address} ({reason})"]))
            self._send_queue.close()
        self.transport.loseConnection()
        if self._lost:
            self._gone("Connection lost")

    def abort(self) -> None:
        self.transport.abortConnection()


def _decode(raw: bytes) -> str:
    """UTF-8; a line that is not is latin-1, as IRC servers commonly read it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@define(slots=False)  # Factory keeps state in instance attributes of its own
class IrcFactory(Door, Factory[IrcSession]):
    """Builds an IrcSession for each connection to the IRC port."""

    noisy = False

    @property
    def server_name(self) -> str:
        """The server's name as IRC has it: one word."""
        return "".join(character if character.isalnum() or character in "-." else "-"
                       for character in self.server.name) or "chatd"

    @property
    def isupport(self) -> list[str]:
        return ["CASEMAPPING=ascii", "CHANTYPES=#", f"NICKLEN={MAX_NICK_CHARS}",
                f"CHANNELLEN={MAX_CHANNEL_CHARS + 1}", "PREFIX=(ov)@+", f"NETWORK={self.server_name}",
                f"CHANLIMIT=#:{MAX_CHANNELS_PER_USER}"]

    def buildProtocol(self, addr: IAddress | None) -> IrcSession:
        assert addr is not None
        return IrcSession(self, addr)
