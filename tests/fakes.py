"""Fakes and helpers the unit tests share: one place, imported by the test modules that need them."""

from __future__ import annotations

import json
import socket

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage
from zope.interface import implementer

from chatd.core.events import Acted, Said
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.store import KEPT, MAX_NOTES, IStore, KeptAccount, NoStore, Taken, mentioning
from chatd.core.turn import Turn
from chatd.net.door import Settings
from chatd.net.limits import ConnectionLimits
from chatd.service.metrics import chat_metrics
from chatd.telnet.protocol import greeting
from chatd.web.protocol import WebDoor
from chatd.web.site import web_site

# -- sessions, for the core


def greet(server: ChatServer, session: ISession) -> None:
    """A new session arrives and is welcomed and asked for a nickname, as a telnet connection is."""
    server.arrive(session)
    server.tell(session, *greeting(server))


def current_channel(server: ChatServer, session: ISession) -> str | None:
    """The channel `session` talks in now (None: in none), as the server keeps it (the server does not say)."""
    member = server._roster.members.get(session)
    return None if member is None or member.current is None else member.current.name


def sessions_in(server: ChatServer, channel: str) -> list[ISession]:
    """The sessions of this node in `channel` (none if there is no such channel), as the server keeps them."""
    found = server._roster.channel(channel)
    return [] if found is None else list(found.members)


@implementer(ISession)
class Session:
    """Records ("events", [...]) per delivery, ("replies", [...]) per send, and disconnects, in one shared list."""

    username = realname = ""
    dialect = "fake"
    lists_members = True
    quiet_lobby = False
    hears_tags = False
    hears_watched = False

    def __init__(self, name, log, address="127.0.0.1"):
        self.name, self.log, self.address = name, log, address
        self.shares = []

    def deliver(self, share):
        self.shares.append(share)
        self.log.append((self.name, "events", share.events))

    def send(self, replies):
        self.log.append((self.name, "replies", list(replies)))

    def disconnect(self, reason):
        self.log.append((self.name, "disconnect", reason))


@implementer(IStore)
class MemoryStore(NoStore):
    """
    A store in memory for the core's tests: accounts with their passwords as
    given (no hashing), notes, and kept events.  Its answers come at once,
    unless `hold` is set: then they wait in `held` until `release()`, as a
    real store's come in a later reactor turn.
    """

    def __init__(self, accounts=()):
        self.passwords = {}  # by nickname key
        self.nicks = {}
        self.left_at = {}
        self.notes = {}
        self.events = []
        self.hold = False
        self.held = []
        self.checks = 0
        self.healthy = True
        self.keeps_accounts = True
        self.read_marks = {}
        self.watchers = []
        self.channels = {}  # key -> the modes kept
        for nick, password in accounts:
            self.passwords[nick.casefold()], self.nicks[nick.casefold()] = password, nick

    def _answer(self, result):
        done = Deferred()
        if self.hold:
            self.held.append((done, result))
        elif isinstance(result, Exception):
            done.errback(result)
        else:
            done.callback(result)
        return done

    def release(self):
        held, self.held = self.held, []
        for done, result in held:
            done.errback(result) if isinstance(result, Exception) else done.callback(result)

    def watch(self, changed):
        self.watchers.append(changed)

    def record(self, events):
        self.events.extend(event for event in events if isinstance(event, KEPT))

    def history(self, channel, count, before=None):
        return self._answer([event for event in self.events if event.channel.casefold() == channel.casefold()
                             and (before is None or event.at < before)][-count:])

    def accounts(self):
        return [KeptAccount(nick, self.left_at.get(key)) for key, nick in self.nicks.items()]

    def register(self, nick, password, at):
        if nick.casefold() in self.passwords:
            return self._answer(Taken(nick))
        self.passwords[nick.casefold()], self.nicks[nick.casefold()] = password, nick
        return self._answer(None)

    def check_password(self, nick, password):
        self.checks += 1
        return self._answer(self.passwords.get(nick.casefold()) == password)

    def change_password(self, nick, password):
        self.passwords[nick.casefold()] = password
        return self._answer(None)

    def unregister(self, nick):
        self.passwords.pop(nick.casefold(), None)
        self.nicks.pop(nick.casefold(), None)
        self.notes.pop(nick.casefold(), None)
        return self._answer(None)

    def left(self, nick, at):
        self.left_at[nick.casefold()] = at

    def leave_note(self, recipient, note):
        notes = self.notes.setdefault(recipient.casefold(), [])
        if len(notes) >= MAX_NOTES:
            return self._answer(False)
        notes.append(note)
        return self._answer(True)

    def take_notes(self, recipient):
        return self._answer(self.notes.pop(recipient.casefold(), []))

    def mark_read(self, nick, channel, at):
        self.read_marks[nick.casefold(), channel.casefold()] = at

    def kept_channels(self):
        return list(self.channels.values())

    def keep_channel(self, state):
        self.channels[state.channel.casefold()] = state

    def unread(self, nick):
        counts = {}
        for (who, channel), at in self.read_marks.items():
            if who == nick.casefold():
                count = sum(1 for event in self.events if event.channel.casefold() == channel and event.at > at
                            and isinstance(event, (Said, Acted)))
                if count:
                    counts[channel] = count
        return self._answer(list(counts.items()))

    def mentions(self, nick, since):
        return self._answer(mentioning([event for event in self.events if event.at > since], nick))


# -- a real loopback connection, for the connection runtime


class _Server(Protocol):
    """Hands its connection, once made, to the test, and says how it was lost."""

    def connectionMade(self):
        self.lost = Deferred()
        self.factory.connected.callback(self)

    def connectionLost(self, reason):
        self.lost.callback(reason.value)  # the exception: a Failure would fire the errback


@inlineCallbacks
def one_connection():
    """A listening port on 127.0.0.1, a plain client socket connected to it, and the server's side."""
    factory = Factory.forProtocol(_Server)
    factory.connected = Deferred()
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", port.getHost().port))
    server = yield factory.connected
    return port, client, server


# -- a browser in memory, for the web door


class Browser:
    """One browser's connection to the web port, in memory."""

    def __init__(self, site, clock, host="127.0.0.1", origin="http://127.0.0.1:8080", path="/chat"):
        self.clock = clock
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, 50000),
                                         hostAddress=IPv4Address("TCP", "127.0.0.1", 8080))
        self.protocol = site.buildProtocol(self.transport.getPeer())
        self.transport.protocol = self.protocol  # as Twisted's TCP transport holds it (and a hand-over changes it)
        self.protocol.makeConnection(self.transport)
        self.ws = WSConnection(ConnectionType.CLIENT)
        headers = [] if origin is None else [("Origin", origin)]
        self.events = []
        self._ended = False
        self.protocol.dataReceived(self.ws.send(Request(host="127.0.0.1:8080", target=path, extra_headers=headers)))
        arrived = self.read()
        self.accepted = any(isinstance(event, AcceptConnection) for event in arrived)
        self._unread = [event for event in arrived if isinstance(event, TextMessage)]  # the welcome

    def read(self) -> list:
        """What arrived since the last read (after the turn's end), as wsproto events."""
        self.clock.advance(0)
        data = self.transport.value()
        self.transport.clear()
        if data:
            self.ws.receive_data(data)
        events = list(self.ws.events())
        if self.transport.disconnecting and not self._ended:
            self._ended = True
            self.ws.receive_data(None)
            events += self.ws.events()
        self.events += events
        return events

    def messages(self) -> list:
        """The messages that arrived since the last call, as JSON."""
        arrived, self._unread = self._unread + self.read(), []
        return [json.loads(event.data) for event in arrived if isinstance(event, TextMessage)]

    def send(self, message) -> None:
        self.send_raw(self.ws.send(TextMessage(json.dumps(message))))

    def send_raw(self, data: bytes) -> None:
        self.transport.protocol.dataReceived(data)

    def lost(self) -> None:
        """The connection closed, as the TCP transport tells its protocol."""
        self.transport.protocol.connectionLost(Failure(ConnectionDone()))

    def close_code(self):
        closes = [event.code for event in self.events if isinstance(event, CloseConnection)]
        return closes[0] if closes else None


def make_site(clock, origins=(), limits=None, moderation=None, **settings):
    server = ChatServer("lab", clock, turn=Turn(clock), moderation=moderation)
    sessions = WebDoor(server, Settings("lab", **{"max_line_bytes": 100, **settings}), clock)
    registry = chat_metrics(server, {"web": sessions.connections}, sessions.counts)
    return web_site(sessions, registry, limits or ConnectionLimits(100, 10), moderation, origins), sessions
