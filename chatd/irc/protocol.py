"""
The IRC front door: an IRC client's TCP connection as a session of the
chat server.

    bytes -> lines of at most 512 bytes (UTF-8, else latin-1) -> FloodGate
          -> parse_line (parse.py) -> ChatServer.handle (core/server.py)
    ChatServer -> deliver(Share) -> IRC lines (dialect.py, render.py) -> socket

Registration as current clients do it: CAP LS (registration then waits
for CAP END), PASS, NICK and USER; then 001-005, LUSERS, the MOTD's
absence, and the default channel's JOIN, as telnet users are put in it.

Accounts (where the chat keeps them): SASL PLAIN (the `sasl` capability,
AUTHENTICATE, 900/903/904/906/907/908, as irssi, WeeChat and HexChat do it),
PASS (the registered nickname's password), and the NickServ commands
clients automate (`/msg NickServ IDENTIFY pw`, `REGISTER pw`), answered by
chatd itself.  A registered nickname without its password enters as a
guest (`bob_1`), and becomes the nickname once it identifies.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any

from attrs import define, evolve
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.words.protocols import irc
from zope.interface import implementer

from chatd.core import commands, replies
from chatd.core.batch import Share
from chatd.core.events import Acted, Event, Noticed, Said
from chatd.core.modes import MAX_CHANGES, MAX_KEY_CHARS, MAX_MASKS, matches
from chatd.core.nicknames import MAX_CHANNEL_CHARS, MAX_NICK_CHARS, name_key
from chatd.core.server import MAX_CHANNELS_PER_USER
from chatd.core.watchers import MAX_WATCHED
from chatd.core.session import ISession
from chatd.core.tags import with_server_tags
from chatd.irc import render
from chatd.irc.dialect import IRC, IrcDialect, encode
from chatd.irc.parse import (
    Authenticate,
    Away,
    Cap,
    Help,
    Invitations,
    Refused,
    MAX_CHATHISTORY,
    NamesOf,
    TooManyTargets,
    MAX_TARGETS,
    Ison,
    ListChannels,
    UserMode,
    NeedMoreParams,
    NickServ,
    NoRecipient,
    NoTextToSend,
    PartAll,
    Pass,
    Ping,
    Pong,
    Quietly,
    ServerQuery,
    TagMsg,
    Unknown,
    User,
    Userhost,
    Who,
    Whois,
    Whowas,
    Monitor,
    USERLEN,
    parse_line,
    split_tags,
)
from chatd.net.addresses import describe_peer, peer_host
from chatd.net.handshake import login_deadline_of, speaks_tls
from chatd.net.door import Door
from chatd.net.life import IDLE, LOGIN, ConnectionLife

log = Logger()

MAX_LINE_BYTES = 510  # RFC 1459: 512 with CR LF
# SASL: the client's data comes in base64 chunks of 400 bytes; PLAIN's is small, and more is refused.
SASL_CHUNK = 400
MAX_SASL_BYTES = 1200
# A PING after this long without a word from the client; as long again
# without an answer, and it is gone ("Ping timeout").
PING_INTERVAL_SECONDS = 90.0
# The IRCv3 capabilities offered (and `sasl` where accounts are kept).
CAPABILITIES = ("account-notify", "account-tag", "away-notify", "batch", "draft/chathistory", "draft/read-marker", "echo-message", "extended-join",
                "extended-monitor", "invite-notify", "labeled-response", "message-tags", "multi-prefix",
                "server-time", "setname", "userhost-in-names")
NO_CAPABILITIES: frozenset[str] = frozenset()
# The user mode of a bot (IRCv3 bot mode, 005's BOT=).
BOT_MODE = "B"
# A line's message tags, "@" and the space after them included, may be this long besides its 512 bytes (IRCv3).
MAX_TAG_SECTION_BYTES = 4096


@implementer(ISession)
class IrcSession(Protocol):
    """One IRC client's connection."""

    lists_members = True  # NAMES on joining
    quiet_lobby = True  # the default channel as an auditorium: see ISession.quiet_lobby
    transport: Any
    # Every attribute, Protocol's included: an IRC session's thirty-odd attributes in a __dict__ took about
    # 1.5 KiB a connection, a quarter of an idle user's memory.
    __slots__ = ("factory", "transport", "connected", "_server", "_settings", "_server_name", "address",
                 "_buffer", "_skipping", "_life", "_wanted_nick", "_user_given", "_negotiating", "_password", "_sasl",
                 "_authenticating", "_answering", "account", "capabilities", "dialect", "_labelled", "_batches",
                 "_refused", "_names_ends", "_client_tags", "bot", "username", "realname", "registered",
                 "_known_nick", "_first_data")

    def __init__(self, factory: IrcDoor, peer: IAddress) -> None:
        self.factory = factory
        self._server = factory.server
        self._settings = factory.settings
        self._server_name = factory.server_name
        self.address = peer_host(peer)
        self._buffer = b""
        self._skipping = False  # dropping the rest of an over-long line
        self._life: ConnectionLife | None = None
        # Registration: the nickname and user given, and whether CAP holds it back.
        self._wanted_nick: str | None = None
        self._user_given = False
        self._negotiating = False
        self._password: str | None = None  # PASS
        self._sasl: str | None = None  # the client's SASL data so far, once it chose PLAIN
        self._authenticating = False  # a SASL password is being checked
        self._answering: str | None = None  # the command (NOTICE, PRIVMSG, NAMES) whose refusals are being sent
        self.account: str | None = None  # the account SASL or NickServ identified
        # IRCv3's, as negotiated (CAP REQ): one value, replaced at each change, so that a client that negotiates
        # nothing shares the empty one (a set of its own was 216 bytes).
        self.capabilities: frozenset[str] = NO_CAPABILITIES
        self.dialect = IRC
        self._labelled: list[str] | None = None  # the lines answering a labelled line, while it is carried out
        self._batches = 0
        self._refused = False  # whether the command being answered (_answering) was refused
        self._names_ends = True  # False while NAMES of several channels is answered (one 366 ends them)
        self._client_tags = ""  # the client tags of the line being carried out (message-tags), as a wire string
        self.bot = False  # marked a bot (MODE +B), as the chat has it
        self.username = ""  # USER's
        self.realname = ""
        self.registered = False
        self._known_nick = "*"
        self._first_data = True  # until the first read, which may be a TLS ClientHello

    @property
    def peer(self) -> IAddress:
        """The peer's address, asked of the transport (not kept: 96 bytes a connection)."""
        peer: IAddress = self.transport.getPeer()
        return peer

    @property
    def hears_tags(self) -> bool:
        """Whether TAGMSG's tags reach this client (ISession): it negotiated message-tags."""
        return "message-tags" in self.capabilities

    @property
    def hears_watched(self) -> bool:
        """Whether this client hears of those it MONITORs as of channel-mates (ISession): IRCv3 extended-monitor."""
        return "extended-monitor" in self.capabilities

    @property
    def nick(self) -> str:
        """The nickname, as numerics address it: "*" until registered; the last one known once the chat is left."""
        current = self._server.nick_of(self)
        if current is not None:
            self._known_nick = current
        return self._known_nick

    # -- from the transport

    def connectionMade(self) -> None:
        self._life = ConnectionLife(self.factory, self, self, self.transport, self.peer)
        self._life.admit(ping_interval=PING_INTERVAL_SECONDS, login_deadline=login_deadline_of(self.transport))

    def dataReceived(self, data: bytes) -> None:
        life = self._life
        if life is None or not life.started or life.closing:
            return
        if self._first_data:
            self._first_data = False
            if speaks_tls(data) and life.start_tls(self.factory.tls, data):  # TLS on the plain port
                return
        life.heard()
        life.activity()
        try:
            self._lines(data)
        except Exception:
            log.failure("error handling input from {peer}; closing", peer=describe_peer(self.peer))
            life.abort()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._life is not None:
            self._life.connection_lost(reason)

    def _lines(self, data: bytes) -> None:
        """Cut what came into lines; a line over 512 bytes is answered with 417 and dropped."""
        life = self._life
        gate = None if life is None else life.flood_gate
        assert gate is not None
        *lines, self._buffer = (self._buffer + data).split(b"\n")
        read: list[str] = []  # the lines go through the flood gate together
        for raw in lines:
            if self._skipping:  # the end of an over-long line
                self._skipping = False
                continue
            raw = raw.rstrip(b"\r")
            if len(raw) > MAX_LINE_BYTES and not _fits_with_tags(raw):
                if read:  # the lines before it come first
                    gate.lines(read)
                    read = []
                self._too_long()
                continue
            read.append(_decode(raw))
        if read:
            gate.lines(read)
        if len(self._buffer) > MAX_LINE_BYTES + MAX_TAG_SECTION_BYTES:
            self._buffer = b""
            if not self._skipping:
                self._skipping = True
                self._too_long()

    def _too_long(self) -> None:
        self._tell(render.numeric(self._server_name, "417", self.nick, "Input line was too long"))

    # -- the wire, for the connection's life

    def let_through(self, text: str) -> None:
        assert self._life is not None
        label = None
        if text[:1] == "@":  # IRCv3 message tags: read off (most lines have none)
            tags, text = split_tags(text)
            label = tags.get("label") if "labeled-response" in self.capabilities else None
            if "message-tags" in self.capabilities:
                self._client_tags = render.client_tags(tags)
        if label is not None:  # what answers this line is gathered, and labelled (IRCv3 labeled-response)
            self._labelled = []
        try:
            for command in parse_line(text):
                if self._life.closing:
                    break
                self._carry_out(command)
        finally:
            self._client_tags = ""
            if label is not None:
                self._server.tell(self)  # what the line made happen to this session (its own NICK ...) is in the answer
                answer, self._labelled = self._labelled or [], None
                self._life.write(encode(render.labelled(self._server_name, label, answer, self._batches,
                                                        "batch" in self.capabilities)))
                self._batches += 1

    def refuse(self, reason: str) -> None:
        self.transport.write(encode([f"ERROR :Closing Link: {self.address} ({reason})"]))

    def timed_out(self, timeout: str) -> str:
        if timeout == LOGIN:
            return f"no nickname chosen within {self._settings.login_timeout_seconds:g} s"
        return "Idle timeout" if timeout == IDLE else "Ping timeout"  # said in the ERROR line of the goodbye

    def ping(self) -> None:
        self._tell(f"PING :{self._server_name}")

    def shutting_down(self) -> None:
        self._tell(render.line(self._server_name, "NOTICE", self.nick, "Server shutting down"))

    def goodbye(self, reason: str) -> None:
        """ERROR, after everything before it."""
        assert self._life is not None
        self._life.write(encode([f"ERROR :Closing Link: {self.address} ({reason})"]))

    def close(self) -> None:
        self.transport.loseConnection()

    def _carry_out(self, command: object) -> None:
        if type(command) is commands.Say and self.registered:  # most lines: straight to the chat
            self._say(command)
            return
        server, name, nick = self._server, self._server_name, self.nick
        match command:
            case Cap("LS"):
                if not self.registered:
                    self._negotiating = True
                self._tell(render.line(name, "CAP", nick, "LS", self._offered(command.argument >= "302")))
            case Cap("LIST"):
                self._tell(render.line(name, "CAP", nick, "LIST", " ".join(sorted(self.capabilities))))
            case Cap("REQ", wanted):
                if not self.registered:
                    self._negotiating = True
                self._request(wanted)
            case Cap("END"):
                self._negotiating = False
                self._try_to_register()
            case Cap():
                self._tell(render.numeric(name, "410", nick, command.subcommand, "Invalid CAP command"))
            case Authenticate(argument):
                self._authenticate(argument)
            case Pass(password):
                self._password = password
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
            case User(username, realname):
                self.username, self.realname = username, realname
                self._user_given = True
                self._try_to_register()
            case commands.Nick(wanted) if not self.registered:
                self._wanted_nick = wanted
                self._try_to_register()
            case _ if not self.registered:
                self._tell(render.numeric(name, irc.ERR_NOTREGISTERED, nick, "You have not registered"))
            case _:
                self._carry_out_registered(command)

    def _offered(self, with_values: bool) -> str:
        """What CAP LS offers: CAPABILITIES, and SASL PLAIN where accounts are kept."""
        offered = list(CAPABILITIES)
        if self._server.keeps_accounts:
            offered.append("sasl=PLAIN" if with_values else "sasl")
        return " ".join(offered)

    def _request(self, wanted: str) -> None:
        """CAP REQ: every capability asked for (or, after -, off), or none of them (NAK)."""
        known = set(CAPABILITIES) | ({"sasl"} if self._server.keeps_accounts else set())
        changes = [(name.startswith("-"), name.lstrip("-")) for name in wanted.split()]
        if not changes or any(name not in known for _, name in changes):
            self._tell(render.line(self._server_name, "CAP", self.nick, "NAK", wanted))
            return
        capabilities = set(self.capabilities)
        for off, name in changes:
            (capabilities.discard if off else capabilities.add)(name)
        self.capabilities = frozenset(capabilities)
        self.dialect = IrcDialect.of(self.capabilities)
        self._tell(render.line(self._server_name, "CAP", self.nick, "ACK", wanted))

    def _authenticate(self, argument: str) -> None:
        """One AUTHENTICATE line of a SASL PLAIN exchange (IRCv3 SASL 3.1)."""
        name, nick = self._server_name, self.nick
        if not self._server.keeps_accounts:
            self._tell(render.numeric(name, irc.ERR_UNKNOWNCOMMAND, nick, "AUTHENTICATE", "Unknown command"))
        elif self.account is not None:
            self._tell(render.numeric(name, "907", nick, "You have already authenticated using SASL"))
        elif argument == "*":
            self._sasl = None
            self._tell(render.numeric(name, "906", nick, "SASL authentication aborted"))
        elif self._sasl is None:
            if argument.upper() == "PLAIN":
                self._sasl = ""
                self._tell("AUTHENTICATE +")
            else:
                self._tell(render.numeric(name, "908", nick, "PLAIN", "are available SASL mechanisms"),
                           render.numeric(name, "904", nick, "SASL authentication failed"))
        else:
            self._sasl += "" if argument == "+" else argument
            if len(self._sasl) > MAX_SASL_BYTES:
                self._sasl = None
                self._tell(render.numeric(name, "905", nick, "SASL message too long"))
            elif len(argument) < SASL_CHUNK:  # the last chunk
                self._plain(self._sasl)

    def _plain(self, data: str) -> None:
        """PLAIN's data: authorization identity, authentication identity (the account), password."""
        self._sasl = None
        try:
            authorization, account, password = base64.b64decode(data, validate=True).decode().split("\0")
        except (ValueError, UnicodeDecodeError):
            self._tell(render.numeric(self._server_name, "904", self.nick, "SASL authentication failed"))
            return
        if authorization and authorization.casefold() != account.casefold():
            self._tell(render.numeric(self._server_name, "904", self.nick, "SASL authentication failed"))
            return
        self._authenticating = True
        self._server.handle(self, commands.Identify(password, account))

    def _nickserv(self, text: str) -> None:
        """What chatd answers for NickServ: IDENTIFY [ACCOUNT] PASSWORD, REGISTER PASSWORD [EMAIL], DROP, HELP."""
        verb, _, rest = text.strip().partition(" ")
        verb, rest = verb.upper(), rest.strip()
        if verb == "IDENTIFY" and rest:
            first, _, password = rest.partition(" ")
            named = self._server.registered(first) if password else None
            self._server.handle(self, commands.Identify(password.strip(), named) if named
                                else commands.Identify(rest))
        elif verb == "REGISTER" and rest:
            password, _, email = rest.rpartition(" ") if "@" in rest.rsplit(" ", 1)[-1] else (rest, "", "")
            self._server.handle(self, commands.Register(password.strip()))
        elif verb in ("DROP", "UNREGISTER") and rest:
            self._server.handle(self, commands.Unregister(rest))
        elif verb == "PASSWORD" and " " in rest:
            old, _, new = rest.partition(" ")
            self._server.handle(self, commands.ChangePassword(old, new.strip()))
        else:
            self._tell(*render.nickserv(self.nick, [
                "chatd answers for NickServ:", "IDENTIFY [ACCOUNT] PASSWORD  prove a registered nickname is yours",
                "REGISTER PASSWORD  keep your nickname for you (8 characters at least)",
                "PASSWORD OLD NEW  change your password", "DROP PASSWORD  free your nickname"]))

    def _carry_out_registered(self, command: object) -> None:
        server, name, nick = self._server, self._server_name, self.nick
        match command:
            case NickServ(text):
                self._nickserv(text)
            case Quietly(commands.Msg(to)) if server.online(to) is None:
                pass  # nobody to hear it, and nothing to say back
            case Quietly(quiet):
                quiet = self._tagged(quiet)
                self._handle_as("NOTICE", quiet)
                if isinstance(quiet, commands.Notice):
                    self._echo(Noticed, quiet)
            case TagMsg(target) if self._client_tags and "message-tags" in self.capabilities:
                tag = commands.Tag(target, self._client_tags, server.new_msgid())
                self._handle_as("TAGMSG", tag)
                if "echo-message" in self.capabilities and not self._refused:
                    self._tell(*render.with_message_tags([render.line(render.mask(nick), "TAGMSG", target)],
                                                         tag.msgid, self._own_tags(tag.tags), True,
                                                         "account-tag" in self.capabilities))
            case TagMsg():
                pass  # no client tags: nothing to relay
            case PartAll():
                for channel in server.channels_of(self):
                    server.handle(self, commands.Part(channel))
            case ListChannels(_, conditions) if conditions:
                self._tell(*render.listing(name, nick, [
                    channel for channel in server.channel_list(self).channels if _meets(channel, conditions)]))
            case ListChannels(names) if names:
                self._tell(*render.listing(name, nick, [
                    view for channel in names if (view := server.channel(channel)) is not None
                    and (not view.secret or nick in view.nicks)]))
            case ListChannels():
                server.handle(self, commands.Channels())
            case Ison(nicks):
                self._tell(render.numeric(name, irc.RPL_ISON, nick, text=" ".join(self._online(nicks))))
            case Userhost(nicks):
                found = [user for wanted in nicks if (user := server.user_info(wanted)) is not None]
                self._tell(render.numeric(name, irc.RPL_USERHOST, nick, text=" ".join(
                    f"{user.nick}{'*' if user.operator else ''}={'-' if user.away else '+'}{user.username}@{render.HOST}"
                    for user in found)))
            case ServerQuery("LUSERS"):
                self._tell(*render.lusers(name, nick, server.counts()))
            case ServerQuery(query):
                self._tell(*render.about_server(name, nick, query, self.factory.isupport, self._settings.motd))
            case Away(text):
                server.handle(self, commands.Away(text))
            case UserMode(target, change):
                self._user_mode(target, change)
            case Who(mask, fields):
                self._who(mask, fields)
            case Monitor("+", nicks):
                server.handle(self, commands.Watch(nicks))
            case Monitor("-", nicks):
                server.handle(self, commands.Unwatch(nicks))
            case Monitor("C"):
                server.handle(self, commands.Unwatch())
            case Monitor("L"):
                self._tell(*render.monitor_list(name, nick, server.watched(self)))
            case Monitor("S"):
                server.tell(self, *server.watch_status(server.watched(self)))
            case Whowas(target, count):
                if not target:
                    self._tell(render.numeric(name, irc.ERR_NONICKNAMEGIVEN, nick, "No nickname given"))
                else:
                    self._tell(*render.whowas(name, nick, target, server.whowas(target, count)))
            case Whois(target):
                self._handle_as("WHOIS", commands.Whois(target))
            case NoRecipient(verb):
                self._tell(render.numeric(name, irc.ERR_NORECIPIENT, nick, f"No recipient given ({verb})"))
            case NoTextToSend():
                self._tell(render.numeric(name, irc.ERR_NOTEXTTOSEND, nick, "No text to send"))
            case Unknown(verb):
                self._tell(render.numeric(name, irc.ERR_UNKNOWNCOMMAND, nick, verb, "Unknown command"))
            case NamesOf(channels, asked):
                self._names_ends = False
                try:
                    for channel in channels:
                        self._handle_as("NAMES", commands.Names(channel))
                finally:
                    self._names_ends = True
                self._tell(render.numeric(name, irc.RPL_ENDOFNAMES, nick, asked, "End of /NAMES list"))
            case TooManyTargets(target):
                self._tell(render.numeric(name, irc.ERR_TOOMANYTARGETS, nick, target,
                                          f"Too many targets: at most {MAX_TARGETS}; not sent to it"))
            case Invitations():
                self._tell(*(render.numeric(name, "336", nick, channel) for channel in server.invitations(self)),
                           render.numeric(name, "337", nick, "End of /INVITE list"))
            case Refused(verb, code, context, text):
                self._tell(render.line(name, "FAIL", verb, code, *([context] if context else []), text=text))
            case commands.ChatHistory() | commands.ChatHistoryTargets():
                self._handle_as("CHATHISTORY", command)
            case Help(subject):
                self._tell(*render.help_reply(name, nick, subject))
            case commands.Say() | commands.Act():
                self._say(command)
            case commands.Msg():
                self._handle_as("PRIVMSG", self._tagged(command))
            case commands.Names(str()):
                self._handle_as("NAMES", command)
            case commands.Mode():
                self._handle_as("MODE", command)
            case _:  # the rest of the core's commands: QUIT, OPER, LIST's Channels ...
                server.handle(self, command)  # type: ignore[arg-type]

    def _handle_as(self, verb: str, command: commands.Command) -> None:
        """Carry out `command` for IRC's `verb`, whose refusals IRC answers its own way (render.refusal)."""
        self._answering, self._refused = verb, False
        try:
            self._server.handle(self, command)
        finally:
            self._answering = None

    def _say(self, command: commands.Say | commands.Act) -> None:
        """A PRIVMSG to a channel (or a CTCP ACTION): with its tags, and back to the sayer with echo-message."""
        if self.capabilities:
            command = self._tagged(command)
        self._handle_as("PRIVMSG", command)
        if "echo-message" in self.capabilities:
            self._echo(Said if type(command) is commands.Say else Acted, command)

    def _tagged(self, command: Any) -> Any:
        """
        A message's command with the line's client tags, and (with
        echo-message and message-tags) a msgid the echo shares with what
        the others get.
        """
        if "message-tags" not in self.capabilities:
            return command
        if isinstance(command, Quietly):
            return Quietly(self._tagged(command.command))
        msgid = self._server.new_msgid() if "echo-message" in self.capabilities else ""
        return evolve(command, tags=self._client_tags, msgid=msgid) if self._client_tags or msgid else command

    def _own_tags(self, client_tags: str) -> str:
        """The tags the chat gives what this client says: its account and bot mark (as the core adds them), then its own."""
        user = self._server.user_info(self.nick)
        account = user.account if user is not None else ""
        return with_server_tags(client_tags, account, self.bot) if account or self.bot else client_tags

    def _echo(self, kind: type[Said] | type[Acted] | type[Noticed],
              command: commands.Say | commands.Act | commands.Notice) -> None:
        """IRCv3 echo-message: a line said in a channel, back to its sayer too, unless it was refused."""
        if "echo-message" not in self.capabilities or self._refused or command.channel is None:
            return
        found = self._server.channel(command.channel)
        if found is not None:
            lines = render.event(kind(found.name, self.nick, command.text, at=self._server.clock.seconds()))
            capabilities = self.capabilities
            if "message-tags" in capabilities or "account-tag" in capabilities:
                lines = render.with_message_tags(lines, command.msgid, self._own_tags(command.tags),
                                                 "message-tags" in capabilities, "account-tag" in capabilities)
            self._tell(*lines)

    def _online(self, nicks: Sequence[str]) -> list[str]:
        """Those of `nicks` online, as their users have them (ISON, USERHOST)."""
        return [online for wanted in nicks if (online := self._server.online(wanted)) is not None]

    def _try_to_register(self) -> None:
        """NICK and USER given, and no CAP negotiation under way: the nickname is asked for."""
        if self.registered or self._negotiating or not self._user_given or self._wanted_nick is None:
            return
        self._server.handle(self, commands.LogIn(self._wanted_nick, self._password, as_guest=True))

    def _user_mode(self, target: str, change: str) -> None:
        """
        A user's modes: +i for everyone, +B for a bot (IRCv3 bot mode:
        changed with MODE NICK +B or -B), and nobody else's to change (502);
        another letter is 501.
        """
        name, nick = self._server_name, self.nick
        if self._server.online(target) != nick:
            self._tell(render.numeric(name, irc.ERR_USERSDONTMATCH, nick, "Can't change mode for other users"))
            return
        if not change:
            self._tell(render.numeric(name, irc.RPL_UMODEIS, nick, "+iB" if self.bot else "+i"))
            return
        sign, bot = "+", self.bot
        for letter in change.split(" ", 1)[0]:
            if letter in "+-":
                sign = letter
            elif letter == BOT_MODE:
                bot = sign == "+"
            elif letter != "i":
                self._tell(render.numeric(name, irc.ERR_UMODEUNKNOWNFLAG, nick, "Unknown MODE flag"))
        if bot != self.bot:
            self._server.handle(self, commands.SetBot(bot))

    def _who(self, mask: str, fields: str) -> None:
        """
        WHO: a channel's members (each with H or G and their highest rank), or
        everyone whose nickname, user name or real name the mask matches (`*`
        and `0`: everyone); 352 each, or WHOX's 354 with the fields asked, then 315.
        """
        server, name, nick = self._server, self._server_name, self.nick
        if mask.startswith("#"):
            channel = server.channel(mask)
            if channel is not None and channel.secret and nick not in channel.nicks:
                channel = None
            where = "*" if channel is None else channel.name
            listed = () if channel is None else channel.listed
        else:
            where, listed = "*", self._found_by(mask)
        for member in listed:
            bare = member.lstrip("@+")
            user = server.user_info(bare, self)
            if user is not None:
                rank = member[:len(member) - len(bare)]
                rank = rank if "multi-prefix" in self.capabilities else rank[:1]
                self._tell(render.who_line(name, nick, where, user, rank, fields))  # rank: every one, or the first
        self._tell(render.numeric(name, irc.RPL_ENDOFWHO, nick, mask, "End of /WHO list"))

    def _found_by(self, mask: str) -> tuple[str, ...]:
        """
        Whom WHO `mask` finds: the user of that nickname, or, as everyone is
        +i, those the mask matches (by nickname, nick!user@host or real
        name; `*` and `0`: all) who are this client or share a channel with
        it other than the lobby (which everyone shares).
        """
        server, everyone = self._server, mask in ("*", "0")
        me = server.user_info(self.nick, self)
        mine = set() if me is None else {channel.lstrip("@+") for channel in me.channels}  # the lobby is not among them
        found = []
        for online in server.nicks():
            if name_key(online) == name_key(mask):
                found.append(online)
                continue
            user = server.user_info(online, self)
            if user is None or (user.nick != self.nick and mine.isdisjoint(c.lstrip("@+") for c in user.channels)):
                continue
            if everyone or matches(mask, [online, f"{user.nick}!{user.username}@{render.HOST}", user.realname]):
                found.append(online)
        return tuple(found)

    def _tell(self, *lines: str) -> None:
        self._server.tell(self, *lines)

    # -- ISession, from the chat server

    def deliver(self, share: Share) -> None:
        life = self._life
        queue = None if life is None else life.send_queue
        if self._labelled is not None:  # part of the answer to a labelled line
            self._labelled += b"".join(share.parts(self.dialect)).decode("utf-8", "replace").split("\r\n")[:-1]
        elif queue is not None:
            queue.write_parts(share.parts(self.dialect))

    def send(self, answers: Sequence[object]) -> None:
        life = self._life
        if life is None or not life.started:
            return
        name, nick, lines = self._server_name, self.nick, []
        capabilities = self.capabilities
        multi_prefix, server_time = "multi-prefix" in capabilities, "server-time" in capabilities
        message_tags, account_tag = "message-tags" in capabilities, "account-tag" in capabilities
        for answer in answers:
            if isinstance(answer, str):  # a line of this door's own
                lines.append(answer)
                continue
            if isinstance(answer, replies.Identified):
                self.account = answer.nick
            if self._authenticating and isinstance(answer, (replies.Identified, replies.Error)):
                self._authenticating = False
                if isinstance(answer, replies.Identified):
                    lines += [render.numeric(name, "900", nick, render.mask(nick), answer.nick,
                                             f"You are now logged in as {answer.nick}"),
                              render.numeric(name, "903", nick, "SASL authentication successful")]
                else:
                    lines.append(render.numeric(name, "904", nick, "SASL authentication failed"))
            elif isinstance(answer, replies.LoggedIn):
                self.registered = True
                life.chose_nickname()
                lines += render.welcome(name, answer.nick, self._server.counts(), self.factory.isupport,
                                        self._settings.motd)
                lines += self._joined(answer.nick, answer)
            elif isinstance(answer, replies.Error):
                if self._answering is not None:
                    self._refused = True
                if self._names_ends or answer.code != "no-such-channel":
                    lines += render.refusal(name, nick, answer, self._answering)
            elif isinstance(answer, replies.ChannelJoined):
                lines += self._joined(nick, answer)
            elif isinstance(answer, replies.ChannelMembers):
                listed = render.names(name, nick, answer.channel, self._names(answer.nicks), multi_prefix,
                                      answer.secret)
                lines += listed if self._names_ends else listed[:-1]
            elif isinstance(answer, replies.ChatHistoryFound):
                lines += self._history_batch("chathistory", answer.target, [
                    line for event in answer.events for line in self._history_lines(event)])
            elif isinstance(answer, replies.ChatHistoryTargetsFound):
                lines += self._history_batch("draft/chathistory-targets", None, [
                    render.line(name, "CHATHISTORY", "TARGETS", target, f"timestamp={render.time_tag(at)}")
                    for target, at in answer.targets])
            elif isinstance(answer, replies.BotMarked):
                self.bot = answer.bot
                lines.append(render.line(render.mask(nick), "MODE", nick, ("+" if answer.bot else "-") + BOT_MODE))
            elif isinstance(answer, replies.PrivateSent):
                if "echo-message" in capabilities:  # as the recipient reads it
                    echo = render.text_lines(render.mask(nick), "NOTICE" if answer.notice else "PRIVMSG",
                                             answer.to, answer.text)
                    lines += render.with_message_tags(echo, answer.msgid, answer.tags, message_tags, account_tag)
            elif isinstance(answer, replies.PrivateReceived) and (message_tags or account_tag):
                lines += render.with_message_tags(render.reply(name, nick, answer), answer.msgid, answer.tags,
                                                  message_tags, account_tag)
            elif isinstance(answer, replies.Tagged):
                if message_tags:
                    lines += render.with_message_tags([render.line(render.mask(answer.nick), "TAGMSG", answer.target)],
                                                      answer.msgid, answer.tags, True, account_tag)
            else:
                lines += render.reply(name, nick, answer)
        if server_time and lines:  # now, for what is not tagged with a time of its own (history)
            now = {"time": render.time_tag(self._server.clock.seconds())}
            lines = [line if render.has_tag(line, "time") else render.tagged([line], now)[0] for line in lines]
        if self._labelled is not None and not any(isinstance(answer, (replies.PrivateReceived, replies.Tagged))
                                                  for answer in answers):
            self._labelled += lines
        else:  # a message received (even from oneself) is no answer to the line being carried out
            life.write(encode(lines))

    def _joined(self, nick: str, joined: replies.LoggedIn | replies.ChannelJoined) -> list[str]:
        """
        What a client reads on joining a channel: its own JOIN, the topic, the
        names (with draft/read-marker, how far it was read, before 366), and
        the channel's recent lines: with batch and server-time, a
        chathistory batch of them as they were said; else NOTICEs.
        """
        capabilities, channel = self.capabilities, joined.channel
        as_batch = "batch" in capabilities and "server-time" in capabilities
        lines = render.joined(self._server_name, nick, channel, joined.topic, joined.topic_by, joined.topic_at,
                              self._names(joined.nicks), () if as_batch else joined.history,
                              "multi-prefix" in capabilities,
                              isinstance(joined, replies.ChannelJoined) and joined.secret,
                              "server-time" in capabilities, self._extended_join())
        if "draft/read-marker" in capabilities:
            end = next((index for index, text in enumerate(lines) if text.split(" ", 2)[1] == "366"), len(lines))
            lines.insert(end, render.read_marker(self._server_name, channel, self._server.read_mark(self, channel)))
        if as_batch and joined.history:
            lines += self._history_batch("chathistory", channel, [
                line for event in joined.history for line in self._history_lines(event)])
        return lines

    def _history_lines(self, event: Event) -> list[str]:
        """A line of a channel's history as it was said, with its time and (with message-tags) its msgid and tags."""
        capabilities = self.capabilities
        lines = render.event(event)
        if isinstance(event, (Said, Acted)) and ("message-tags" in capabilities or "account-tag" in capabilities):
            lines = render.with_message_tags(lines, event.msgid, event.tags, "message-tags" in capabilities,
                                             "account-tag" in capabilities)
        return render.tagged(lines, {"time": render.time_tag(event.at)})

    def _history_batch(self, kind: str, target: str | None, lines: list[str]) -> list[str]:
        """`lines` in an IRCv3 batch of `kind` (with `batch` negotiated; else as they are)."""
        if "batch" not in self.capabilities:
            return lines
        self._batches += 1
        reference = f"H{self._batches}"
        return [render.line(self._server_name, "BATCH", f"+{reference}", kind, *([target] if target else [])),
                *render.tagged(lines, {"batch": reference}), render.line(self._server_name, "BATCH", f"-{reference}")]

    def _extended_join(self) -> tuple[str, str] | None:
        """With IRCv3 extended-join, what this client's own JOIN carries: its account and real name."""
        if "extended-join" not in self.capabilities:
            return None
        user = self._server.user_info(self.nick)
        return (user.account, user.realname) if user is not None else (self.account or "", self.realname)

    def _names(self, listed: Sequence[str]) -> Sequence[str]:
        """A channel's members as NAMES lists them: with IRCv3's userhost-in-names, each as nick!user@host."""
        if "userhost-in-names" not in self.capabilities:
            return listed
        shown = []
        for member in listed:
            bare = member.lstrip("@+")
            user = self._server.user_info(bare)
            shown.append(f"{member}!{user.username if user is not None else bare}@{render.HOST}")
        return shown

    def disconnect(self, reason: str) -> None:
        """ERROR, then close once everything before it has been sent."""
        assert self._life is not None
        self._life.disconnect(reason)


def _fits_with_tags(raw: bytes) -> bool:
    """Whether a line over 512 bytes is within them besides its message tags (at most 4096 bytes of them)."""
    if not raw.startswith(b"@"):
        return False
    space = raw.find(b" ")
    return 0 < space < MAX_TAG_SECTION_BYTES and len(raw) - space - 1 <= MAX_LINE_BYTES


def _meets(channel: replies.ChannelInfo, conditions: Sequence[str]) -> bool:
    """Whether a channel meets every one of LIST's ELIST conditions (a mask, !mask, <N or >N members)."""
    for condition in conditions:
        head, rest = condition[0], condition[1:]
        if head in "<>":
            if not rest.isdigit() or not (channel.count < int(rest) if head == "<" else channel.count > int(rest)):
                return False
        elif head == "!":
            if matches(rest, [channel.name]):
                return False
        elif not matches(condition, [channel.name]):
            return False
    return True


def _decode(raw: bytes) -> str:
    """UTF-8; a line that is not is latin-1, as IRC servers commonly read it."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


@define(slots=False)  # Factory keeps state in instance attributes of its own
class IrcDoor(Door, Factory[IrcSession]):
    """Builds an IrcSession for each connection to the IRC port."""

    noisy = False
    log_name = " (IRC)"

    @property
    def server_name(self) -> str:
        """The server's name as IRC has it: one word."""
        return "".join(character if character.isalnum() or character in "-." else "-"
                       for character in self.server.name) or "chatd"

    @property
    def isupport(self) -> list[str]:
        return ["CASEMAPPING=ascii", "CHANTYPES=#", f"NICKLEN={MAX_NICK_CHARS}",
                f"CHANNELLEN={MAX_CHANNEL_CHARS + 1}", "PREFIX=(ov)@+", f"NETWORK={self.server_name}",
                f"CHANLIMIT=#:{MAX_CHANNELS_PER_USER}", "CHANMODES=Ibe,k,l,imnst", "EXCEPTS=e", "INVEX=I", "ELIST=MNU",
                f"CHATHISTORY={MAX_CHATHISTORY}", "MSGREFTYPES=timestamp,msgid",
                f"MODES={MAX_CHANGES}", f"KEYLEN={MAX_KEY_CHARS}", f"MAXLIST=beI:{MAX_MASKS}", "WHOX", f"MONITOR={MAX_WATCHED}",
                f"USERLEN={USERLEN}", f"BOT={BOT_MODE}", f"TARGMAX=JOIN:,KICK:{MAX_TARGETS},NAMES:{MAX_TARGETS},"
                f"NOTICE:{MAX_TARGETS},PART:,PRIVMSG:{MAX_TARGETS},WHOIS:1"]

    def buildProtocol(self, addr: IAddress | None) -> IrcSession:
        assert addr is not None
        return IrcSession(self, addr)
