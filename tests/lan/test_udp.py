"""Echo protections, rate limits, drop logging and the announcer, with a fake clock (chatd.lan.udp)."""

import errno

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock

from chatd.lan.announcement import decode, encode_query
from chatd.net.limits import RateLimiter
from chatd.lan.udp import (
    AnnouncerProtocol,
    AnnouncerService,
    Destination,
    EchoProtocol,
    Herald,
)

TO_US = Destination("127.0.0.1", "127.0.0.1")


class FakeDatagramTransport:
    """Records datagrams written; can be told to fail like a dead interface."""

    def __init__(self, port=41234):
        self.written = []
        self.port = port
        self.error = None

    def write(self, data, addr):
        if self.error:
            raise self.error
        self.written.append((data, addr))

    reply = write  # DestinationAwarePort.reply, which the echo service uses

    def getHost(self):
        return IPv4Address("UDP", "0.0.0.0", self.port)


def echo(rate=100):
    clock = Clock()
    protocol = EchoProtocol(rate, clock)
    transport = FakeDatagramTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def test_echo_replies_with_exactly_the_bytes_received():
    """The reply goes to the sender's address and port, byte for byte."""
    protocol, transport, _ = echo()
    protocol.datagram_received(b"\x00ping\xff", ("127.0.0.1", 50000), TO_US)
    assert transport.written == [(b"\x00ping\xff", ("127.0.0.1", 50000))]


@pytest.mark.parametrize(
    "source, destination, reason",
    [
        (("127.0.0.1", 7), TO_US, "from a privileged port"),
        (("127.0.0.1", 1023), TO_US, "from a privileged port"),
        (("192.0.2.9", 41234), TO_US, "from an echo port"),
        (("127.0.0.1", 50000), Destination("255.255.255.255", "127.0.0.1"), "sent to a broadcast or multicast address"),
        (("127.0.0.1", 50000), Destination("127.255.255.255", "127.0.0.1"), "sent to a broadcast or multicast address"),
        (("127.0.0.1", 50000), Destination("239.255.88.88", "127.0.0.1"), "sent to a broadcast or multicast address"),
        (("::1", 50000), Destination("ff02::1"), "sent to a broadcast or multicast address"),
        (("::ffff:127.0.0.1", 50000), Destination("::ffff:255.255.255.255"), "sent to a broadcast or multicast address"),
    ],
)
def test_echo_never_replies_to_loop_or_reflection_sources(source, destination, reason, log_lines):
    """Privileged ports, its own port, and broadcast or multicast destinations get nothing."""
    protocol, transport, _ = echo()
    protocol.datagram_received(b"x", source, destination)
    assert transport.written == []
    assert log_lines == [f"echo: dropped 1 datagram(s) from {source[0]} (1 {reason})"]


def test_echo_rate_limit_allows_a_burst_of_twice_the_rate_then_the_rate():
    """At 100/s: 200 at once, then 100 more a second later; other sources are unaffected."""
    protocol, transport, clock = echo(rate=100)
    for _ in range(250):
        protocol.datagram_received(b"x", ("127.0.0.1", 50000), TO_US)
    assert len(transport.written) == 200
    protocol.datagram_received(b"y", ("127.0.0.2", 50000), TO_US)
    assert transport.written[-1] == (b"y", ("127.0.0.2", 50000))
    clock.advance(1)
    for _ in range(150):
        protocol.datagram_received(b"x", ("127.0.0.1", 50000), TO_US)
    assert len(transport.written) == 301
    clock.advance(3600)  # a long silence saves up no more than one burst
    for _ in range(1000):
        protocol.datagram_received(b"x", ("127.0.0.1", 50000), TO_US)
    assert len(transport.written) == 501


def test_a_batch_from_one_source_is_limited_as_if_one_datagram_at_a_time(log_lines):
    """echoes_allowed for 250 at once at 100/s: 200 pass, the 50 others are dropped and counted."""
    protocol, _, clock = echo(rate=100)
    assert protocol.echoes_allowed(("127.0.0.1", 50000), TO_US, 250) == 200
    assert protocol.echoes_allowed(("127.0.0.1", 50000), TO_US, 5) == 0
    clock.advance(0.5)
    assert protocol.echoes_allowed(("127.0.0.1", 50000), TO_US, 80) == 50
    assert protocol.echoes_allowed(("127.0.0.1", 80), TO_US, 3) == 0
    assert log_lines == ["echo: dropped 50 datagram(s) from 127.0.0.1 (50 over the rate limit)"]
    clock.advance(60)
    protocol.echoes_allowed(("127.0.0.1", 7), TO_US, 1)
    assert log_lines[1] == "echo: dropped 39 datagram(s) from 127.0.0.1 (4 from a privileged port, 35 over the rate limit)"


def test_drops_are_logged_at_most_once_a_minute_per_source(log_lines):
    """The first drop is logged; the rest of the minute's drops are counted into the next line."""
    protocol, transport, clock = echo(rate=1)
    for _ in range(10):
        protocol.datagram_received(b"x", ("127.0.0.1", 50000), TO_US)
    assert log_lines == ["echo: dropped 1 datagram(s) from 127.0.0.1 (1 over the rate limit)"]
    clock.advance(30)
    protocol.datagram_received(b"x", ("127.0.0.1", 80), TO_US)
    assert len(log_lines) == 1
    clock.advance(31)
    protocol.datagram_received(b"x", ("127.0.0.1", 80), TO_US)
    assert log_lines[1] == "echo: dropped 9 datagram(s) from 127.0.0.1 (2 from a privileged port, 7 over the rate limit)"


def test_rate_limiter_memory_stays_bounded_under_many_sources(monkeypatch):
    """Idle buckets are forgotten when too many sources are tracked."""
    monkeypatch.setattr("chatd.net.limits.MAX_TRACKED_SOURCES", 100)
    clock = Clock()
    limiter = RateLimiter(10, 20, clock)
    for index in range(1000):
        limiter.allow(f"10.0.{index // 256}.{index % 256}")
        clock.advance(0.01)
    assert len(limiter._buckets) <= 100


@pytest.mark.parametrize(
    "destination, unicast",
    [
        (Destination("127.0.0.1", "127.0.0.1"), True),
        (Destination("127.0.0.5", "127.0.0.5"), True),
        (Destination("::1"), True),
        (Destination("192.0.2.255", "192.0.2.2"), False),
        (Destination("224.0.0.1", "127.0.0.1"), False),
    ],
)
def test_destination_tells_unicast_from_broadcast_and_multicast(destination, unicast):
    """A destination differing from the local address it reached is a subnet broadcast."""
    assert destination.is_unicast_to_us is unicast


def herald(clock, users=lambda: 2, chat_port=lambda: 8089, interface="127.0.0.1"):
    return Herald(name="lab", users=users, chat_port=chat_port, chat_interface=interface, clock=clock, interval=5, id="abc")


def test_announcements_count_users_and_channels_live():
    """users and channels are read from the server at each announcement."""
    counts = {"users": 2, "channels": 1}
    told = Herald(name="lab", users=lambda: counts["users"], chat_port=lambda: 8089, chat_interface="127.0.0.1",
                  clock=Clock(), interval=5, channels=lambda: counts["channels"], id="abc")
    assert (told.announcement("127.0.0.1").users, told.announcement("127.0.0.1").channels) == (2, 1)
    counts.update(users=7, channels=3)
    assert (told.announcement("127.0.0.1").users, told.announcement("127.0.0.1").channels) == (7, 3)


def announcer(clock, **herald_args):
    protocol = AnnouncerProtocol(herald(clock, **herald_args), ("239.255.88.88", 41236), None, clock)
    transport = FakeDatagramTransport(41236)
    protocol.makeConnection(transport)
    return protocol, transport


def test_announcer_answers_a_padded_query_by_unicast():
    """A query gets one announcement, sent back to the querier, no longer than the query."""
    clock = Clock()
    protocol, transport = announcer(clock)
    query = encode_query()
    protocol.datagramReceived(query, ("127.0.0.9", 40000))
    ((answer, to),) = transport.written
    assert to == ("127.0.0.9", 40000)
    assert len(answer) <= len(query)
    assert decode(answer).port == 8089


def test_announcer_ignores_short_queries_and_answers_at_a_limited_rate(log_lines):
    """An unpadded query could amplify: no answer. Many queries: a burst of two, then one a second."""
    clock = Clock()
    protocol, transport = announcer(clock)
    protocol.datagramReceived(b'{"service": "chatd", "v": 1, "query": true}', ("127.0.0.9", 40000))
    assert transport.written == []
    assert "query shorter than the answer" in log_lines[0]
    for _ in range(10):
        protocol.datagramReceived(encode_query(), ("127.0.0.9", 40000))
    assert len(transport.written) == 2
    clock.advance(1)
    protocol.datagramReceived(encode_query(), ("127.0.0.9", 40000))
    assert len(transport.written) == 3


def test_announcer_ignores_announcements_and_junk():
    """Its own looped-back announcements and anything else get no answer."""
    clock = Clock()
    protocol, transport = announcer(clock)
    protocol.announce()
    sent = transport.written[0][0]
    transport.written.clear()
    protocol.datagramReceived(sent, ("127.0.0.1", 41236))
    protocol.datagramReceived(b"junk", ("127.0.0.1", 41236))
    assert transport.written == []


def test_send_failure_is_logged_once_and_retried(log_lines):
    """A dead interface: one warning, no exception, and it goes out again when it can."""
    clock = Clock()
    protocol, transport = announcer(clock)
    transport.error = OSError(errno.ENETUNREACH, "Network is unreachable")
    protocol.announce()
    protocol.announce()
    assert log_lines == ["cannot send an announcement to 239.255.88.88:41236: Network is unreachable; will keep trying"]
    transport.error = None
    protocol.announce()
    assert len(transport.written) == 1
    assert log_lines[-1] == "announcements to 239.255.88.88:41236 go out again"


class FakeMulticastPort(FakeDatagramTransport):
    def __init__(self, protocol):
        super().__init__(41236)
        self.protocol = protocol
        self.stopped = False
        protocol.makeConnection(self)

    def stopListening(self):
        self.stopped = True


class FakeReactor(Clock):
    """A clock that can also 'listen' for multicast, handing out fake ports."""

    def __init__(self):
        super().__init__()
        self.ports = []

    def listenMulticast(self, port, protocol, interface="", listenMultiple=False):
        self.ports.append(FakeMulticastPort(protocol))
        return self.ports[-1]


def test_announcer_schedule_three_at_start_then_every_interval_then_stopping():
    """Announcements at 0, 1, 2 s, then every interval (5 s) after; a 'stopping' one on stop; seq counts them all."""
    reactor = FakeReactor()
    users = [0]
    protocol = AnnouncerProtocol(herald(reactor, users=lambda: users[0]), ("239.255.88.88", 41236), None, reactor)
    service = AnnouncerService(reactor, protocol, 41236, lambda port: None, "multicast announcer")
    service.startService()
    (port,) = reactor.ports
    times = []
    for second in range(0, 18):
        before = len(port.written)
        reactor.advance(0 if second == 0 else 1)
        times += [second] * (len(port.written) - before)
        if second == 8:
            users[0] = 3
    assert times == [0, 1, 2, 7, 12, 17]
    sent = [decode(data) for data, _ in port.written]
    assert [a.seq for a in sent] == [1, 2, 3, 4, 5, 6]
    assert [a.users for a in sent] == [0, 0, 0, 0, 3, 3]
    assert {a.host for a in sent} == {"127.0.0.1"}
    service.stopService()
    last = decode(port.written[-1][0])
    assert (last.state, last.seq) == ("stopping", 7)
    assert port.stopped
    reactor.advance(100)
    assert len(port.written) == 7
