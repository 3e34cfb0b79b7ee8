"""The telnet layer: IAC handling, negotiation answers, line ends (chatd.telnet)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport

from chatd.telnet import MAX_SUBNEGOTIATION_BYTES, TelnetServer

IAC, DO, DONT, WILL, WONT, SB, SE = b"\xff", b"\xfd", b"\xfe", b"\xfb", b"\xfc", b"\xfa", b"\xf0"
ECHO, SGA, NAWS, TTYPE, TSPEED, NEW_ENVIRON, LINEMODE = b"\x01", b"\x03", b"\x1f", b"\x18", b"\x20", b"\x27", b"\x22"

# What Windows telnet sends as soon as it connects.
WINDOWS_TELNET_HELLO = bytes.fromhex("FFFB1F FFFB20 FFFB18 FFFB27 FFFD01 FFFB03 FFFD03".replace(" ", ""))


class Recorder(TelnetServer):
    """A TelnetServer that records what reaches the application."""

    def __init__(self):
        super().__init__()
        self.received = []
        self.echo_events = []

    def applicationDataReceived(self, data):
        self.received.append(data)

    def echo_changed(self, echoing):
        self.echo_events.append(echoing)


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
    """nc users never see a telnet byte: the server sends nothing on connect."""
    server, transport = connected()
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


@both_ways
def test_windows_telnet_gets_echo_and_sga_and_refusals(byte_by_byte):
    """Windows telnet's opening: NAWS/TSPEED/TTYPE/NEW-ENVIRON refused, ECHO and SGA accepted."""
    server, transport = feed(WINDOWS_TELNET_HELLO + b"hi", byte_by_byte)
    assert transport.value() == (
        IAC + DONT + NAWS + IAC + DONT + TSPEED + IAC + DONT + TTYPE + IAC + DONT + NEW_ENVIRON
        + IAC + WILL + ECHO + IAC + DO + SGA + IAC + WILL + SGA
    )
    assert server.echoing is True
    assert server.echo_events == [True]
    assert b"".join(server.received) == b"hi"


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
    assert transport.value() == IAC + DONT + LINEMODE


def test_client_can_turn_echo_off_again():
    """DONT ECHO after DO ECHO is acknowledged with WONT ECHO and echo stops."""
    server, transport = connected()
    server.dataReceived(IAC + DO + ECHO)
    server.dataReceived(IAC + DONT + ECHO)
    assert transport.value() == IAC + WILL + ECHO + IAC + WONT + ECHO
    assert server.echoing is False
    assert server.echo_events == [True, False]


def test_unsupported_do_is_refused_with_wont():
    """DO for an option the server does not support gets WONT."""
    server, transport = connected()
    server.dataReceived(IAC + DO + LINEMODE)
    assert transport.value() == IAC + WONT + LINEMODE


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
