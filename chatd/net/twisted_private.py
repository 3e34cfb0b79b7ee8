"""
Every place chatd reaches into Twisted's private state, and why.  Nothing
else in chatd touches an underscore name or an attribute outside Twisted's
interfaces; tests/net/test_twisted_private.py fails as soon as the installed
Twisted changes what these rely on.

1. The direct send (chatd.net.flow.SendQueue): at the end of a turn, a
   TCP transport whose own buffer is empty is written to with one send()
   (or sendmsg()) on its socket, instead of write() (which buffers, asks
   epoll to watch the socket and sends on the next poll: three system
   calls and a trip through the poll loop per connection per turn).  Reads
   `twisted.internet.abstract.FileDescriptor`'s `dataBuffer`,
   `_tempDataLen` and `_writeDisconnected`, and the TCP transport's
   `socket`, `connected` and `TLS`.  Never on a TLS connection: its bytes
   must go through TLS, and Twisted's TLS wrapper passes these very
   attributes on to the TCP transport under it, so only a
   `twisted.internet.tcp.Connection` itself, without TLS, qualifies.  Under
   a TLS connection, the TCP transport's `write` (an instance attribute
   over Twisted's method) sends each record of ciphertext the same way
   (`send_eagerly`).  What a direct send leaves of a buffer becomes the
   TCP transport's `dataBuffer`, from `offset` on, without a copy
   (`write_rest`), and the transport is told to watch for room
   (`startWriting`).

2. The listening self-check (chatd.service.listening): right after
   binding, before the reactor runs, chatd connects to its own port (or
   sends itself a datagram) and accepts (reads) on the listening socket
   itself, to prove no other program shares the port.  Calls the TCP
   port's `doRead` and reads the ports' `socket` and `fileno()`.

3. The web's WebSocket (chatd.web.protocol), on twisted.web.websocket:
   - Once the upgrade is answered, the connection is the web session's
     own (`leave_http`): Twisted's upgrade (`HTTPChannel.
     _protocolUpgradeForWebsockets`) leaves the HTTP channel as the TCP
     transport's protocol, passing each read to its `_WebSocketWireProtocol`
     and wsproto connection, about 5 KB a connection that a browser's
     usual frames never need.  The session takes the channel's place (the
     hand-over of 4) and reads the usual frames itself (chatd.web.frames).
   - From the first frame of another kind on, it hands every read to a
     `_WebSocketWireProtocol` of its own, made then (`websocket_wire`) on a
     fresh wsproto server connection, which is open from the start: the
     frames of the connection's rest are read, answered and closed as
     twisted.web.websocket does.
   - A bound on an incoming message: Twisted gathers a message's fragments
     in the wire protocol's `_textBuffer` and `_bytesBuffer` without limit,
     and chatd checks their size after each read.
   - A turn's share is one text frame whose bytes every member with that
     share gets (chatd.web.dialect), written with the direct send above to
     the TCP transport.

4. A browser at the chat port (chatd.telnet.protocol): a connection whose
   first bytes, before the greeting, are an HTTP request is handed to the
   web page's HTTP server by pointing the TCP transport's `protocol` at it
   (Twisted's tcp.Connection delivers reads and the close to whatever that
   attribute holds).  The same hand-over makes a plain port's connection
   a TLS one when its first bytes are a ClientHello (chatd.net.handshake),
   and, through the TLS wrapper, hands a connection to its door once the
   handshake is done: there by the wrapper's public `wrappedProtocol`.
   Before the greeting, `input_waiting` peeks (MSG_PEEK) at the TCP
   transport's socket for first bytes the reactor has not read yet.

5. The cluster bus's entries go out at once (chatd.bus.link): a turn's
   entry, written to the Redis connection by txredisapi (which buffers it
   in the transport until the next poll), is handed to the kernel before
   this node's own fan-out by calling the TCP transport's `doWrite` (what
   the reactor calls when the socket is writable).  Reads the state of 1.

6. Why a Redis connection was lost before it was ready (chatd.bus.link):
   txredisapi's factory hears of a connection only once it is ready, so
   the bus wraps the protocol's `connectionLost` (an instance attribute
   over txredisapi's method) to hear of every loss and its reason (a TLS
   certificate refused).

7. The UDP ports of the LAN services (chatd.lan.udp) read their own
   datagrams: each datagram's destination address (recvmsg with
   IP_PKTINFO), and, for the echo, up to 64 datagrams per system call
   (recvmmsg).  `ReadingUDPPort` subclasses `twisted.internet.udp.Port`:
   it sets socket options in `createInternetSocket`, reads in `doRead`
   (what the reactor calls when the socket is readable) at most
   `maxThroughput` bytes a turn, and uses the port's `socket`,
   `addressFamily` and `maxPacketSize`.

8. Smaller TCP connections (chatd.service's listeners, `listen_tcp` and
   `adopt_stream_port`): Twisted's `tcp.Server.__init__` makes two strings
   for every connection for its logs and repr, `logstr` and `repstr`,
   about 150 bytes of each idle user.  `LeanServer` drops them once made
   and makes them again when asked (`logPrefix`, `__repr__`), as Twisted's
   `Server` does.  It also sets, when it is made, what Twisted sets only
   later (`dataBuffer` and `offset` in `doWrite`, the producer's state).
   CPython keeps an object's attributes inline, without a dict, only while
   their names are among those its class's first few objects set; the
   first attribute of a new name after that makes a dict of about 800
   bytes.  Every web user's connection got one in `doWrite` (the
   WebSocket's 101 goes through Twisted's `write`).  `LeanServer` is the
   `transport` of a `tcp.Port` subclass, which
   `listen_tcp` builds as the reactor's `listenTCP` does
   (`Port(...).startListening()`) and `adopt_stream_port` as its
   `adoptStreamPort` does (`Port._fromListeningDescriptor`).  That
   subclass also sets the connections' TCP options on the listening
   socket where Twisted makes it (`createInternetSocket`, before it binds):
   Linux passes them on to every connection it accepts.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import tcp, udp
from twisted.internet.interfaces import IListeningPort
from twisted.internet.posixbase import PosixReactorBase
from twisted.protocols.policies import ProtocolWrapper
from twisted.web._websocket_impl import _WebSocketWireProtocol, serverBootstrap
from wsproto.connection import Connection, ConnectionType

from chatd.core.batch import Buffer

_BUFFER_STATE = ("socket", "connected", "dataBuffer", "_tempDataLen", "_writeDisconnected")


def socket_of(transport: Any) -> socket.socket | None:
    """
    The socket of a Twisted TCP transport whose buffer state chatd can
    read (see nothing_buffered), and which carries clear text; None for any
    other transport (a test's, TLS), which then just gets `write`.
    """
    if _is_tcp(transport) and not transport.TLS:
        sock: socket.socket = transport.socket
        return sock
    return None


def send_eagerly(transport: Any) -> None:
    """
    From now on, what is written to this TCP transport (the one under a TLS
    connection, which writes each record of ciphertext as OpenSSL makes it)
    goes to its socket at once while nothing waits in its buffer, as the
    direct send does for clear text (see send_now); the rest, and all of it
    once something waits, through Twisted's `write`.  Nothing for a
    transport whose buffer state chatd cannot read.
    """
    if not _is_tcp(transport):
        return
    sock, buffered_write = transport.socket, transport.write

    def write(data: bytes) -> None:
        sent = send_now(transport, sock, (data,)) if data else 0
        if sent is None:  # the peer had reset the connection: it is being closed
            return
        if sent < len(data):
            buffered_write(data[sent:] if sent else data)

    transport.write = write


def input_waiting(transport: Any, size: int = 1) -> bytes:
    """
    Up to `size` of the bytes from the peer that wait on a TCP transport's
    socket, not yet read by the reactor (a peek: they stay for it); b"" if
    none, and for any other transport.
    """
    sock = socket_of(transport)
    if sock is None:
        return b""
    try:
        return sock.recv(size, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except OSError:  # nothing waiting (EAGAIN), or the connection is broken: the reactor will hear
        return b""


def _is_tcp(transport: Any) -> bool:
    """
    A TCP connection itself, whose buffer state chatd can read.  Not a
    wrapper around one (TLS): Twisted's wrappers pass any attribute they
    lack on to the TCP connection under them, and a send on that socket
    would bypass the wrapper (clear text on a TLS connection).
    """
    return isinstance(transport, tcp.Connection) and all(hasattr(transport, name) for name in _BUFFER_STATE)


def nothing_buffered(transport: Any) -> bool:
    """
    True while the TCP transport (one socket_of accepts) is connected, has
    nothing waiting to be sent and has not been told to close its writing
    side: a send() on its socket then overtakes nothing.
    """
    return bool(transport.connected and not transport.dataBuffer and not transport._tempDataLen
                and not transport._writeDisconnected)


def send_now(transport: Any, sock: socket.socket, parts: Sequence[Buffer]) -> int | None:
    """
    If nothing waits in the TCP transport's own buffer (see
    nothing_buffered), send `parts` one after another on its socket now, in
    one system call; return how many bytes the socket took (0 when it was
    full, or when the transport's buffer was not empty).  None: the peer
    had reset the connection, and it is aborted.  (That send took the
    socket's error, so Twisted would next read a plain end of file and
    report a clean close.)
    """
    if not nothing_buffered(transport):
        return 0
    try:
        return sock.send(parts[0]) if len(parts) == 1 else sock.sendmsg(parts)
    except (BlockingIOError, InterruptedError):  # the socket's buffer is full: Twisted waits for room
        return 0
    except OSError:
        transport.abortConnection()
        return None


def write_rest(transport: Any, data: Buffer, sent: int) -> None:
    """
    Leave the rest of `data` (past its first `sent` bytes, which a direct
    send took: see send_now) for the TCP transport to send when its socket
    has room, as `transport.write(data[sent:])` would, but without copying
    it: the transport's buffer, empty since that send, becomes `data` itself
    from `sent` on (Twisted's `dataBuffer` and `offset`).  A turn's share is
    one bytes object for all the members it goes to, so members whose
    sockets are full then hold one copy of a big delivery between them, not
    one each.  Any other buffer or transport gets a copy through `write`.
    """
    if sent and type(data) is bytes and _is_tcp(transport) and nothing_buffered(transport):
        transport.dataBuffer, transport.offset = data, sent
        transport.startWriting()
    else:
        transport.write(bytes(data[sent:]))


def write_out(transport: Any) -> None:
    """
    Hand what a TCP transport (TLS or not: what it holds is ready to send)
    holds to the kernel now, as the reactor would on its next poll; what the socket does not
    take stays for the reactor.  A connection found broken is aborted.
    """
    if not _is_tcp(transport) or nothing_buffered(transport) or not transport.connected:
        return
    if transport.doWrite() is not None:  # the reactor would now close it
        transport.abortConnection()


def listening_socket(port: IListeningPort) -> socket.socket:
    """The socket of a listening TCP or UDP port."""
    sock: socket.socket = port.socket  # type: ignore[attr-defined]
    return sock


def accept_now(port: IListeningPort) -> None:
    """Accept (TCP) what waits on a listening port, as the reactor would when it is readable."""
    port.doRead()  # type: ignore[attr-defined]


def leave_http(channel: Any, protocol: Any) -> Any:
    """
    The connection of an HTTP channel that twisted.web.websocket has just
    upgraded is `protocol`'s from now on (see 3): the channel's idle
    timeout is off, it is no longer the TCP transport's producer, and it,
    its request and Twisted's wire protocol are let go.  (Its list of
    requests is emptied: the request's reference back to the channel is
    their only cycle, so they are freed at once, not by the collector.)
    Returns the transport.
    """
    transport = channel.transport
    channel.setTimeout(None)
    transport.unregisterProducer()
    del channel.requests[:]
    hand_over(transport, protocol, b"")
    return transport


def websocket_wire(protocol: Any) -> Any:
    """
    twisted.web.websocket's wire protocol for a WebSocket already open,
    delivering to `protocol` (a WebSocketProtocol) what it reads: not yet
    connected to a transport (its `makeConnection`, then `dataReceived`).
    """
    return _WebSocketWireProtocol(Connection(ConnectionType.SERVER), serverBootstrap, protocol)


def partial_message_size(wire: Any) -> int:
    """How much of a message a wire protocol holds while its last fragments are still to come (characters or bytes)."""
    return len(wire._textBuffer.data) + len(wire._bytesBuffer.data)


def hand_over(transport: Any, protocol: Any, first_bytes: bytes) -> None:
    """
    From now on `protocol` is the connection's: it is connected, and gets
    `first_bytes` (if any) as its first read.  `transport` is a TCP one, or
    a wrapper around one (TLS), whose `wrappedProtocol` is public.
    """
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = protocol
    else:
        transport.protocol = protocol
    protocol.makeConnection(transport)
    if first_bytes:
        protocol.dataReceived(first_bytes)


def when_lost(protocol: Any, then: Callable[[Any], None]) -> None:
    """Call `then(reason)` when `protocol`'s connection is lost, before the protocol's own connectionLost."""
    lost = protocol.connectionLost

    def connection_lost(reason: Any) -> None:
        then(reason)
        lost(reason)

    protocol.connectionLost = connection_lost


class ReadingUDPPort(udp.Port):
    """
    A UDP port that reads its own datagrams (see 7 above): a subclass sets
    its socket's options in `prepare_socket` and reads in `read_datagrams`,
    through `udp_socket`, at most `read_budget` bytes a turn and datagrams
    of at most `packet_bytes`.
    """

    def createInternetSocket(self) -> socket.socket:
        sock = super().createInternetSocket()
        self.prepare_socket(sock)
        return sock

    def doRead(self) -> None:
        self.read_datagrams()

    @property
    def udp_socket(self) -> socket.socket:
        sock: socket.socket = self.socket
        return sock

    @property
    def is_ipv6(self) -> bool:
        return bool(self.addressFamily == socket.AF_INET6)

    @property
    def read_budget(self) -> int:
        return int(self.maxThroughput)

    @property
    def packet_bytes(self) -> int:
        return int(self.maxPacketSize)

    def prepare_socket(self, sock: socket.socket) -> None:
        """Set options on the socket Twisted made, before it is bound."""

    def read_datagrams(self) -> None:
        """The socket is readable: read what it holds, up to the budget."""
        raise NotImplementedError


# Every chat connection's TCP options (chatd.net.life): keep-alive finds a
# peer that vanished without a word (a laptop closed, Wi-Fi gone); no Nagle,
# since chat writes are whole messages, and Nagle's algorithm meeting delayed
# ACKs holds them back about 40 ms.
CONNECTION_OPTIONS = ((socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1))


def set_connection_options(sock: socket.socket) -> None:
    """
    Set CONNECTION_OPTIONS on a listening socket, before it listens: Linux
    gives them to every connection it accepts, which then needs no system
    call of its own (see LeanServer.options_from_listener).
    """
    for level, option, value in CONNECTION_OPTIONS:
        sock.setsockopt(level, option, value)


# What Twisted sets on a TCP connection only later in its life (when a
# write waits, or a producer registers): set to their class defaults when
# the connection is made.
_SET_LATER = ("producer", "streamingProducer", "producerPaused", "dataBuffer", "offset")


class LeanServer(tcp.Server):
    """
    A TCP server connection without the two strings Twisted keeps for its
    logs, and whose attributes stay inline (see 8 above).
    """

    # Accepted on a socket that set_connection_options prepared: on Linux it
    # has them already (a connection inherits them from its listener).
    options_from_listener = sys.platform.startswith("linux")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # delattr, not __dict__.pop: asking for __dict__ would make one (64 bytes) where Python keeps the values inline.
        for name in ("logstr", "repstr"):
            try:
                delattr(self, name)
            except AttributeError:  # a Twisted that no longer makes it
                pass
        cls = type(self)
        for name in _SET_LATER:
            if hasattr(cls, name):  # each has a class default in Twisted 26; a later one may not
                setattr(self, name, getattr(cls, name))

    def logPrefix(self) -> str:
        return f"{self._getLogPrefix(self.protocol)},{self.sessionno},{self.hostname}"

    def __repr__(self) -> str:
        return f"<{self.protocol.__class__.__name__} #{self.sessionno} on {self.server._realPortNumber}>"


class _LeanPort(tcp.Port):
    transport = LeanServer

    def createInternetSocket(self) -> socket.socket:
        sock: socket.socket = super().createInternetSocket()
        set_connection_options(sock)
        return sock


def listen_tcp(reactor: Any) -> Callable[..., IListeningPort]:
    """
    `reactor.listenTCP`, for connections that are `LeanServer`s.  (A test's
    fake reactor, which is no PosixReactorBase, gets its own listenTCP.)
    """
    if not isinstance(reactor, PosixReactorBase):
        listen: Callable[..., IListeningPort] = reactor.listenTCP
        return listen

    def listen_lean(port: int, factory: Any, backlog: int = 50, interface: str = "") -> IListeningPort:
        listening = _LeanPort(port, factory, backlog, interface, reactor)
        listening.startListening()
        return listening

    return listen_lean


def adopt_stream_port(reactor: Any, descriptor: int, family: socket.AddressFamily, factory: Any) -> IListeningPort:
    """
    `reactor.adoptStreamPort` for a TCP socket, for connections that are
    `LeanServer`s: set_connection_options must have prepared the socket
    before it began to listen.
    """
    if not isinstance(reactor, PosixReactorBase):
        adopted: IListeningPort = reactor.adoptStreamPort(descriptor, family, factory)
        return adopted
    listening: IListeningPort = _LeanPort._fromListeningDescriptor(reactor, descriptor, family, factory)
    listening.startListening()
    return listening
