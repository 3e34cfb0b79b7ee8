"""A telnet connection as a session of the chat server, in memory (chatd.telnet.protocol)."""

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from chatd.core.events import Left
from chatd.core.moderation import Moderation
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.turn import Turn
from chatd.net.limits import ConnectionLimits
from chatd.net.door import Settings
from chatd.telnet.protocol import GREETING_WAIT_SECONDS, TelnetDoor

IAC, DO, WILL, SB, SE = b"\xff", b"\xfd", b"\xfb", b"\xfa", b"\xf0"
BINARY, ECHO, SGA, NAWS = b"\x00", b"\x01", b"\x03", b"\x1f"


class Client:
    """One in-memory connection: what it was sent, and a way to type."""

    def __init__(self, factory, port, host="127.0.0.1", wait_for_greeting=True):
        peer = IPv4Address("TCP", host, port)  # what buildProtocol is given is the transport's peer, as in Twisted
        self.protocol = factory.buildProtocol(peer)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "10.0.0.1", 8088), peerAddress=peer)
        self.protocol.makeConnection(self.transport)
        if wait_for_greeting:  # as a telnet user does; a client that types ahead does not
            factory.clock.advance(GREETING_WAIT_SECONDS)

    def send(self, data: bytes):
        self.protocol.dataReceived(data)

    def take(self) -> bytes:
        """What the client has been sent, once this reactor turn has ended (output is flushed per turn)."""
        self.protocol.factory.flusher.flush()
        data = self.transport.value()
        self.transport.clear()
        return data


@pytest.fixture
def factory():
    return TelnetDoor(ChatServer("lab", Clock()), Settings("lab", max_line_bytes=64), Clock())


def login(factory, nick, port=40000):
    client = Client(factory, port, host=f"127.0.0.{port % 250 + 1}")
    client.send(nick.encode() + b"\r\n")
    client.take()
    return client


def test_protocol_provides_imember(factory):
    """A connection is an ISession the chat server can deliver to."""
    assert verifyObject(ISession, Client(factory, 1).protocol)


def test_greeting_and_login_bytes_end_in_crlf(factory):
    """The exact bytes of the greeting and the hello."""
    client = Client(factory, 1)
    assert client.take() == b"*** Welcome to chatd on lab. 0 users online.\r\n*** Choose a nickname:\r\n"
    client.send(b"alice\n")
    assert client.take() == b"*** Hello alice! Type /help for commands.\r\n"


def test_messages_are_cleaned_before_anyone_sees_them(factory):
    """Escape sequences and controls never reach another user."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"\x1b[2J\x1b[31mhi\x07 \xe2\x80\xaeevil\r\n")
    assert bob.take() == b"<alice> hi evil\r\n"


def test_charset_gbk_decodes_input_and_encodes_output_per_user(factory):
    """After /charset gbk a user types GBK and reads GBK; UTF-8 users read UTF-8."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"/charset gbk\n")
    assert alice.take() == b"*** Charset is now gbk\r\n"
    alice.send("你好\n".encode("gbk"))
    assert bob.take() == "<alice> 你好\r\n".encode()
    bob.send("张三\n".encode())
    assert alice.take() == "<bob> 张三\r\n".encode("gbk")


def test_charset_query_and_unknown_charset(factory):
    """/charset alone shows it; an unknown one is an error; an unusable one says why."""
    alice = login(factory, "alice")
    alice.send(b"/charset\n/charset klingon\n/charset UTF-16\n/charset rot13\n")
    assert alice.take() == (
        b"*** Charset is utf-8\r\n*** Error: unknown charset: klingon\r\n"
        b"*** Error: utf-16 cannot be used here: it does not write ASCII as ASCII, so line ends and commands would break\r\n"
        b"*** Error: rot-13 is not a text encoding\r\n"
    )


def test_what_the_room_has_for_a_user_comes_before_what_their_connection_says_in_the_same_read(factory):
    """One read renames, sends too long a line and switches to GBK: the rename notice first, in the old charset."""
    alice = login(factory, "alice")
    alice.take()
    alice.send("/nick 张三\n".encode() + b"x" * 100 + b"\n/charset gbk\n")
    assert alice.take() == "*** alice is now known as 张三\r\n".encode() + (
        b"*** Error: line too long (max 64 bytes)\r\n*** Charset is now gbk\r\n")


def test_lines_after_a_charset_switch_in_the_same_read_are_decoded_in_the_new_charset(factory):
    """A Latin-1 user's read that switches to UTF-8 and goes on in UTF-8: the line after the switch is UTF-8's."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.send(b"/charset latin-1\n")
    alice.take(), bob.take()
    alice.send(b"/charset utf-8\n" + "né\n".encode())  # in Latin-1, "nÃ©": printable too
    assert bob.take() == "<alice> né\r\n".encode()


def test_charset_works_before_choosing_a_nickname(factory):
    """A GBK user can pick a Chinese nickname after /charset gbk."""
    client = Client(factory, 1)
    client.take()
    client.send(b"/charset gbk\n" + "张三\n".encode("gbk"))
    assert client.take().decode("gbk") == "*** Charset is now gbk\r\n*** Hello 张三! Type /help for commands.\r\n"


def test_undecodable_input_gets_one_hint_and_nothing_undecoded_reaches_anyone(factory):
    """Bad bytes become U+FFFD; the sender gets the /charset hint once."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"caf\xe9\n" + b"na\xefve\n")
    hint = alice.take()
    assert hint == (
        b"*** Your input is not valid utf-8; type /charset NAME to use your terminal's "
        b"encoding (e.g. /charset gbk, /charset latin-1)\r\n"
    )
    assert bob.take().decode() == "<alice> caf\ufffd\r\n<alice> na\ufffdve\r\n"


def test_the_undecodable_hint_suggests_other_charsets_than_the_one_in_use(factory):
    """A GBK user whose terminal sends UTF-8 is pointed to /charset utf-8, not to gbk again."""
    alice = login(factory, "alice")
    alice.send(b"/charset gbk\n")
    alice.take()
    alice.send("caf\u00e9 \u2603\n".encode())
    assert alice.take() == (
        b"*** Your input is not valid gbk; type /charset NAME to use your terminal's "
        b"encoding (e.g. /charset utf-8, /charset latin-1)\r\n"
    )


def test_overlong_line_gets_an_error_and_the_connection_stays_usable(factory):
    """A line over --max-line is dropped whole with one error line."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"x" * 65 + b"\nafter\n")
    assert alice.take() == b"*** Error: line too long (max 64 bytes)\r\n"
    assert bob.take() == b"<alice> after\r\n"


def test_output_doubles_iac_bytes(factory):
    """Byte 0xFF in output is sent as IAC IAC."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.send(b"/charset latin-1\n")
    bob.take()
    alice.send("ÿes\n".encode())
    assert bob.take() == b"<alice> \xff\xffes\r\n"


def test_echoing_client_gets_keystrokes_echoed_and_its_partial_line_redrawn(factory):
    """In echo mode a message arriving mid-typing is printed above the partial line, which is redrawn."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.send(IAC + DO + ECHO + IAC + DO + SGA)
    assert bob.take() == IAC + WILL + ECHO + IAC + WILL + SGA + IAC + DO + BINARY
    for key in b"hel":
        bob.send(bytes([key]))
    assert bob.take() == b"hel"
    alice.send(b"hi bob\n")
    assert bob.take() == b"\r\x1b[J<alice> hi bob\r\nhel"
    bob.send(b"\x7fp\r\n")
    assert bob.take() == b"\x08 \x08p\r\n"
    assert alice.take() == b"<bob> hep\r\n"


def echoing_client(factory, nick, port):
    """A character-mode client (as PuTTY): asks for echo, sends each key on its own."""
    client = login(factory, nick, port)
    client.send(IAC + DO + ECHO + IAC + WILL + NAWS)
    client.take()
    return client


def type_keys(client, keys):
    for key in keys:
        client.send(bytes([key]))


def test_a_message_arriving_over_a_wrapped_partial_line_clears_every_row_of_it(factory):
    """With a 20-column window (NAWS), 45 typed columns span three rows: the redraw goes up two rows first."""
    alice, bob = login(factory, "alice"), echoing_client(factory, "bob", 40001)
    bob.send(IAC + SB + NAWS + b"\x00\x14\x00\x18" + IAC + SE)
    type_keys(bob, b"x" * 45)
    assert bob.take() == b"x" * 45
    alice.send(b"hi\n")
    assert bob.take() == b"\r\x1b[2A\x1b[J<alice> hi\r\n" + b"x" * 45


def test_in_character_mode_what_the_typist_sees_is_what_the_others_get(factory):
    """Arrow keys are neither echoed nor sent; Ctrl-W and Ctrl-U erase on screen and in the line alike."""
    alice, bob = login(factory, "alice"), echoing_client(factory, "bob", 40001)
    alice.take()
    type_keys(bob, b"abc\x1b[D\x1b[DX one\x17two\r\n")
    assert bob.take() == b"abcX one" + b"\b \b" * 3 + b"two\r\n"
    assert alice.take() == b"<bob> abcX two\r\n"
    type_keys(bob, b"oops\x15fine\r\n")
    assert bob.take() == b"oops" + b"\b \b" * 4 + b"fine\r\n"
    assert alice.take() == b"<bob> fine\r\n"


def test_in_character_mode_an_overlong_line_error_starts_a_fresh_row_and_typing_goes_on(factory):
    """The error is not glued to the typed text; keys typed after it are echoed and make the next line."""
    alice, bob = login(factory, "alice"), echoing_client(factory, "bob", 40001)
    alice.take()
    type_keys(bob, b"q" * 65)
    assert bob.take() == b"q" * 64 + b"\r\n*** Error: line too long (max 64 bytes)\r\n"
    type_keys(bob, b"ok\r\n")
    assert bob.take() == b"ok\r\n"
    assert alice.take() == b"<bob> ok\r\n"


def test_an_exception_in_one_connection_closes_only_that_connection(factory, monkeypatch, log_lines):
    """A bug while handling one user's input is logged; that connection is aborted; others go on."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()

    def explode(self, data):
        raise RuntimeError("bug")

    monkeypatch.setattr(alice.protocol, "applicationDataReceived", explode.__get__(alice.protocol))
    alice.send(b"boom\n")
    assert alice.transport.disconnecting
    assert "error handling input from 127.0.0.1:40000; closing" in log_lines
    bob.send(b"still fine\n")
    assert alice.take() == b"<bob> still fine\r\n"  # alice is closing, but the room is intact


@pytest.mark.parametrize("reason, shown", [(ConnectionDone(), "Quit"), (ConnectionLost(), "Connection lost")])
def test_closing_cleanly_is_quit_and_a_reset_is_connection_lost(factory, reason, shown):
    """EOF leaves with Quit; a reset or error with Connection lost."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.protocol.connectionLost(Failure(reason))
    assert alice.take() == f"*** bob has left ({shown})\r\n".encode()


def test_quit_closes_after_bye_and_ignores_what_follows(factory):
    """After /quit the user gets Bye, the connection closes, later lines are ignored."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.send(b"/quit\nignored\n")
    assert bob.take() == b"*** Bye!\r\n"
    assert bob.transport.disconnecting
    assert alice.take() == b"*** bob has left (Quit)\r\n"


def test_lines_read_after_quit_in_the_same_read_are_not_carried_out(factory):
    """A read of /quit and then more lines: the connection is closing, so a nickname after it logs nobody in."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.send(b"/quit\ncarol\nhello\n")
    assert bob.take() == b"*** Bye!\r\n"
    assert alice.take() == b"*** bob has left (Quit)\r\n"
    assert factory.server.nick_of(bob.protocol) is None


# Bytes a hostile client might send: telnet commands, broken UTF-8, line-end
# mixtures, escape sequences, and anything else.
hostile_bytes = st.lists(
    st.one_of(
        st.binary(max_size=40),
        st.sampled_from([b"\xff", b"\xff\xfa", b"\xff\xf0", b"\xff\xfd\x01", b"\r", b"\n", b"\r\x00",
                         b"\x1b[31m", b"\x1b]0;t\x07", b"\xe2\x80\xae", b"\xc3", b"\x08", b"\x7f"]),
    ),
    max_size=30,
).map(b"".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=hostile_bytes)
def test_any_bytes_from_one_user_never_put_a_control_character_on_anothers_screen(data):
    """Whatever alice sends, bob receives only clean text lines, and the room still works."""
    factory = TelnetDoor(ChatServer("lab", Clock()), Settings("lab", max_line_bytes=64), Clock())
    alice, bob = login(factory, "alice"), login(factory, "bob", port=40001)
    alice.take()
    alice.send(data + b"\r\n")
    received = bob.take().decode("utf-8")
    assert received.endswith("\r\n") or received == ""
    for line in received.split("\r\n"):
        assert not any(unicodedata.category(char) == "Cc" or char in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069" for char in line)
    bob.send(b"/list\n")
    assert bob.take().startswith(b"*** ")


# -- limits


class KeepAliveTransport(StringTransport):
    keepalive = nodelay = None

    def setTcpKeepAlive(self, enabled):
        self.keepalive = enabled

    def setTcpNoDelay(self, enabled):
        self.nodelay = enabled


def limited_factory(clock=None, **settings):
    clock = clock or Clock()
    return TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", **settings), clock, ConnectionLimits(2, 1))


def test_over_max_clients_gets_one_line_and_is_closed():
    """The third connection to a server of two: 'server full', closed, never greeted."""
    factory = limited_factory()
    Client(factory, 1, host="127.0.0.1"), Client(factory, 2, host="127.0.0.2")
    third = Client(factory, 3, host="127.0.0.3")
    assert third.take() == b"*** Error: server full\r\n"
    assert third.transport.disconnecting


def test_over_max_per_address_gets_one_line_and_a_freed_slot_is_reused():
    """A second connection from one address is refused; after the first closes, one is admitted."""
    factory = limited_factory()
    first = Client(factory, 1)
    second = Client(factory, 2)
    assert second.take() == b"*** Error: too many connections from your address\r\n"
    assert second.transport.disconnecting
    second.protocol.connectionLost(Failure(ConnectionDone()))  # a refused connection frees nothing
    first.protocol.connectionLost(Failure(ConnectionDone()))
    assert Client(factory, 3).take().startswith(b"*** Welcome")


def test_every_connection_gets_tcp_keepalive_and_no_nagle(factory):
    """Keepalive is on, so dead peers are found; Nagle is off, so messages are not held back."""
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = KeepAliveTransport()
    protocol.makeConnection(transport)
    assert transport.keepalive is True
    assert transport.nodelay is True


def test_a_connection_with_the_options_from_its_listener_does_not_set_them_again(factory):
    """A transport that has keep-alive and no-Nagle from its listening socket (LeanServer on Linux) is not asked for them."""

    class FromListener(KeepAliveTransport):
        options_from_listener = True

    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1))
    transport = FromListener()
    protocol.makeConnection(transport)
    assert protocol._life.started
    assert transport.keepalive is None and transport.nodelay is None


def test_login_timeout_closes_a_connection_without_a_nickname():
    """No nickname within --login-timeout: a notice and the connection closed."""
    clock = Clock()
    factory = limited_factory(clock, login_timeout_seconds=60)
    client = Client(factory, 1)
    client.take()
    clock.advance(59)
    assert not client.transport.disconnecting
    clock.advance(1)
    assert client.take() == b"*** Error: no nickname chosen within 60 s; closing\r\n"
    assert client.transport.disconnecting


def test_the_login_timeouts_of_many_connections_are_one_timer():
    """
    A hundred connections waiting for their nicknames hold no more timers
    than one does (the door's wheel, not a DelayedCall each), and each is
    closed when its --login-timeout has passed.
    """
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", login_timeout_seconds=60), clock)
    clients = [Client(factory, 1, host="127.0.0.1", wait_for_greeting=False)]
    timers_for_one = len(clock.getDelayedCalls())
    clients += [Client(factory, port, host=f"127.0.0.{port}", wait_for_greeting=False) for port in range(2, 101)]
    assert len(factory.connections) == 100
    assert len(clock.getDelayedCalls()) == timers_for_one
    clock.advance(59)
    assert not any(client.transport.disconnecting for client in clients)
    clock.advance(1)
    assert all(client.transport.disconnecting for client in clients)


def test_login_timeout_stops_once_joined():
    """A user who chose a nickname is not timed out by the login timer."""
    clock = Clock()
    factory = limited_factory(clock, login_timeout_seconds=60)
    client = Client(factory, 1)
    client.send(b"alice\n")
    clock.advance(3600)
    assert not client.transport.disconnecting


def test_idle_timeout_disconnects_after_silence_and_input_resets_it():
    """--idle-timeout: input resets the timer; silence past it leaves with 'Idle timeout'."""
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", idle_timeout_seconds=30), clock)
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    alice.take()
    clock.advance(29)
    bob.send(b"still here\n")
    alice.send(b"/list\n")
    assert alice.take() == b"<bob> still here\r\n*** 2 users online: alice, bob\r\n"
    clock.advance(29)
    alice.send(b"/list\n")
    alice.take()
    clock.advance(1.5)  # bob's last input was 30.5 s ago, alice's 1.5 s ago
    assert alice.take() == b"*** bob has left (Idle timeout)\r\n"
    assert bob.take().endswith(b"*** Error: no input for 30 s; closing\r\n")
    assert bob.transport.disconnecting


@pytest.mark.parametrize("first_bytes", [b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n", b"POST /login HTTP/1.0\r\n"])
def test_a_browser_after_the_greeting_gets_a_hint_and_is_closed(factory, first_bytes):
    """Too late to be served the page (the greeting is out): one plain line with the telnet command, then closed."""
    client = Client(factory, 1)
    client.take()
    client.send(first_bytes)
    assert client.take() == (
        b"This is chatd, a telnet chat server, not an HTTP server. Connect with: telnet 10.0.0.1 8088\r\n"
    )
    assert client.transport.disconnecting


@pytest.mark.parametrize("wait_for_greeting", [True, False])
def test_a_tls_client_is_closed_with_a_log_line_when_tls_is_off(factory, log_lines, wait_for_greeting):
    """
    With TLS off (--no-tls: the door has no TLS entrance), a TLS ClientHello
    on the chat port is closed with a log line, whether it came before the
    greeting or after.
    """
    assert factory.tls is None
    client = Client(factory, 1, wait_for_greeting=wait_for_greeting)
    client.take()
    client.send(bytes.fromhex("160301020001") + b"\x00" * 40)
    client.take()
    assert client.transport.disconnecting
    assert "127.0.0.1:1 spoke TLS, which is off here (--no-tls); closing" in log_lines
    factory.clock.advance(GREETING_WAIT_SECONDS)
    assert client.take() == b""  # and no greeting follows


def test_a_tls_client_that_speaks_after_the_connection_is_unwrapped_and_keeps_its_place_and_deadline(factory,
                                                                                                 tmp_path):
    """
    A ClientHello that comes after the connection (not with it): the telnet
    session ends quietly, the connection becomes a TLS one whose handshake
    holds the one place in the limits, and the login timeout still counts
    from the TCP connect.
    """
    from tests.net.test_handshake import client_hello
    from chatd.net.certificate import self_signed
    from chatd.net.handshake import HandshakeFailures, TLSConnection, TLSEntrance
    from chatd.net.tls import ServerTLS

    certificate, _ = self_signed(tmp_path, ["lab"], [])
    factory.tls = TLSEntrance(ServerTLS(certificate, lambda: certificate), factory, clock=factory.clock,
                              limits=factory.limits, is_banned=lambda address: False, login_timeout_seconds=60,
                              failures=HandshakeFailures(factory.clock))
    client = Client(factory, 1, wait_for_greeting=False)
    factory.clock.advance(GREETING_WAIT_SECONDS / 2)
    client.send(client_hello())
    assert isinstance(client.transport.protocol, TLSConnection)
    assert client.transport.value().startswith(b"\x16\x03")  # the ServerHello, not a greeting
    assert factory.limits.total == 1 and len(factory.connections) == 0
    factory.clock.advance(60 - GREETING_WAIT_SECONDS / 2 - 0.001)
    assert not client.transport.disconnecting
    factory.clock.advance(0.001)  # 60 s after the TCP connect, not after the ClientHello
    assert client.transport.disconnecting


def test_the_greeting_comes_after_a_moment_of_silence(factory):
    """A client that says nothing is greeted after GREETING_WAIT_SECONDS."""
    client = Client(factory, 1, wait_for_greeting=False)
    assert client.take() == b""
    factory.clock.advance(GREETING_WAIT_SECONDS)
    assert client.take() == b"*** Welcome to chatd on lab. 0 users online.\r\n*** Choose a nickname:\r\n"


def test_a_client_that_types_ahead_gets_the_greeting_and_its_answer_in_one_write(factory):
    """A client that types before the greeting gets the greeting and the answer to its line in one write."""
    client = Client(factory, 1, wait_for_greeting=False)
    writes = []
    write = client.transport.write
    client.transport.write = lambda data: (writes.append(data), write(data))
    client.send(b"alice\r\nhi\r\n")
    client.take()
    assert writes == [b"*** Welcome to chatd on lab. 0 users online.\r\n*** Choose a nickname:\r\n"
                      b"*** Hello alice! Type /help for commands.\r\n"]


def test_a_browser_before_the_greeting_is_served_the_web_page(log_lines):
    """`http://HOST:8088/`: the same page as the web port, on this connection, which keeps its place in the limits."""
    from tests.fakes import make_site

    clock = Clock()
    limits = ConnectionLimits(10, 2)
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab"), clock, limits)
    factory.web, _ = make_site(clock, limits=limits)
    browser = Client(factory, 1, wait_for_greeting=False)
    browser.send(b"GET /healthz HTTP/1.1\r\nHost: 10.0.0.1:8088\r\n\r\n")  # (the page is sent by a producer the reactor runs)
    clock.advance(GREETING_WAIT_SECONDS)
    served = browser.transport.value()
    assert served.startswith(b"HTTP/1.1 200 OK\r\n") and served.endswith(b"\r\n\r\nok\n")
    assert b"Welcome to chatd" not in served
    assert limits.total == 1 and len(factory.connections) == 0
    assert not any("left before choosing a nickname" in line for line in log_lines)
    browser.transport.protocol.connectionLost(Failure(ConnectionDone()))
    assert limits.total == 0


def test_an_irc_client_before_the_greeting_is_served_as_irc():
    """Its first line is NICK (or CAP, USER, PASS): the IRC door takes the connection and its place in the limits."""
    from chatd.irc.protocol import IrcDoor

    clock = Clock()
    limits = ConnectionLimits(10, 2)
    server = ChatServer("lab", clock, turn=Turn(clock))
    irc = IrcDoor(server, Settings("lab"), clock, limits)
    factory = TelnetDoor(server, Settings("lab"), clock, limits, irc.flusher, irc=irc)
    client = Client(factory, 1, wait_for_greeting=False)
    client.send(b"NICK alice\r\nUSER alice 0 * :Alice\r\n")
    clock.advance(GREETING_WAIT_SECONDS)
    served = client.transport.value().decode()
    assert served.startswith(":lab 001 alice ") and "Welcome to chatd" not in served.split("\r\n")[1]
    assert limits.total == 1 and len(factory.connections) == 0 and server.nick_of(client.transport.protocol) == "alice"


def test_a_nickname_line_after_the_greeting_is_a_nickname_even_if_it_looks_like_irc(factory):
    """After the greeting, a line that looks like IRC is a nickname like any other."""
    client = Client(factory, 1)
    client.take()
    client.send(b"NICK alice\r\n")
    assert client.take() == (b"*** Error: nickname may not contain spaces: use letters, digits and _-[]{}|^\r\n"
                             b"*** Choose a nickname:\r\n")


def test_a_browser_before_the_greeting_without_the_web_page_gets_the_hint(factory):
    """A browser at the chat port with --no-web gets one line saying what chatd is and how to connect."""
    browser = Client(factory, 1, wait_for_greeting=False)
    browser.send(b"GET / HTTP/1.1\r\nHost: 10.0.0.1:8088\r\n\r\n")
    assert browser.take() == (
        b"This is chatd, a telnet chat server, not an HTTP server. Connect with: telnet 10.0.0.1 8088\r\n"
    )


def test_a_nickname_that_starts_like_http_is_just_a_nickname(factory):
    """Only a real request line is HTTP: 'GET' alone is a nickname."""
    client = Client(factory, 1)
    client.take()
    client.send(b"GET\r\n")
    assert client.take() == b"*** Hello GET! Type /help for commands.\r\n"


def test_half_close_delivers_the_last_line_then_leaves_with_quit(factory):
    """EOF after an unterminated line: the line is said, the user leaves with Quit, queued output is flushed."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.send(b"last words")
    bob.protocol.readConnectionLost()
    assert alice.take() == b"<bob> last words\r\n*** bob has left (Quit)\r\n"
    assert bob.transport.disconnecting  # loseConnection: what is queued is written first


def test_a_flooder_is_slowed_without_losing_a_line_and_reading_pauses():
    """200 lines at once: the burst passes, the rest at 5 a second, all in order; the socket stops being read while 100 wait."""
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab"), clock)
    alice, bob = Client(factory, 1, "127.0.0.1"), Client(factory, 2, "127.0.0.2")
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    alice.take()
    bob.take()
    alice.send(b"".join(b"msg %d\n" % index for index in range(200)))
    # The burst is 20 lines, and alice's nickname was one of them.
    assert bob.take() == b"".join(b"<alice> msg %d\r\n" % index for index in range(19))
    assert alice.transport.producerState == "paused"
    clock.pump([0.2] * 81)  # 16 s: 80 more let through, 100 still waiting
    assert alice.transport.producerState == "paused"
    clock.pump([0.2] * 20)
    assert alice.transport.producerState == "producing"
    clock.pump([0.2] * 100)
    assert bob.take() == b"".join(b"<alice> msg %d\r\n" % index for index in range(19, 200))


def test_reads_in_one_turn_reach_each_member_in_one_write(factory):
    """Two users' lines in one reactor turn: each other user gets one write holding both, in order."""
    alice, bob, carol = login(factory, "alice"), login(factory, "bob"), login(factory, "carol")
    for client in (alice, bob, carol):
        client.take()
    writes = []
    carol.transport.write = writes.append
    alice.send(b"one\n")
    bob.send(b"two\nthree\n")
    assert writes == []
    factory.clock.advance(0)  # the end of the turn: the flusher runs as a delayed call due now
    assert writes == [b"<alice> one\r\n<bob> two\r\n<bob> three\r\n"]
    assert alice.take() == b"<bob> two\r\n<bob> three\r\n"
    assert bob.take() == b"<alice> one\r\n"


def test_at_the_end_of_a_turn_what_was_queued_first_goes_first(factory):
    """alice's reply waits in her queue; bob's message, held by the room, reaches her after it."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"/list\n")
    bob.send(b"hi\n")
    assert alice.take() == b"*** 2 users online: alice, bob\r\n<bob> hi\r\n"


def test_a_slow_reader_is_dropped_and_the_sender_is_not_slowed():
    """bob's transport is full and his queue passes --sendq: he leaves with 'Send queue exceeded'; alice and carol go on."""
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", send_queue_bytes=1024, rate_lines_per_second=1000, rate_burst_lines=1000), clock)
    alice, bob, carol = (Client(factory, port, f"127.0.0.{port}") for port in (1, 2, 3))
    for client, nick in ((alice, b"alice"), (bob, b"bob"), (carol, b"carol")):
        client.send(nick + b"\n")
    for client in (alice, bob, carol):
        client.take()
    bob.protocol._life.send_queue.pauseProducing()  # as Twisted does when bob's socket buffer is full
    alice.send(b"x" * 200 + b"\n")
    alice.send(b"".join(b"%d\n" % index for index in range(200)))
    lines = carol.take().split(b"\r\n")  # the end of the turn
    assert bob.transport.disconnected  # aborted, not flushed
    assert b"*** bob has left (Send queue exceeded)" in lines
    assert [line for line in lines if line.startswith(b"<alice> ")][1:] == [b"<alice> %d" % index for index in range(200)]
    assert not alice.transport.disconnecting


def test_shutdown_delivers_what_was_said_in_the_same_turn_first(factory):
    """A line held for the end of the turn when the shutdown comes still reaches everyone, before the notice."""
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    alice.send(b"last words\n")
    factory.shut_down(5)
    assert bob.transport.value() == b"<alice> last words\r\n*** Server shutting down\r\n"


def test_at_shutdown_everyone_leaves_for_that_reason_and_is_told_nothing_more(factory):
    """The room (and so the log and transcript) hears 'Server shutting down'; each user gets only the notice."""
    recorded = []
    factory.server.observers.append(recorded.append)
    alice, bob = login(factory, "alice"), login(factory, "bob")
    alice.take()
    bob.take()
    recorded.clear()
    factory.shut_down(5)
    everyone_left = {Left("alice", "Server shutting down"), Left("bob", "Server shutting down")}
    assert len(recorded) == 2 and set(recorded) == everyone_left
    assert alice.take() == bob.take() == b"*** Server shutting down\r\n"
    alice.protocol.connectionLost(Failure(ConnectionLost()))  # closing after that adds no second leave
    assert len(recorded) == 2


def test_shutdown_waits_for_flushing_connections_at_most_the_grace_period():
    """shut_down: the notice to every connection; a connection still flushing after the grace is aborted; then it is done."""
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab"), clock)
    alice, lurker = login(factory, "alice"), Client(factory, 7, "127.0.0.7")
    lurker.take()
    aborted = []
    lurker.transport.abortConnection = lambda: aborted.append(True)
    done = factory.shut_down(5)
    assert alice.take() == lurker.take() == b"*** Server shutting down\r\n"
    assert alice.transport.disconnecting and lurker.transport.disconnecting
    alice.protocol.connectionLost(Failure(ConnectionDone()))  # alice's output flushed
    assert not done.called
    clock.advance(4.9)
    assert aborted == []
    clock.advance(0.1)
    assert aborted == [True]
    lurker.protocol.connectionLost(Failure(ConnectionLost()))
    assert done.called



def test_a_banned_address_is_refused_at_connect():
    """A connection from a banned address gets one line and is closed, never greeted."""
    clock = Clock()
    moderation = Moderation("pw", clock)
    moderation.ban("127.0.0.9", 0)
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock), moderation=moderation), Settings("lab"), clock)
    client = Client(factory, 1, "127.0.0.9")
    assert client.take() == b"*** Error: you are banned from this server\r\n"
    assert client.transport.disconnecting
    assert Client(factory, 2, "127.0.0.8").take().startswith(b"*** Welcome")


def test_a_paste_still_being_let_through_is_not_idle_and_nothing_is_dropped():
    """--idle-timeout 2 with --rate 5 --burst 5: 30 pasted lines all arrive; idle counts from the last one let through."""
    clock = Clock()
    settings = Settings("lab", idle_timeout_seconds=2, rate_lines_per_second=5, rate_burst_lines=5)
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), settings, clock)
    alice, bob = Client(factory, 1, "127.0.0.1"), Client(factory, 2, "127.0.0.2")
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    clock.advance(1)  # the tokens the nicknames took come back
    alice.take()
    bob.send(b"".join(b"line %d\n" % index for index in range(30)))
    for tenth in range(60):  # 6 s: the burst, then 25 lines at 5 a second
        if tenth % 10 == 0:
            alice.send(b"\n")  # an empty line: alice is not idle, and says nothing
        clock.advance(0.1)
    assert alice.take() == b"".join(b"<bob> line %d\r\n" % index for index in range(30))
    assert not bob.transport.disconnecting
    alice.send(b"\n")
    clock.advance(1.9)  # about 2 s after the last line was let through: idle now
    assert alice.take() == b"*** bob has left (Idle timeout)\r\n"


def test_lines_waiting_when_the_connection_resets_are_still_said_then_the_user_leaves():
    """A reset with lines in the flood queue: they are said at the rate, then 'Connection lost'; the slot is held till then."""
    clock = Clock()
    settings = Settings("lab", rate_lines_per_second=5, rate_burst_lines=2)
    limits = ConnectionLimits(10, 1)
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), settings, clock, limits)
    alice, bob = Client(factory, 1, "127.0.0.1"), Client(factory, 2, "127.0.0.2")
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    clock.advance(1)
    alice.take()
    bob.send(b"one\ntwo\nthree\nfour\n")
    bob.protocol.connectionLost(Failure(ConnectionLost()))
    assert alice.take() == b"<bob> one\r\n<bob> two\r\n"
    refused = Client(factory, 3, "127.0.0.2")
    assert refused.take() == b"*** Error: too many connections from your address\r\n"
    clock.pump([0.2] * 3)
    assert alice.take() == b"<bob> three\r\n<bob> four\r\n*** bob has left (Connection lost)\r\n"
    assert Client(factory, 4, "127.0.0.2").take().startswith(b"*** Welcome")


def test_a_reset_user_still_saying_queued_lines_is_closed_at_shutdown():
    """Shutdown does not wait for a closed connection's queued lines: it leaves at once."""
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", rate_burst_lines=1), clock)
    alice, bob = Client(factory, 1, "127.0.0.1"), Client(factory, 2, "127.0.0.2")
    alice.send(b"alice\n")
    bob.send(b"bob\n")
    clock.advance(1)
    bob.send(b"one\ntwo\nthree\n")
    bob.protocol.connectionLost(Failure(ConnectionLost()))
    alice.take()
    done = factory.shut_down(5)
    assert [life.session for life in factory.connections] == [alice.protocol]
    alice.protocol.connectionLost(Failure(ConnectionDone()))
    assert done.called


def test_shutdown_with_a_reset_connection_still_saying_its_queued_lines_closes_everyone():
    """
    A user reset their connection with lines still waiting in the flood
    queue (still said, at the usual rate); at the shutdown, that connection
    is not closed again (its socket is gone: closing it raised, which
    stopped the shutdown half way), the others get the notice and leave,
    and the shutdown ends.
    """
    clock = Clock()
    factory = TelnetDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", rate_lines_per_second=1, rate_burst_lines=1), clock)
    alice, bob = login(factory, "alice"), login(factory, "bob", 40001)
    alice.take()
    alice.send(b"".join(b"queued %d\r\n" % number for number in range(5)))
    alice.protocol.connectionLost(Failure(ConnectionLost()))

    def gone(*args):
        raise ValueError("file descriptor cannot be a negative integer (-1)")  # as epoll says of a closed socket

    alice.transport.loseWriteConnection = alice.transport.loseConnection = gone
    done = factory.shut_down(5)
    assert bob.take().endswith(b"*** Server shutting down\r\n")
    assert factory.server.nicks() == []
    bob.protocol.connectionLost(Failure(ConnectionDone()))
    assert done.called
