"""
The room through real loopback sockets on port 0, in-process with
pytest-twisted: the service from makeService, Twisted clients, Deferreds for
every expected line.
"""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    connectProtocol,
)
from twisted.protocols.basic import LineReceiver

from chatd.service.tap import Options, makeService


class ChatClient(LineReceiver):
    """Collects lines; `next_line()` is a Deferred for the next one."""

    delimiter = b"\r\n"

    def __init__(self):
        self.lines = []
        self._waiting = []
        self.closed = defer.Deferred()

    def lineReceived(self, line):
        text = line.decode()
        if self._waiting:
            self._waiting.pop(0).callback(text)
        else:
            self.lines.append(text)

    def next_line(self):
        if self.lines:
            return defer.succeed(self.lines.pop(0))
        waiting = defer.Deferred()
        waiting.addTimeout(10, reactor)
        self._waiting.append(waiting)
        return waiting

    @defer.inlineCallbacks
    def next_lines(self, count):
        lines = []
        for _ in range(count):
            lines.append((yield self.next_line()))
        return lines

    def say(self, text):
        self.sendLine(text.encode())

    def connectionLost(self, reason):
        self.closed.callback(None)


@pytest.fixture
def chat_port():
    options = Options()
    options.parseOptions(["--port", "0", "--interface", "127.0.0.1", "--name", "lab", "--no-echo"])
    service = makeService(options, reactor)
    service.startService()
    yield service.getServiceNamed("chat").port
    pytest_twisted.blockon(defer.maybeDeferred(service.stopService))


@defer.inlineCallbacks
def connect(port, nick=None):
    client = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), ChatClient())
    yield client.next_lines(2)
    if nick is not None:
        client.say(nick)
        assert (yield client.next_line()) == f"*** Hello {nick}! Type /help for commands."
    return client


@defer.inlineCallbacks
def disconnect(*clients):
    for client in clients:
        client.transport.loseConnection()
        yield client.closed


@pytest_twisted.inlineCallbacks
def test_join_and_public_message_over_sockets(chat_port):
    """Two clients over loopback: the join notice and a message arrive exactly."""
    alice = yield connect(chat_port, "alice")
    bob = yield connect(chat_port, "bob")
    assert (yield alice.next_line()) == "*** bob has joined (2 users online)"
    bob.say("hi alice")
    assert (yield alice.next_line()) == "<bob> hi alice"
    yield disconnect(bob)
    assert (yield alice.next_line()) == "*** bob has left (Quit)"
    yield disconnect(alice)


@pytest_twisted.inlineCallbacks
def test_fan_out_reaches_every_member_in_order_exactly_once(chat_port):
    """Twenty clients, three senders, ten lines each: every receiver gets each sender's lines in order, once."""
    clients = []
    for index in range(20):
        clients.append((yield connect(chat_port, f"user{index}")))
    # Drain the join notices: user{i} saw the joins of everyone after it.
    for index, client in enumerate(clients):
        yield client.next_lines(len(clients) - 1 - index)
    senders = clients[:3]
    for round_ in range(10):
        for sender_index, sender in enumerate(senders):
            sender.say(f"s{sender_index} line {round_}")
    for index, client in enumerate(clients):
        own = 10 if index < 3 else 0
        received = yield client.next_lines(30 - own)
        for sender_index in range(3):
            if sender_index == index:
                continue
            from_sender = [line for line in received if line.startswith(f"<user{sender_index}> ")]
            assert from_sender == [f"<user{sender_index}> s{sender_index} line {n}" for n in range(10)]
    yield disconnect(*clients)


@pytest_twisted.inlineCallbacks
def test_a_client_that_vanishes_does_not_hurt_the_others(chat_port):
    """One client reset mid-conversation: the others keep chatting."""
    alice = yield connect(chat_port, "alice")
    bob = yield connect(chat_port, "bob")
    carol = yield connect(chat_port, "carol")
    yield alice.next_lines(2)
    yield bob.next_line()
    bob.transport.abortConnection()
    yield bob.closed
    assert (yield alice.next_line()) == "*** bob has left (Connection lost)"
    assert (yield carol.next_line()) == "*** bob has left (Connection lost)"
    alice.say("still here?")
    assert (yield carol.next_line()) == "<alice> still here?"
    yield disconnect(alice, carol)


@pytest_twisted.inlineCallbacks
def test_ipv6_wildcard_is_dual_stack():
    """`--interface ::` serves IPv6 clients and, where the OS allows, IPv4 ones."""
    options = Options()
    options.parseOptions(["--port", "0", "--interface", "::", "--no-echo"])
    service = makeService(options, reactor)
    service.startService()
    try:
        port = service.getServiceNamed("chat").port
        six = yield connectProtocol(TCP6ClientEndpoint(reactor, "::1", port), ChatClient())
        four = yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), ChatClient())
        assert (yield six.next_line()).startswith("*** Welcome to chatd")
        assert (yield four.next_line()).startswith("*** Welcome to chatd")
        yield disconnect(six, four)
    finally:
        yield service.stopService()
