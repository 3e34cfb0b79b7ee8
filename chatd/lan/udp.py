"""
The UDP services beside the chat: the echo service and the announcers.

Echo replies to each datagram with the bytes it received.  Echo is a classic
reflection and loop vector, so it never replies to:

- a source port below 1024 (another echo, chargen or daytime service),
- its own port (another chatd echo, or itself: two echoes never ping-pong),
- a datagram sent to a broadcast or multicast address (the Fraggle attack;
  IP_PKTINFO tells the destination),
- a source over its rate (a token bucket per source address).

Drops are silent on the wire, counted, and logged at most once a minute per
source.  On Linux the echo reads and sends up to 64 datagrams per system
call (recvmmsg/sendmmsg, see mmsg.py) and makes these checks once per group
of datagrams with the same source and destination.

An announcer sends announcements (see announcement.py) to a multicast group
or a broadcast address: three at start, 1 s apart, then one per interval,
and a last "stopping" one when the service stops.  It also answers queries
that arrive on its port, by unicast, never with more bytes than the query
had, and at a limited rate per source.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from attrs import define, field, frozen
from twisted.application.service import Service
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatd.lan import announcement
from chatd.lan import mmsg
from chatd.lan.announcement import Announcement
from chatd.net.limits import MAX_TRACKED_SOURCES, RateLimiter
from chatd.net.twisted_private import ReadingUDPPort

log = Logger()

# Python < 3.12 has no socket.IP_PKTINFO; 8 is its value on Linux.
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
_ANCILLARY_BYTES = socket.CMSG_SPACE(64)
_READ_AGAIN = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EINTR, errno.ECONNREFUSED, errno.EMSGSIZE, errno.ENOBUFS}

DROP_LOG_INTERVAL_SECONDS = 60.0
FIRST_ANNOUNCEMENTS = 3
FIRST_ANNOUNCEMENT_SPACING_SECONDS = 1.0
QUERY_ANSWERS_PER_SECOND = 1.0


# -- where a datagram was sent


@frozen
class Destination:
    """
    A datagram's destination address, and (IPv4) the local address it
    reached.  The readers keep the few distinct ones they meet (cached
    below), so whether it is unicast to us is worked out once, when made.
    """

    address: str
    local: str | None = None
    is_unicast_to_us: bool = field(init=False, eq=False, repr=False)

    @is_unicast_to_us.default
    def _unicast_to_us(self) -> bool:
        address = self.address.lower()
        if address.startswith("::ffff:") and "." in address:
            address = address[7:]  # an IPv4 datagram on a dual-stack socket
        if ":" in address:
            return not address.startswith("ff")  # IPv6 has no broadcast; ff00::/8 is multicast
        if address == "255.255.255.255" or 224 <= int(address.split(".", 1)[0]) <= 239:
            return False
        # For a subnet broadcast (192.0.2.255), the destination differs from
        # the local address of the interface it arrived on.
        return self.local is None or self.local == address


def destination_of(ancillary: list[tuple[int, int, bytes]]) -> Destination | None:
    """
    The destination from recvmsg's ancillary data (IP_PKTINFO / IPV6_PKTINFO).
    A dual-stack socket gets both for an IPv4 datagram; IP_PKTINFO's is
    preferred, because it also names the local address, which tells a
    subnet broadcast from a unicast.
    """
    found = None
    for level, kind, data in ancillary:
        destination = _destination_in(level, kind, data)
        if destination is not None and destination.local is not None:
            return destination
        found = found or destination
    return found


# Cached, as above: the same few pktinfo records arrive again and again.
@lru_cache(maxsize=1024)
def _destination_in(level: int, kind: int, data: bytes) -> Destination | None:
    if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= 12:
        _, local, address = struct.unpack("I4s4s", data[:12])
        return Destination(socket.inet_ntoa(address), socket.inet_ntoa(local))
    if level == socket.IPPROTO_IPV6 and kind == socket.IPV6_PKTINFO and len(data) >= 16:
        return Destination(socket.inet_ntop(socket.AF_INET6, data[:16]))
    return None


class DestinationAwarePort(ReadingUDPPort):
    """
    A UDP port that tells its protocol each datagram's destination address:
    `protocol.datagram_received(data, source, destination)`.
    """

    def prepare_socket(self, sock: socket.socket) -> None:
        if self.is_ipv6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
            try:  # IPv4 datagrams on a dual-stack socket: Linux gives IP_PKTINFO too
                sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
            except OSError:
                pass
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)

    def read_datagrams(self) -> None:
        read, sock, budget, packet_bytes = 0, self.udp_socket, self.read_budget, self.packet_bytes
        while read < budget:
            try:
                data, ancillary, flags, source = sock.recvmsg(packet_bytes, _ANCILLARY_BYTES)
            except OSError as failure:
                if failure.errno in _READ_AGAIN:
                    return
                raise
            read += len(data)
            if flags & socket.MSG_TRUNC:
                continue  # over packet_bytes (8 KiB): not a datagram to answer with half of it
            try:
                self.protocol.datagram_received(data, source[:2], destination_of(ancillary))
            except Exception:
                log.failure("error handling a datagram from {source}", source=source[:2])

    def reply(self, data: bytes, to: tuple[str, int]) -> None:
        """
        Send `data` back to `to`, straight to the socket: the address came
        from recvmsg, so Twisted's write need not check it again (three
        address parses per datagram).  Like any UDP send it may be dropped.
        """
        try:
            self.udp_socket.sendto(data, to)
        except OSError as failure:
            if failure.errno not in _READ_AGAIN:
                log.warn("cannot reply to {to}: {reason}", to=to, reason=failure.strerror)


def listen_udp_with_destinations(
    reactor: Any, port: int, protocol: DatagramProtocol, interface: str, batched: bool = False
) -> DestinationAwarePort:
    """Like reactor.listenUDP, with DestinationAwarePort (BatchedEchoPort if `batched` and it can be)."""
    kind = BatchedEchoPort if batched and mmsg.AVAILABLE else DestinationAwarePort
    listening = kind(port, protocol, interface, reactor=reactor)
    listening.startListening()
    return listening


# -- rate limits and drop accounting


@define
class DropLog:
    """Counts dropped datagrams per source and reason; logs at most once a minute per source."""

    what: str
    clock: IReactorTime
    _counts: dict[str, dict[str, int]] = field(factory=dict)
    _logged_at: dict[str, float] = field(factory=dict)

    def dropped(self, source: str, reason: str, count: int = 1) -> None:
        counts = self._counts.setdefault(source, {})
        counts[reason] = counts.get(reason, 0) + count
        now = self.clock.seconds()
        if now - self._logged_at.get(source, -DROP_LOG_INTERVAL_SECONDS) < DROP_LOG_INTERVAL_SECONDS:
            return
        if len(self._logged_at) >= MAX_TRACKED_SOURCES:
            self._logged_at.clear()
        self._logged_at[source] = now
        del self._counts[source]
        reasons = ", ".join(f"{count} {why}" for why, count in sorted(counts.items()))
        log.info(
            "{what}: dropped {total} datagram(s) from {source} ({reasons})",
            what=self.what, total=sum(counts.values()), source=source, reasons=reasons,
        )


# -- echo


class EchoProtocol(DatagramProtocol):
    """The echo service, with the loop and reflection protections above."""

    noisy = False
    transport: Any  # a DestinationAwarePort: it also has reply()

    def __init__(self, rate: float, clock: IReactorTime) -> None:
        self._limiter = RateLimiter(rate, 2 * rate, clock)
        self.drops = DropLog("echo", clock)
        self._own_port = 0

    def startProtocol(self) -> None:
        self._own_port = self.transport.getHost().port  # once, not per datagram

    def datagramReceived(self, data: bytes, source: tuple[str, int]) -> None:
        raise TypeError("the echo service runs on a DestinationAwarePort, which calls datagram_received")

    def datagram_received(self, data: bytes, source: tuple[str, int], destination: Destination | None) -> None:
        if self.echoes_allowed(source, destination, 1):
            self.transport.reply(data, source)

    def echoes_allowed(self, source: tuple[str, int], destination: Destination | None, count: int) -> int:
        """How many of `count` datagrams from `source` to `destination` to echo; the rest are dropped and counted."""
        host, port = source
        reason = None
        allowed = 0
        if port < 1024:
            reason = "from a privileged port"
        elif port == self._own_port:
            reason = "from an echo port"
        elif destination is not None and not destination.is_unicast_to_us:
            reason = "sent to a broadcast or multicast address"
        else:
            allowed = self._limiter.allow_up_to(host, count)
            if allowed < count:
                reason = "over the rate limit"
        if reason is not None:
            self.drops.dropped(host, reason, count - allowed)
        return allowed


# At most this many batches of datagrams per read, then the reactor serves others.
BATCHES_PER_READ = 16


class BatchedEchoPort(DestinationAwarePort):
    """
    The echo service's port where recvmmsg/sendmmsg exist (Linux): up to 64
    datagrams per system call each way, and the protections asked once per
    group of datagrams with the same source and destination, rather than
    once per datagram.  The echoes are the received bytes, not copies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._datagrams = mmsg.Datagrams()

    def read_datagrams(self) -> None:
        echo, datagrams = self.protocol, self._datagrams
        for _ in range(BATCHES_PER_READ):
            try:
                count = datagrams.receive(self.fileno())
            except OSError as failure:
                if failure.errno in _READ_AGAIN:
                    return
                raise
            if not count:
                return
            replies: list[int] = []
            for (name, ancillary), indices in datagrams.groups.items():
                source = _source_in(name)
                if source is None:
                    continue
                try:
                    allowed = echo.echoes_allowed(source, _destination_in_ancillary(ancillary), len(indices))
                except Exception:
                    log.failure("error handling datagrams from {source}", source=source)
                    continue
                replies += indices[:allowed]
            if replies:
                if len(datagrams.groups) > 1:
                    replies.sort()  # in the order they came
                try:
                    datagrams.echo(self.fileno(), replies)
                except OSError as failure:
                    if failure.errno not in _READ_AGAIN:
                        log.warn("cannot echo: {reason}", reason=failure.strerror)
            if count < mmsg.MAX_DATAGRAMS:
                return


@lru_cache(maxsize=1024)
def _source_in(name: bytes) -> tuple[str, int] | None:
    return mmsg.parse_sockaddr(name)


@lru_cache(maxsize=1024)
def _destination_in_ancillary(ancillary: bytes) -> Destination | None:
    return destination_of(mmsg.parse_ancillary(ancillary))


# -- announcements


@define
class Herald:
    """
    What every announcer of one chatd process says: its identity, its
    numbering, and the chat's live state.
    """

    name: str
    users: Callable[[], int]
    chat_port: Callable[[], int | None]
    chat_interface: str
    clock: IReactorTime
    interval: int
    channels: Callable[[], int] = lambda: 1
    web_port: Callable[[], int | None] = lambda: None  # None: no web page
    cluster: str | None = None  # the name of the cluster this process is a node of
    irc_port: Callable[[], int | None] = lambda: None  # None: no IRC port
    web_tls_port: Callable[[], int | None] = lambda: None  # None: no TLS (or no web page)
    irc_tls_port: Callable[[], int | None] = lambda: None
    fingerprint: Callable[[], str | None] = lambda: None  # of the TLS certificate served now; None: no TLS
    id: str = field(factory=lambda: os.urandom(8).hex())
    started: float = field(init=False)
    _seq: int = field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.started = self.clock.seconds()

    def announcement(self, host: str, state: str = "up") -> Announcement:
        self._seq += 1
        now = self.clock.seconds()
        return Announcement(
            id=self.id, name=self.name, host=host, port=self.chat_port() or 0, users=self.users(),
            channels=self.channels(), web=self.web_port(), cluster=self.cluster, irc=self.irc_port(),
            https=self.web_tls_port(), ircs=self.irc_tls_port(), fingerprint=self.fingerprint(),
            uptime=int(now - self.started), seq=self._seq, ts=int(now), state=state, interval=self.interval,
        )

    def host_towards(self, address: str, fallback: str | None = None) -> str:
        """
        The address a listener should connect to: the chat interface when it
        is concrete, else `fallback` (the multicast interface, when given),
        else the local address the kernel would send from towards `address`.
        """
        if not ipaddress.ip_address(self.chat_interface).is_unspecified:
            return self.chat_interface
        if fallback:
            return fallback
        return source_address_towards(address)


def source_address_towards(address: str) -> str:
    """The local address the kernel picks to send to `address` (no datagram is sent)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            probe.connect((address, 9))
        except OSError:
            return "0.0.0.0" if family == socket.AF_INET else "::"
        return str(probe.getsockname()[0])


class AnnouncerProtocol(DatagramProtocol):
    """Sends announcements to one destination and answers queries on its port."""

    transport: Any  # a UDP port, once started

    noisy = False

    def __init__(self, herald: Herald, destination: tuple[str, int], host_fallback: str | None, clock: IReactorTime) -> None:
        self.herald = herald
        self.destination = destination
        self._host_fallback = host_fallback
        self._answers = RateLimiter(QUERY_ANSWERS_PER_SECOND, 2 * QUERY_ANSWERS_PER_SECOND, clock)
        self.drops = DropLog("announcer", clock)
        self._failing = False

    def announce(self, state: str = "up") -> None:
        host = self.herald.host_towards(self.destination[0], self._host_fallback)
        self._send(self.herald.announcement(host, state).encode(), self.destination)

    def datagramReceived(self, data: bytes, source: tuple[str, int]) -> None:
        if not announcement.is_query(data):
            return  # announcements (ours and others'), and anything else
        answer = self.herald.announcement(self.herald.host_towards(source[0], self._host_fallback)).encode()
        if len(answer) > len(data):
            self.drops.dropped(source[0], "query shorter than the answer")
        elif not self._answers.allow(source[0]):
            self.drops.dropped(source[0], "queries over the rate limit")
        else:
            self._send(answer, source)

    def _send(self, data: bytes, to: tuple[str, int]) -> None:
        try:
            self.transport.write(data, to)
        except OSError as failure:
            if not self._failing:  # logged once; retried at the next interval
                log.warn("cannot send an announcement to {to}: {reason}; will keep trying",
                         to=f"{to[0]}:{to[1]}", reason=failure.strerror or str(failure))
            self._failing = True
        else:
            if self._failing:
                log.info("announcements to {to} go out again", to=f"{to[0]}:{to[1]}")
            self._failing = False


class AnnouncerService(Service):
    """
    One announcer as a twistd service: listens on its port (shared with
    listeners and other servers on the same host), sends the first
    announcements 1 s apart and then one per interval, and a last
    "stopping" one when stopped.

    It listens on the address it announces to (the multicast group, or the
    broadcast address), not on every address: that is all a query needs,
    so the query responder answers only what was sent to the group or as a
    broadcast, never a datagram sent straight to one of the host's addresses.
    """

    def __init__(
        self,
        reactor: Any,
        protocol: AnnouncerProtocol,
        listen_port: int,
        setup: Callable[[Any], None],
        what: str,
    ) -> None:
        self._reactor = reactor
        self.protocol = protocol
        self._listen_address = protocol.destination[0]
        self._listen_port = listen_port
        self._setup = setup
        self.what = what
        self.listening: Any = None
        self._calls: list[Any] = []
        self._loop = LoopingCall(self._announce)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        try:
            # Shared (SO_REUSEADDR/SO_REUSEPORT) with listeners and other
            # servers on this host: multicast and broadcast reach them all.
            self.listening = self._reactor.listenMulticast(
                self._listen_port, self.protocol, interface=self._listen_address, listenMultiple=True)
        except CannotListenError as failure:
            log.warn("{what}: cannot listen for queries on UDP port {port} ({reason}); announcing without answering queries",
                     what=self.what, port=self._listen_port, reason=failure.socketError)
            self.listening = self._reactor.listenMulticast(0, self.protocol, interface=self._listen_address)
        self._setup(self.listening)
        host, port = self.protocol.destination
        log.info("{what} announcing to {host}:{port} every {interval} s",
                 what=self.what, host=host, port=port, interval=self.protocol.herald.interval)
        for index in range(FIRST_ANNOUNCEMENTS):
            self._calls.append(self._reactor.callLater(index * FIRST_ANNOUNCEMENT_SPACING_SECONDS, self._announce))
        first_regular = (FIRST_ANNOUNCEMENTS - 1) * FIRST_ANNOUNCEMENT_SPACING_SECONDS + self.protocol.herald.interval
        self._calls.append(self._reactor.callLater(first_regular, self._start_loop))

    def _announce(self) -> None:
        # A periodic job logs its own failures, so one cannot stop the loop.
        try:
            self.protocol.announce()
        except Exception:
            log.failure("{what}: announcing failed", what=self.what)

    def _start_loop(self) -> None:
        self._loop.start(self.protocol.herald.interval, now=True).addErrback(
            lambda failure: log.failure("announcements stopped", failure)
        )

    def stopService(self) -> Any:
        super().stopService()
        for call in self._calls:
            if call.active():
                call.cancel()
        self._calls.clear()
        if self._loop.running:
            self._loop.stop()
        if self.listening is None:
            return None
        self.protocol.announce("stopping")
        listening, self.listening = self.listening, None
        return listening.stopListening()


def multicast_setup(group: str, interface: str | None, ttl: int) -> Callable[[Any], None]:
    """Prepare a multicast announcer's port: join the group, pick the interface, TTL, loopback."""

    def setup(listening: Any) -> None:
        if interface:
            listening.setOutgoingInterface(interface)
        listening.setTTL(ttl)
        listening.setLoopbackMode(1)  # listeners on this host hear it too
        joined = listening.joinGroup(group, interface or "")
        joined.addErrback(lambda failure: log.warn(
            "cannot join multicast group {group}: {reason}; queries sent to it will not be answered",
            group=group, reason=failure.getErrorMessage()))

    return setup


def broadcast_setup(listening: Any) -> None:
    listening.setBroadcastAllowed(True)
