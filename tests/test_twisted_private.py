"""
What chatd relies on in Twisted's private state (chatd.service.twisted_private),
checked against the installed Twisted on real loopback sockets: these fail
as soon as an upgrade changes it, before anything subtler breaks.
"""

import select
import socket

import pytest_twisted
from test_flow import one_connection
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport

from chatd.service.twisted_private import accept_now, listening_socket, nothing_buffered, socket_of


@pytest_twisted.inlineCallbacks
def test_a_tcp_transport_shows_its_socket_and_whether_anything_waits_in_its_buffer():
    """Idle: nothing buffered.  After a write Twisted holds for the next poll: buffered.  Once its FIN is sent: not to be sent to."""
    port, client, server = yield one_connection()
    try:
        transport = server.transport
        sock = socket_of(transport)
        assert sock is transport.getHandle() and sock.getpeername() == client.getsockname()
        assert nothing_buffered(transport)
        transport.write(b"held until the next poll")
        assert not nothing_buffered(transport)
        client.setblocking(False)
        received = yield read_until_end_or(client, b"held until the next poll")
        assert received == b"held until the next poll"
        assert nothing_buffered(transport)  # sent: the buffer is empty again
        transport.loseWriteConnection()
        assert (yield read_until_end_or(client, None)) == b""  # the FIN came
        assert not nothing_buffered(transport)
    finally:
        client.close()
        yield port.stopListening()


def test_a_transport_without_that_state_gets_no_socket():
    """Anything else (a test's StringTransport, TLS) is written to the usual way."""
    assert socket_of(StringTransport()) is None


def test_a_listening_port_accepts_when_asked_before_the_reactor_runs():
    """The self-check: a connection to our own port is accepted by reading the listening socket ourselves."""
    accepted = []

    class Noted(Protocol):
        def connectionMade(self):
            accepted.append(self)
            self.transport.abortConnection()

    port = reactor.listenTCP(0, Factory.forProtocol(Noted), interface="127.0.0.1")
    try:
        sock = listening_socket(port)
        assert sock.getsockname()[1] == port.getHost().port and sock.type == socket.SOCK_STREAM
        with socket.create_connection(("127.0.0.1", port.getHost().port), timeout=10):
            assert select.select([sock], [], [], 10)[0]
            accept_now(port)
        assert len(accepted) == 1
    finally:
        port.stopListening()


@inlineCallbacks
def read_until_end_or(client, expected):
    """Read the non-blocking `client` between reactor turns until it has `expected` or the end of input (at most 10 s)."""
    received = b""
    for _ in range(1000):
        yield deferLater(reactor, 0.01, lambda: None)
        try:
            chunk = client.recv(100)
        except BlockingIOError:
            continue
        if not chunk or received + chunk == expected:
            return received + chunk
        received += chunk
    raise AssertionError(f"only {received!r} in 10 s")
