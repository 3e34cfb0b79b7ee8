"""
A connection that speaks TLS, on any door, from its first byte to its door:

    TCP connect on a TLS port (8443, 6697), or a ClientHello seen first on
    a plain port (8088, 8080, 6667: `TLSEntrance.unwrap`)
      -> TLSConnection: Twisted's TLS (TLSMemoryBIOProtocol) around a Handshake
      -> Handshake: admitted as any connection is (bans, --max-clients,
         --max-per-ip), and given until --login-timeout after the TCP
         connect to finish
      -> done: the door's own protocol takes over, under TLS, exactly as on
         a plain connection; a client whose ALPN asks for HTTP goes to the
         web page at once (an entrance that has one: the chat port's)
      -> refused, failed or too slow: closed, counted, and one log line per
         peer address per minute (HandshakeFailures), never a traceback

The door's protocol is made only once the handshake is done, so a telnet
user's greeting wait starts when they can first be heard, and nothing a
door says can reach a peer that never finished the handshake.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from OpenSSL import SSL
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IAddress, IDelayedCall, IHandshakeListener, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.net.addresses import describe_peer, peer_host
from chatd.net.limits import ConnectionLimits, Slot
from chatd.net.tls import HTTP_ALPN, ServerTLS
from chatd.net.twisted_private import hand_over, send_eagerly

log = Logger()

# A TLS record of type handshake (22), protocol version 3.x: a ClientHello.
_CLIENT_HELLO = re.compile(rb"\x16\x03[\x00-\x04]")
# A failed handshake is logged once per peer address in this many seconds.
LOG_EVERY_SECONDS = 60.0
# Addresses remembered for that; past it, those not logged within the minute are forgotten.
MAX_REMEMBERED_PEERS = 10_000


def speaks_tls(first_bytes: bytes) -> bool:
    """Whether a connection's first bytes are the start of a TLS ClientHello."""
    return _CLIENT_HELLO.match(first_bytes) is not None


class TLSConnection(TLSMemoryBIOProtocol):
    """
    Twisted's TLS under one connection, as chatd uses it: a door's send
    queue writes once per turn already, so without Twisted's aggregation of
    small writes (which would hold each turn's bytes back a reactor turn);
    and with the time by which the login must be done (`login_deadline`,
    counted from the TCP connect).
    """

    login_deadline = 0.0
    # Twisted's wrapper passes any attribute it lacks to the TCP transport
    # under it.  A half-close there would end the TCP stream under TLS
    # without TLS's own close: a door that half-closes (telnet) looks for
    # this, finds None, and closes the whole connection instead.
    loseWriteConnection = None

    def makeConnection(self, transport: Any) -> None:
        """
        Over a TCP connection whose records go to its socket as soon as
        they are made: a turn's share for a member, encrypted, is then sent
        at the end of the turn, as a plain connection's is, not at the
        reactor's next poll.
        """
        send_eagerly(transport)
        super().makeConnection(transport)

    def loseConnection(self) -> None:
        """
        TLS's close (close_notify) after everything written, then the TCP
        connection's, without waiting for the peer's close_notify as Twisted
        would: a browser closing a WebSocket waits for the server to close
        the TCP connection first (RFC 6455, 7.1.1), and a client that never
        answers must not hold its connection open.  (Everything a door
        wrote has gone through TLS by now: a door's connection starts after
        the handshake, and TLS then encrypts each write at once.)
        """
        super().loseConnection()
        if self.connected and self.transport is not None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """
        When chatd closed the connection and TCP ended cleanly, the door
        hears of a clean close, whether or not the peer sent its
        close_notify first (Twisted would call it lost): a browser that
        closes its WebSocket is its user's Quit, not a lost connection.
        """
        if self.disconnecting and reason.check(ConnectionDone):
            self.connected = False
            ProtocolWrapper.connectionLost(self, reason)
            return
        super().connectionLost(reason)


def is_tls(transport: Any) -> bool:
    """Whether a door's connection runs over TLS."""
    return isinstance(transport, TLSConnection)


def login_deadline_of(transport: Any) -> float | None:
    """When a TLS connection's login must be done (from its TCP connect); None for a plain one."""
    return transport.login_deadline if isinstance(transport, TLSConnection) else None


class HandshakeFailures:
    """
    Handshakes that failed, were abandoned or were refused: all counted,
    and logged once per peer address per LOG_EVERY_SECONDS (with how many
    more there were from that address since), so a flood of them is a few
    lines, not thousands.
    """

    def __init__(self, clock: IReactorTime) -> None:
        self._clock = clock
        self.count = 0
        self._last: dict[str, tuple[float, int]] = {}  # address -> (when last logged, failures since)

    def failed(self, peer: IAddress, why: str) -> None:
        self.count += 1
        now, address = self._clock.seconds(), peer_host(peer)
        last = self._last.get(address)
        if last is not None and now - last[0] < LOG_EVERY_SECONDS:
            self._last[address] = (last[0], last[1] + 1)
            return
        if len(self._last) >= MAX_REMEMBERED_PEERS:
            self._forget(now)
        more = "" if last is None or not last[1] else f" ({last[1]} more from this address since the last line)"
        self._last[address] = (now, 0)
        log.info("TLS handshake with {peer} failed: {why}{more}", peer=describe_peer(peer), why=why, more=more)

    def _forget(self, now: float) -> None:
        for address, (when, _) in list(self._last.items()):
            if now - when >= LOG_EVERY_SECONDS:
                del self._last[address]
        if len(self._last) >= MAX_REMEMBERED_PEERS:  # a flood from many addresses
            self._last.clear()


def why_failed(reason: Failure) -> str:
    """A failed handshake's reason, in a few words (OpenSSL's own: "unsupported protocol", "http request")."""
    error = reason.value
    if isinstance(error, SSL.Error):
        # OpenSSL's errors, as pyOpenSSL gives them: [(library, function, reason), ...]
        found = error.args[0] if error.args and isinstance(error.args[0], list) else []
        words = [str(part[2]) for part in found if isinstance(part, tuple) and len(part) == 3 and part[2]]
        return ", ".join(words) or "TLS error"
    if reason.check(ConnectionDone, ConnectionLost):
        return "closed before the handshake was done"
    return reason.getErrorMessage()


@implementer(IHandshakeListener)
class Handshake(Protocol):
    """A TLS connection until its handshake is done (see the module's docstring)."""

    transport: Any  # a TLSConnection

    def __init__(self, entrance: TLSEntrance, peer: IAddress) -> None:
        self._entrance = entrance
        self.peer = peer
        self._slot: Slot | None = None
        self._deadline: IDelayedCall | None = None
        self._over = False  # done, refused or timed out: nothing more to report

    def connectionMade(self) -> None:
        entrance, address = self._entrance, peer_host(self.peer)
        refusal = "banned" if entrance.is_banned(address) else entrance.limits.admit(address)
        if refusal is not None:
            self._over = True
            entrance.failures.failed(self.peer, f"refused: {refusal}")
            self.transport.abortConnection()
            return
        self._slot = Slot(entrance.limits, address)
        clock = entrance.clock
        self._deadline = clock.callLater(max(0.0, self.transport.login_deadline - clock.seconds()), self._too_slow)

    def handshakeCompleted(self) -> None:
        self._over = True
        self._end()
        entrance = self._entrance
        door = entrance.door
        if entrance.web is not None and self.transport.negotiatedProtocol == HTTP_ALPN:
            door = entrance.web
        hand_over(self.transport, door.buildProtocol(self.peer), b"")

    def dataReceived(self, data: bytes) -> None:
        """Never called: TLS delivers nothing before the handshake is done, and then the door has the connection."""

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._end()
        if not self._over:
            self._over = True
            self._entrance.failures.failed(self.peer, why_failed(reason))

    def _too_slow(self) -> None:
        self._deadline = None
        self._over = True
        self._end()
        self._entrance.failures.failed(self.peer, "not done within the login timeout")
        self.transport.abortConnection()

    def _end(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None
        if self._slot is not None:
            self._slot.release()
            self._slot = None


class _Handshakes(Factory[Handshake]):
    noisy = False

    def __init__(self, entrance: TLSEntrance) -> None:
        self._entrance = entrance

    def buildProtocol(self, addr: IAddress | None) -> Handshake:
        assert addr is not None
        return Handshake(self._entrance, addr)


class TLSEntrance(TLSMemoryBIOFactory):
    """
    The TLS way into one door: the factory of a TLS port (8443, 6697), and
    where a plain port's connection goes when its first bytes are a
    ClientHello (`unwrap`).  `door` serves the connection once the
    handshake is done; `web`, if given, serves one whose ALPN asks for HTTP.
    """

    protocol = TLSConnection
    noisy = False

    def __init__(self, server_tls: ServerTLS, door: IProtocolFactory, *, clock: IReactorTime,
                 limits: ConnectionLimits, is_banned: Callable[[str], bool], login_timeout_seconds: float,
                 failures: HandshakeFailures, web: IProtocolFactory | None = None) -> None:
        super().__init__(server_tls, False, _Handshakes(self), clock)
        self.door = door
        self.web = web
        self.clock = clock
        self.limits = limits
        self.is_banned = is_banned
        self.login_timeout_seconds = login_timeout_seconds
        self.failures = failures

    def buildProtocol(self, addr: IAddress | None) -> TLSConnection:
        connection = super().buildProtocol(addr)
        assert isinstance(connection, TLSConnection)
        connection.login_deadline = self.clock.seconds() + self.login_timeout_seconds
        return connection

    def unwrap(self, transport: Any, peer: IAddress, first_bytes: bytes, login_deadline: float | None) -> None:
        """
        A plain port's connection whose `first_bytes` are a ClientHello: TLS
        from here on, then its door.  `login_deadline` carries the login
        timeout on from the TCP connect.
        """
        connection = self.buildProtocol(peer)
        if login_deadline is not None:
            connection.login_deadline = login_deadline
        hand_over(transport, connection, first_bytes)
