"""The telnet layer: IAC handling, negotiation answers, line ends (chatd.telnet.negotiation)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport

from chatd.telnet.negotiation import MAX_SUBNEGOTIATION_BYTES, TelnetServer

IAC, DO, DONT, WILL, WONT, SB, SE = b"\xff", b"\xfd", b"\xfe", b"\xfb", b"\xfc", b"\xfa", b"\xf0"
BINARY, ECHO, SGA, NAWS, TTYPE, TSPEED, NEW_ENVIRON, LINEMODE = (
    b"\x00", b"\x01", b"\x03", b"\x1f", b"\x18", b"\x20", b"\x27", b"\x22")

# What the server offers a client once it has shown it speaks telnet.
# (WILL BINARY follows once the client has answered DO BINARY.)
OFFERS = IAC + WILL + ECHO + IAC + WILL + SGA + IAC + DO + BINARY

# What Windows telnet sends as soon as it connects.
WINDOWS_TELNET_HELLO = bytes.fromhex("FFFB1F FFFB20 FFFB18 FFFB27 FFFD01 FFFB03 FFFD03".replace(" ", ""))


class Recorder(TelnetServer):
    """A TelnetServer that records what reaches the application."""

    def __init__(self):
        super().__init__()
        self.received = []
        self.echo_events = []
        self.window_sizes = []

    def applicationDataReceived(self, data):
        self.received.append(data)

    def echo_changed(self, echoing):
        self.echo_events.append(echoing)

    def window_size_changed(self, columns, rows):
        self.window_sizes.append((columns, rows))


def connected():
    server, transport = Recorder(), StringTransport()
    server.makeConnection(transport)
    return server, transport


def feed(data, byte_by_byte):
    server, transport = connected()
    if byte_by_byte:
        for i in range(len(data)):
            server.dataReceived(data[i : i + 1])
    else:
        server.dataReceived(data)
    return server, transport


both_ways = pytest.mark.parametrize("byte_by_byte", [False, True], ids=["at-once", "byte-by-byte"])


def test_server_initiates_no_negotiation():
    """nc users never see a telnet byte: the server sends nothing on connect, nor to a client that only sends text."""
    server, transport = connected()
    server.dataReceived("alice\r\n李四 \u041d\n".encode() + b"\xff\xff\n")
    assert transport.value() == b""


@both_ways
@pytest.mark.parametrize(
    "data, expected",
    [
        (b"hello\n", b"hello\n"),
        (b"hello\r\n", b"hello\n"),
        (b"hello\r\x00", b"hello\n"),
        (b"one\rtwo\n", b"one\ntwo\n"),
        (b"a\r\n\r\nb\n", b"a\n\nb\n"),
        (b"x" + IAC + IAC + b"y\n", b"x\xffy\n"),
        (b"no line end yet", b"no line end yet"),
    ],
)
def test_line_ends_become_one_lf_and_iac_iac_is_a_data_byte(data, expected, byte_by_byte):
    """LF, CR LF, CR NUL and a bare CR each end a line once; IAC IAC is 0xFF."""
    server, transport = feed(data, byte_by_byte)
    assert b"".join(server.received) == expected
    assert transport.value() == b""


def test_crlf_split_across_reads_is_one_line_end():
    """CR at the end of one read and LF at the start of the next: one line end."""
    server, _ = connected()
    server.dataReceived(b"hello\r")
    server.dataReceived(b"\nworld\r")
    server.dataReceived(b"\x00")
    assert b"".join(server.received) == b"hello\nworld\n"


def negotiations(data):
    """The IAC WILL/WONT/DO/DONT commands in `data`, one 3-byte string each."""
    assert len(data) % 3 == 0 and all(data[i : i + 1] == IAC for i in range(0, len(data), 3)), data
    return [data[i : i + 3] for i in range(0, len(data), 3)]


def test_windows_telnet_gets_echo_sga_naws_and_binary_offered_and_refusals():
    """Windows telnet's opening: NAWS, ECHO and SGA accepted, TSPEED/TTYPE/NEW-ENVIRON refused; then BINARY offered."""
    server, transport = feed(WINDOWS_TELNET_HELLO + b"hi", byte_by_byte=False)
    assert transport.value() == (
        IAC + DO + NAWS + IAC + DONT + TSPEED + IAC + DONT + TTYPE + IAC + DONT + NEW_ENVIRON
        + IAC + WILL + ECHO + IAC + DO + SGA + IAC + WILL + SGA
        + IAC + DO + BINARY
    )
    assert server.echoing is True
    assert server.echo_events == [True]
    assert b"".join(server.received) == b"hi"


def test_windows_telnet_byte_by_byte_settles_the_same_options():
    """Read a byte at a time, the offers come earlier, and every option ends up in the same state."""
    server, transport = feed(WINDOWS_TELNET_HELLO + b"hi", byte_by_byte=True)
    assert sorted(negotiations(transport.value())) == sorted(negotiations(
        IAC + DO + NAWS + IAC + DONT + TSPEED + IAC + DONT + TTYPE + IAC + DONT + NEW_ENVIRON + IAC + DO + SGA + OFFERS))
    assert server.echoing is True
    assert b"".join(server.received) == b"hi"


def test_linux_telnet_in_telnet_mode_is_offered_character_mode_and_binary():
    """Linux telnet's opening (telnet HOST -PORT) asks for no echo: the server offers it, and SGA and BINARY."""
    linux_hello = (IAC + DO + SGA + IAC + WILL + TTYPE + IAC + WILL + NAWS + IAC + WILL + TSPEED + IAC + WILL + b"\x21"
                   + IAC + WILL + LINEMODE + IAC + WILL + NEW_ENVIRON + IAC + DO + b"\x05")
    server, transport = feed(linux_hello, byte_by_byte=False)
    assert transport.value() == (
        IAC + WILL + SGA + IAC + DONT + TTYPE + IAC + DO + NAWS + IAC + DONT + TSPEED + IAC + DONT + b"\x21"
        + IAC + DONT + LINEMODE + IAC + DONT + NEW_ENVIRON + IAC + WONT + b"\x05"
        + IAC + WILL + ECHO + IAC + DO + BINARY
    )
    transport.clear()
    server.dataReceived(IAC + DO + ECHO + IAC + WILL + BINARY)  # the client agrees
    assert transport.value() == IAC + WILL + BINARY  # the other direction of BINARY, now that one is settled
    transport.clear()
    server.dataReceived(IAC + DO + BINARY)
    assert transport.value() == b""
    assert server.echoing is True
    server.dataReceived(IAC + SB + NAWS + b"\x00\x78\x00\x28" + IAC + SE)
    assert server.window_sizes == [(120, 40)]


def test_offers_are_made_once_and_a_refusal_is_not_argued_with():
    """A client that refuses the offers gets no second offer and no answer to its refusals."""
    server, transport = connected()
    server.dataReceived(IAC + WONT + LINEMODE)
    assert transport.value() == OFFERS
    transport.clear()
    server.dataReceived(IAC + DONT + ECHO + IAC + DONT + SGA + IAC + WONT + BINARY)
    assert transport.value() == IAC + WILL + BINARY  # the other direction is asked once
    transport.clear()
    server.dataReceived(IAC + DONT + BINARY)
    server.dataReceived(IAC + WONT + TTYPE)
    assert transport.value() == b""
    assert server.echoing is False


def test_a_window_size_is_heard_only_once_naws_is_agreed():
    """NAWS subnegotiation before DO NAWS, or with a zero width, changes nothing."""
    server, transport = connected()
    server.dataReceived(IAC + SB + NAWS + b"\x00\x50\x00\x18" + IAC + SE)
    server.dataReceived(IAC + WILL + NAWS)
    server.dataReceived(IAC + SB + NAWS + b"\x00\x00\x00\x18" + IAC + SE)
    server.dataReceived(IAC + SB + NAWS + b"\x00\xff\xff\x00\x30" + IAC + SE)  # 255 columns, its 0xFF doubled
    assert server.window_sizes == [(255, 48)]


def test_negotiation_is_never_answered_in_a_loop():
    """Repeating a request for an option already on gets no second answer."""
    server, transport = connected()
    server.dataReceived(IAC + DO + ECHO)
    transport.clear()
    server.dataReceived(IAC + DO + ECHO + IAC + WILL + SGA)
    server.dataReceived(IAC + WILL + SGA)
    assert transport.value() == IAC + DO + SGA


def test_refused_option_refused_again_without_loop():
    """A refused WILL gets one DONT each time, and a WONT for it gets nothing."""
    server, transport = connected()
    server.dataReceived(IAC + WILL + LINEMODE + IAC + WONT + LINEMODE + IAC + DONT + LINEMODE)
    assert transport.value() == IAC + DONT + LINEMODE + OFFERS


def test_client_can_turn_echo_off_again():
    """DONT ECHO after DO ECHO is acknowledged with WONT ECHO and echo stops."""
    server, transport = connected()
    server.dataReceived(IAC + DO + ECHO)
    server.dataReceived(IAC + DONT + ECHO)
    assert transport.value() == IAC + WILL + ECHO + IAC + WILL + SGA + IAC + DO + BINARY + IAC + WONT + ECHO
    assert server.echoing is False
    assert server.echo_events == [True, False]


def test_unsupported_do_is_refused_with_wont():
    """DO for an option the server does not support gets WONT."""
    server, transport = connected()
    server.dataReceived(IAC + DO + LINEMODE)
    assert transport.value() == IAC + WONT + LINEMODE + OFFERS


@both_ways
def test_subnegotiation_and_other_commands_never_reach_the_application(byte_by_byte):
    """SB ... SE (with IAC IAC inside), NOP, AYT and an unknown command byte are consumed."""
    data = b"a" + IAC + SB + NAWS + b"\x00\x50" + IAC + IAC + b"\x18" + IAC + SE + b"b" + IAC + b"\xf1" + IAC + b"\xf6" + IAC + b"A" + b"c\n"
    server, _ = feed(data, byte_by_byte)
    assert b"".join(server.received) == b"abc\n"


def test_telnet_erase_character_command_is_a_backspace():
    """IAC EC reaches the line editor as BS."""
    server, _ = feed(b"ab" + IAC + b"\xf7" + b"\n", byte_by_byte=False)
    assert b"".join(server.received) == b"ab\b\n"


def test_overlong_subnegotiation_is_discarded_and_connection_stays_usable():
    """A subnegotiation past the limit is dropped; data after its SE still arrives."""
    server, transport = connected()
    server.dataReceived(IAC + SB + TTYPE + b"x" * (MAX_SUBNEGOTIATION_BYTES * 3))
    server.dataReceived(b"y" * 10 + IAC + SE + b"still here\n")
    assert b"".join(server.received) == b"still here\n"
    assert not transport.disconnecting
    assert len(server._subnegotiation) == 0


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=7))
def test_any_bytes_in_any_chunks_never_raise_and_never_pass_iac_commands(data, chunk):
    """Arbitrary bytes in arbitrary reads never raise, and no CR reaches the application."""
    server, _ = connected()
    for i in range(0, len(data), chunk):
        server.dataReceived(data[i : i + chunk])
    assert b"\r" not in b"".join(server.received)
