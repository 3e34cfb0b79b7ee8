"""The real Debian `telnet` client (driven with pexpect) and `nc` against the real server."""

import shutil
import subprocess

import pexpect
import pytest
from chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient


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
        pytest.fail(f"{program} is not installed; .ci/run installs it (apt-get install {program})")
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
