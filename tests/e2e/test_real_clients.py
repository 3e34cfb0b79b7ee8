"""
Real clients against the real server: Debian's `telnet`, `nc` and PuTTY's
`plink`, driven through a pseudo-terminal with pexpect where a person would
type, so their own rules (escape characters, local echo, when to exit) count.
"""

import shutil
import subprocess

import pexpect
import pytest
from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient


@pytest.fixture
def port(tmp_path):
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab", "--echo-port", "0", cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        yield int(port_file.read_text())
    finally:
        server.stop()


def require(program):
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    return path


def test_linux_telnet_client_chats(port):
    """A user with Debian's telnet: greeting, nickname, a message both ways, /quit."""
    telnet = pexpect.spawn(require("telnet"), ["127.0.0.1", str(port)], timeout=TIMEOUT_SECONDS, encoding="utf-8")
    try:
        telnet.expect_exact("*** Welcome to chatd on lab. 0 users online.\r\n")
        telnet.expect_exact("*** Choose a nickname:\r\n")
        telnet.sendline("alice")
        telnet.expect_exact("*** Hello alice! Type /help for commands.\r\n")
        bob = LineClient(port).login("bob")
        telnet.expect_exact("*** bob has joined (2 users online)\r\n")
        bob.send_line("hi alice, 你好")
        telnet.expect_exact("<bob> hi alice, 你好\r\n")
        telnet.sendline("hello bob")
        assert bob.read_line() == "<alice> hello bob"
        telnet.sendline("/quit")
        telnet.expect_exact("*** Bye!\r\n")
        telnet.expect_exact("Connection closed by foreign host.")
        telnet.expect(pexpect.EOF)
        assert bob.read_line() == "*** alice has left (Quit)"
    finally:
        telnet.close(force=True)


def test_nc_client_chats_and_leaves_at_end_of_input(port):
    """`nc` with a script on stdin: its lines arrive, and end of input leaves with Quit."""
    alice = LineClient(port).login("alice")
    result = subprocess.run(
        [require("nc"), "-N", "127.0.0.1", str(port)],
        input=b"carol\nhello from nc\n/me is a script\n",
        capture_output=True,
        timeout=TIMEOUT_SECONDS,
    )
    assert alice.read_lines(4) == [
        "*** carol has joined (2 users online)",
        "<carol> hello from nc",
        "* carol is a script",
        "*** carol has left (Quit)",
    ]
    assert result.stdout.startswith(b"*** Welcome to chatd on lab. 1 user online.\r\n*** Choose a nickname:\r\n")
    assert b"\xff" not in result.stdout  # nc users never see telnet bytes


def spawn(program, *args, columns=80):
    return pexpect.spawn(require(program), list(args), timeout=TIMEOUT_SECONDS, dimensions=(24, columns))


def test_linux_telnet_with_E_takes_a_nickname_with_the_byte_0x9d(port):
    """李 is E6 9D 8E in UTF-8: with -E, Debian's telnet sends it instead of taking 0x9D for its Ctrl-] escape."""
    telnet = spawn("telnet", "-E", "127.0.0.1", str(port))
    try:
        telnet.expect_exact(b"*** Choose a nickname:")
        telnet.send("/nick 李四\r".encode())
        telnet.expect_exact("*** Hello 李四! Type /help for commands.".encode())
        bob = LineClient(port).login("bob")
        telnet.send("Нина\r".encode())  # Cyrillic En is D0 9D
        assert bob.read_line() == "<李四> Нина"
    finally:
        telnet.close(force=True)


def test_linux_telnet_in_telnet_mode_gets_binary_editing_and_the_redraw(port):
    """`telnet -- HOST -PORT` negotiates: chatd echoes and edits, 李 passes (BINARY), and a message does not land in the typing."""
    telnet = spawn("telnet", "--", "127.0.0.1", f"-{port}")
    try:
        telnet.expect_exact(b"*** Choose a nickname:\r\n")
        telnet.send("李四\r".encode())
        telnet.expect_exact("*** Hello 李四! Type /help for commands.\r\n".encode())
        bob = LineClient(port).login("bob")
        telnet.expect_exact(b"*** bob has joined (2 users online)\r\n")
        telnet.send(b"typo\x17typing\x1b[D")
        telnet.expect_exact(b"typo\x08 \x08\x08 \x08\x08 \x08\x08 \x08typing")
        bob.send_line("hi")
        telnet.expect_exact(b"\r\x1b[J<bob> hi\r\ntyping")
        telnet.send(b"!\r")
        assert bob.read_line() == "<李四> typing!"
    finally:
        telnet.close(force=True)


def test_plink_in_telnet_mode_edits_and_redraws_for_its_window_width(port):
    """PuTTY's plink (-telnet, 30 columns): arrow keys and Ctrl-W/Ctrl-U edit; a redraw clears both rows of a wrapped line."""
    plink = spawn("plink", "-telnet", "-P", str(port), "127.0.0.1", columns=30)
    try:
        plink.expect_exact(b"*** Choose a nickname:")
        plink.send(b"alice\r")
        plink.expect_exact(b"*** Hello alice! Type /help for commands.\r\n")
        bob = LineClient(port).login("bob")
        plink.expect_exact(b"*** bob has joined (2 users online)\r\n")
        plink.send(b"abc\x1b[D\x1b[DX one\x17two\r")
        assert bob.read_line() == "<alice> abcX two"
        plink.send(b"x" * 40)
        plink.expect_exact(b"x" * 40)
        bob.send_line("hi")
        plink.expect_exact(b"\r\x1b[1A\x1b[J<bob> hi\r\n" + b"x" * 40)
        plink.send(b"\x15/quit\r")
        plink.expect_exact(b"*** Bye!\r\n")
        plink.expect(pexpect.EOF)
        assert bob.read_line() == "*** alice has left (Quit)"
    finally:
        plink.close(force=True)


def test_nc_at_a_terminal_exits_after_quit(port):
    """An interactive nc gets *** Bye! and then exits by itself, without Enter or Ctrl-D."""
    nc = spawn("nc", "127.0.0.1", str(port))
    try:
        nc.expect_exact(b"*** Choose a nickname:")  # (the terminal, not raw, ends lines in CR CR LF)
        nc.send(b"alice\n")
        nc.expect_exact(b"*** Hello alice! Type /help for commands.")
        nc.send(b"/quit\n")
        nc.expect_exact(b"*** Bye!")
        nc.expect(pexpect.EOF)
    finally:
        nc.close(force=True)
