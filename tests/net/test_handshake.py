"""
chatd.net.handshake without sockets: what is TLS, the log of failed
handshakes (task.Clock), and a handshake's admission and deadline on a
memory transport.  Real handshakes, with real clients: tests/e2e/test_tls.py.
"""

import ssl

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from OpenSSL import SSL

from chatd.net.certificate import self_signed
from chatd.net.handshake import LOG_EVERY_SECONDS, MAX_REMEMBERED_PEERS, HandshakeFailures, TLSEntrance, \
    speaks_tls, why_failed
from chatd.net.limits import ConnectionLimits
from chatd.net.tls import ServerTLS


def peer(host="192.0.2.7", port=40000):
    return IPv4Address("TCP", host, port)


def client_hello():
    """A real client's first flight (Python's ssl, through memory BIOs)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def test_a_client_hello_speaks_tls_and_other_first_bytes_do_not():
    """A real ClientHello is TLS; an HTTP request, an IRC registration, telnet's IAC and a nickname are not."""
    assert speaks_tls(client_hello())
    for other in (b"GET / HTTP/1.1\r\n", b"CAP LS 302\r\n", b"\xff\xfb\x01", b"alice\r\n", b"\x16", b""):
        assert not speaks_tls(other)


def test_failed_handshakes_are_counted_and_logged_once_per_address_per_minute(log_lines):
    """Every failure counts; one line per address per minute, the next saying how many were not logged."""
    clock = Clock()
    failures = HandshakeFailures(clock)
    for port in range(1, 51):
        failures.failed(peer(port=port), "unexpected message")
    failures.failed(peer("192.0.2.8"), "http request")
    assert failures.count == 51
    assert log_lines == ["TLS handshake with 192.0.2.7:1 failed: unexpected message",
                         "TLS handshake with 192.0.2.8:40000 failed: http request"]
    clock.advance(LOG_EVERY_SECONDS)
    failures.failed(peer(port=99), "unsupported protocol")
    assert log_lines[-1] == ("TLS handshake with 192.0.2.7:99 failed: unsupported protocol "
                             "(49 more from this address since the last line)")


def test_the_addresses_remembered_for_the_log_are_bounded():
    """A flood from many addresses does not grow the log's memory past MAX_REMEMBERED_PEERS."""
    failures = HandshakeFailures(Clock())
    for number in range(MAX_REMEMBERED_PEERS + 10):
        failures.failed(peer(f"10.{number // 65536}.{number // 256 % 256}.{number % 256}"), "unexpected message")
    assert len(failures._last) <= MAX_REMEMBERED_PEERS


def test_a_failed_handshakes_reason_is_openssls_own_words():
    """OpenSSL's reason strings, not the exception's repr; a close before the handshake says so."""
    error = SSL.Error([("SSL routines", "", "unsupported protocol")])
    assert why_failed(Failure(error)) == "unsupported protocol"
    assert why_failed(Failure(ConnectionLost())) == "closed before the handshake was done"


@pytest.fixture
def entrance(tmp_path):
    certificate, _ = self_signed(tmp_path, ["lab-pc"], [])
    clock = Clock()
    built = []

    class Door(Factory):
        def buildProtocol(self, addr):
            built.append(addr)
            return Protocol()

    made = TLSEntrance(ServerTLS(certificate, lambda: certificate), Door(), clock=clock,
                       limits=ConnectionLimits(max_clients=10, max_per_address=2),
                       is_banned=lambda address: address == "192.0.2.66", login_timeout_seconds=60,
                       failures=HandshakeFailures(clock))
    made.built = built
    return made


def connect(entrance, address=peer()):
    connection = entrance.buildProtocol(address)
    transport = StringTransport(peerAddress=address)
    connection.makeConnection(transport)
    return connection, transport


def test_a_handshake_holds_a_place_in_the_limits_until_the_login_timeout_from_the_tcp_connect(entrance, log_lines):
    """Half a ClientHello, then silence: counted in the limits, aborted at --login-timeout, logged, released."""
    connection, transport = connect(entrance)
    connection.dataReceived(client_hello()[:40])
    assert entrance.limits.total == 1
    entrance.clock.advance(59)
    assert not transport.disconnecting
    entrance.clock.advance(1)
    assert transport.disconnecting  # aborted
    connection.connectionLost(Failure(ConnectionLost()))  # the abort's end: not logged again
    assert entrance.limits.total == 0
    assert entrance.failures.count == 1 and entrance.built == []  # no door ever saw it
    assert log_lines == ["TLS handshake with 192.0.2.7:40000 failed: not done within the login timeout"]


def test_an_unwrapped_connection_keeps_the_deadline_of_its_tcp_connect(entrance):
    """A ClientHello seen first on a plain port: the login timeout still counts from the TCP connect."""
    transport = StringTransport(peerAddress=peer())
    transport.protocol = None
    entrance.unwrap(transport, peer(), client_hello()[:40], login_deadline=entrance.clock.seconds() + 5)
    entrance.clock.advance(5)
    assert transport.disconnecting


def test_handshakes_past_the_per_address_limit_or_from_a_banned_address_are_refused(entrance):
    """The limits and bans of every door: the third from one address (of 2 allowed), and a banned one, are closed at once."""
    held = [connect(entrance) for _ in range(2)]
    _, refused = connect(entrance)
    _, banned = connect(entrance, peer("192.0.2.66"))
    assert refused.disconnecting and banned.disconnecting
    assert not any(transport.disconnecting for _, transport in held)
    assert entrance.limits.total == 2 and entrance.failures.count == 2
