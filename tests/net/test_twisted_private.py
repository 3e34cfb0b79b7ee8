"""
What chatd relies on in Twisted's private state (chatd.net.twisted_private),
checked against the installed Twisted on real loopback sockets: these fail
as soon as an upgrade changes it, before anything subtler breaks.
"""

import select
import sys
import socket

import pytest
import pytest_twisted
from tests.fakes import one_connection
from twisted.internet import reactor
from twisted.internet import defer
from twisted.internet.defer import inlineCallbacks
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread

from chatd.net.certificate import self_signed
from chatd.net.handshake import HandshakeFailures, TLSEntrance
from chatd.net.limits import ConnectionLimits
from chatd.net.tls import ServerTLS
from chatd.net.twisted_private import (input_waiting, accept_now, listening_socket, nothing_buffered, socket_of,
                                      write_out, write_rest)


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


@pytest_twisted.inlineCallbacks
def test_a_tcp_transport_writes_out_what_it_holds_when_told():
    """What a write left for the next poll reaches the peer at once; a transport without that state is left alone."""
    port, client, server = yield one_connection()
    try:
        transport = server.transport
        transport.write(b"now, not at the next poll")
        write_out(transport)
        assert nothing_buffered(transport)
        client.settimeout(5)
        assert client.recv(100) == b"now, not at the next poll"  # no reactor turn in between
        write_out(transport)  # nothing held: nothing happens
        write_out(StringTransport())
    finally:
        client.close()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_the_rest_of_a_direct_send_waits_uncopied_in_the_transport_and_reaches_the_peer():
    """
    write_rest: what a send left of a bytes object becomes the TCP
    transport's own buffer, that very object from the offset on, and the
    reactor sends exactly that rest; a view, or a transport that already
    holds something, gets a copy through write, behind what it holds.
    """
    port, client, server = yield one_connection()
    try:
        transport = server.transport
        data = b"sent already|left for the reactor"
        write_rest(transport, data, len(b"sent already|"))
        assert transport.dataBuffer is data and not nothing_buffered(transport)
        write_rest(transport, memoryview(b"<a view>"), 0)  # behind it, copied
        write_rest(transport, b"xx and the end", 2)
        client.setblocking(False)
        expected = b"left for the reactor<a view> and the end"
        assert (yield read_until_end_or(client, expected)) == expected
        assert nothing_buffered(transport)
    finally:
        client.close()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_input_waiting_sees_bytes_the_reactor_has_not_read_yet_and_leaves_them():
    """A peek: True while the client's bytes wait unread, and the reactor still reads them afterwards."""
    port, client, server = yield one_connection()
    try:
        transport = server.transport
        assert input_waiting(transport) == b""
        assert input_waiting(StringTransport()) == b""
        client.sendall(b"first words")
        select.select([transport.socket], [], [], 5)  # arrived (the reactor, blocked here, has not read them)
        assert input_waiting(transport) == b"f"
        read = defer.Deferred()
        server.dataReceived = read.callback
        assert (yield read) == b"first words"
    finally:
        client.close()
        yield port.stopListening()


def test_a_transport_without_that_state_gets_no_socket():
    """Anything else (a test's StringTransport, TLS) is written to the usual way."""
    assert socket_of(StringTransport()) is None


@pytest_twisted.inlineCallbacks
def test_a_tls_connection_over_a_tcp_one_gets_no_socket_though_its_wrapper_passes_the_tcp_ones_on(tmp_path):
    """
    Twisted's TLS wrapper passes any attribute it lacks to the TCP transport
    under it, socket and buffer state included: socket_of must still say
    None for it (a send on that socket would be clear text under TLS), and
    for a TCP transport that carries TLS itself (startTLS).
    """
    port, client, server = yield one_connection()
    try:
        certificate, _ = self_signed(tmp_path, ["lab-pc"], [])
        entrance = TLSEntrance(ServerTLS(certificate, lambda: certificate), Factory(),
                               clock=Clock(), limits=ConnectionLimits(10, 10), is_banned=lambda address: False,
                               login_timeout_seconds=60, failures=HandshakeFailures(Clock()))
        tls = entrance.buildProtocol(server.transport.getPeer())
        tls.transport = server.transport  # as makeConnection would set it, without starting a handshake
        assert tls.socket is server.transport.socket  # passed on
        assert socket_of(tls) is None
        server.transport.TLS = True  # as startTLS leaves a TCP transport
        assert socket_of(server.transport) is None
    finally:
        client.close()
        yield port.stopListening()


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


def test_twisted_web_leaves_an_upgraded_channel_the_transports_producer_and_leave_http_takes_its_connection():
    """
    On twisted.web's real Site and HTTP channel (in memory): once the
    WebSocket is open, the HTTP channel is still the TCP transport's
    producer; leave_http unregisters it, turns its timeout off and makes
    the given protocol the transport's, connected to it.
    """
    from twisted.web.http import HTTPChannel

    from chatd.net.twisted_private import leave_http
    from tests.fakes import Browser, make_site

    upgraded = []
    original = HTTPChannel._protocolUpgradeForWebsockets

    def watch(channel, protocol):
        original(channel, protocol)
        upgraded.append((channel, channel.transport.producer is channel))

    HTTPChannel._protocolUpgradeForWebsockets = watch
    try:
        clock = Clock()
        site, _ = make_site(clock)
        browser = Browser(site, clock)
    finally:
        HTTPChannel._protocolUpgradeForWebsockets = original
    [(channel, was_producer)] = upgraded
    assert was_producer and browser.accepted
    # chatd's session has left that one already: a channel of our own leaves its connection.
    transport = StringTransport()
    channel = site.buildProtocol(transport.getPeer())
    channel.makeConnection(transport)
    assert transport.producer is channel and channel.timeOut
    protocol = Protocol()
    assert leave_http(channel, protocol) is transport
    assert transport.producer is None and channel.timeOut is None
    assert transport.protocol is protocol and protocol.transport is transport and protocol.connected


def test_a_websocket_wire_reads_an_open_websocket_answers_its_pings_and_shows_a_partial_message():
    """
    twisted.web.websocket's wire protocol, made by websocket_wire for a
    WebSocket already open: connected, it tells its WebSocketProtocol so;
    it gathers a message's fragments (partial_message_size sees them) and
    delivers the whole message, and answers a ping.
    """
    from wsproto.connection import Connection, ConnectionType
    from wsproto.events import Ping, Pong, TextMessage

    from chatd.net.twisted_private import partial_message_size, websocket_wire

    heard = []

    class Session:
        def negotiationStarted(self, transport):
            heard.append(("started", transport))

        def textMessageReceived(self, message):
            heard.append(("text", message))

    session = Session()
    wire = websocket_wire(session)
    transport = StringTransport()
    wire.makeConnection(transport)
    assert heard == [("started", wire)]
    browser = Connection(ConnectionType.CLIENT)
    wire.dataReceived(browser.send(TextMessage("x" * 100, message_finished=False)))
    assert partial_message_size(wire) == 100 and heard[1:] == []
    wire.dataReceived(browser.send(TextMessage("y")) + browser.send(Ping(b"are you there")))
    assert partial_message_size(wire) == 0 and heard[1:] == [("text", "x" * 100 + "y")]
    browser.receive_data(transport.value())
    assert [(type(event), event.payload) for event in browser.events()] == [(Pong, b"are you there")]


@pytest_twisted.inlineCallbacks
def test_a_reading_udp_port_prepares_its_socket_and_reads_its_own_datagrams():
    """Twisted's udp.Port calls createInternetSocket before binding and doRead when readable, with the state chatd reads."""
    from twisted.internet.protocol import DatagramProtocol

    from chatd.net.twisted_private import ReadingUDPPort

    prepared, read = [], defer.Deferred()

    class Port(ReadingUDPPort):
        def prepare_socket(self, sock):
            prepared.append(sock.family)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)

        def read_datagrams(self):
            data, source = self.udp_socket.recvfrom(self.packet_bytes)
            if not read.called:
                read.callback((data, self.read_budget, self.is_ipv6))

    port = Port(0, DatagramProtocol(), "127.0.0.1", reactor=reactor)
    port.startListening()
    try:
        assert prepared == [socket.AF_INET]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"hello", ("127.0.0.1", port.getHost().port))
        data, budget, ipv6 = yield read.addTimeout(5, reactor)
        assert data == b"hello" and budget > 0 and ipv6 is False
    finally:
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_when_lost_hears_a_txredisapi_connection_close_with_its_reason():
    """txredisapi's protocol takes a connectionLost set on the instance; the bus hears every loss through it."""
    import txredisapi
    from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
    from twisted.internet.protocol import ServerFactory

    from chatd.net.twisted_private import when_lost

    class Closer(Protocol):
        def connectionMade(self):
            self.transport.loseConnection()

    listening = reactor.listenTCP(0, ServerFactory.forProtocol(Closer), interface="127.0.0.1")
    heard = defer.Deferred()
    protocol = txredisapi.RedisProtocol()
    when_lost(protocol, lambda reason: heard.callback([reason]))
    try:
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", listening.getHost().port), protocol)
        [reason] = yield heard.addTimeout(5, reactor)
        assert reason.check(ConnectionDone) and protocol.connected == 1, "heard first"
        yield deferLater(reactor, 0, lambda: None)
        assert protocol.connected == 0, "then txredisapi's own connectionLost ran"
    finally:
        yield listening.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_lean_tcp_connection_keeps_no_log_strings_and_says_the_same():
    """
    A connection accepted by listen_tcp is a LeanServer: Twisted still made
    logstr and repstr (else this test learns it first), they are not kept,
    and its log prefix and repr are the ones Twisted's Server gives.
    """
    from twisted.internet import tcp

    from chatd.net.twisted_private import LeanServer, listen_tcp

    made = []
    factory = Factory.forProtocol(Protocol)
    factory.buildProtocol = lambda address: made.append(Protocol()) or made[-1]
    listening = listen_tcp(reactor)(0, factory, interface="127.0.0.1")
    client = socket.create_connection(("127.0.0.1", listening.getHost().port))
    try:
        while not made or made[0].transport is None:
            yield deferLater(reactor, 0.01, lambda: None)
        transport = made[0].transport
        assert isinstance(transport, LeanServer)
        assert "logstr" not in vars(transport) and "repstr" not in vars(transport)
        plain = tcp.Server.__new__(tcp.Server)
        vars(plain).update(vars(transport))
        tcp.Server.__init__(plain, transport.socket, transport.protocol, transport.client, transport.server,
                            transport.sessionno, reactor)
        plain.stopReading()  # Twisted's __init__ registered the socket for the copy: it is the connection's again
        transport.startReading()
        assert (transport.logPrefix(), repr(transport)) == (plain.logstr, plain.repstr)
    finally:
        client.close()
        if made and made[0].transport is not None:
            made[0].transport.loseConnection()
        yield listening.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_lean_tcp_connection_keeps_its_attributes_inline_after_twisted_buffers_a_write():
    """
    CPython keeps an object's attributes without a dict only while their
    names are among those its class's first objects set.  Forty
    connections of a LeanServer subclass of their own (whose shared names
    start empty, whatever other tests made), each then given a write that
    Twisted buffers and sends (its doWrite sets dataBuffer and offset):
    none of them grows a dict (without LeanServer's setting those when it
    is made, every one did: 800 bytes).
    """
    import gc

    from twisted.internet import tcp

    from chatd.net.twisted_private import LeanServer

    class Fresh(LeanServer):
        pass

    class FreshPort(tcp.Port):
        transport = Fresh

    made, all_made = [], defer.Deferred()

    class Counted(Protocol):
        def connectionMade(self):
            made.append(self)
            if len(made) == 40:
                all_made.callback(None)

    listening = FreshPort(0, Factory.forProtocol(Counted), 50, "127.0.0.1", reactor)
    listening.startListening()
    clients = [socket.create_connection(("127.0.0.1", listening.getHost().port)) for _ in range(40)]
    try:
        yield all_made
        for protocol in made:
            protocol.transport.write(b"x")  # buffered: the reactor's doWrite sends it
        for client in clients:
            client.settimeout(10)
            assert (yield deferToThread(client.recv, 1)) == b"x"
        transports = [protocol.transport for protocol in made]
        assert all(isinstance(transport, Fresh) and transport.offset == 0 for transport in transports)
        assert not [transport for transport in transports if any(type(r) is dict for r in gc.get_referents(transport))]
    finally:
        for client in clients:
            client.close()
        for protocol in made:
            if protocol.transport is not None:
                protocol.transport.loseConnection()
        yield listening.stopListening()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux gives a listener's options to its connections")
@pytest.mark.parametrize("listener", ["listen_tcp", "a worker's shared port"])
@pytest_twisted.inlineCallbacks
def test_a_connection_has_keepalive_and_no_nagle_from_its_listener(listener):
    """
    chatd's listeners (listen_tcp's, and a worker's port shared through
    SO_REUSEPORT) set keep-alive and no-Nagle on the listening socket, so a
    connection has them when it is accepted and need not set them itself
    (options_from_listener: chatd.net.life then makes no system call).
    """
    from chatd.net.twisted_private import LeanServer, listen_tcp
    from chatd.service.workers import SharedPortBinding

    made = defer.Deferred()

    class Made(Protocol):
        def connectionMade(self):
            made.callback(self.transport)

    factory = Factory.forProtocol(Made)
    if listener == "listen_tcp":
        listening = listen_tcp(reactor)(0, factory, interface="127.0.0.1")
    else:
        listening = SharedPortBinding(reactor, factory).listen(0, "127.0.0.1")
    client = socket.create_connection(("127.0.0.1", listening.getHost().port))
    try:
        transport = yield made
        assert isinstance(transport, LeanServer) and transport.options_from_listener
        assert transport.socket.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        transport.loseConnection()
    finally:
        client.close()
        yield listening.stopListening()
