"""
Accounts, notes and mentions against the real `twistd -n chatd` and its
SQLite store: registration from telnet, the password prompt in Debian's
telnet (character mode and line mode, driven through a pseudo-terminal:
the password must not appear on the user's screen), three wrong tries, and
a note and a mention that wait across a restart.
"""

from __future__ import annotations

import pexpect
import pytest

from chatd.core.accounts import FAILURES_PER_ADDRESS
from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient
from tests.e2e.test_real_clients import require

PASSWORD = "tea and biscuits"


def start(tmp_path):
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--name", "lab", "--no-echo",
                           "--port-file", str(tmp_path / "port"), "--state-dir", str(tmp_path / "state"),
                           cwd=tmp_path)
    process.wait_for_log("chat room listening on")
    return process, int((tmp_path / "port").read_text())


@pytest.fixture
def chatd(tmp_path):
    process, port = start(tmp_path)
    try:
        yield port
    finally:
        process.stop()


def register(port, nick):
    user = LineClient(port).login(nick)
    user.send_line(f"/register {PASSWORD}")
    assert user.read_line() == f"*** {nick} is registered to you now: from now on, choosing it asks for your password"
    assert user.read_line() == (  # TLS is there to carry it (on this very port)
        f"*** This connection is not encrypted: others on the network could read that password. For a private one: "
        f"openssl s_client -quiet -connect 127.0.0.1:{port}")
    user.send_line("/quit")
    user.read_until(b"*** Bye!\r\n")
    user.close()


@pytest.mark.parametrize("mode", ["character", "line"])
def test_telnet_asks_for_the_password_and_never_shows_it(chatd, mode):
    """Debian's telnet, in either mode: the prompt, the password typed unseen, then the login."""
    register(chatd, "alice")
    telnet = pexpect.spawn(require("telnet"), ["127.0.0.1", str(chatd)], timeout=TIMEOUT_SECONDS, encoding="utf-8")
    try:
        telnet.expect_exact("*** Choose a nickname:\r\n")
        if mode == "line":
            telnet.send("\x1d")  # telnet's escape character, then its own command
            telnet.expect_exact("telnet> ")
            telnet.sendline("mode line")
        telnet.sendline("alice")
        telnet.expect_exact("*** alice is registered; password:")
        telnet.sendline(PASSWORD)
        telnet.expect_exact("*** Hello alice! Type /help for commands.")
        assert PASSWORD not in telnet.before
        telnet.sendline("typed and seen")  # the client's own echo (or chatd's) is back for what follows
        telnet.expect_exact("typed and seen")
    finally:
        telnet.close(force=True)


def test_three_wrong_passwords_close_the_connection(chatd):
    """
    A user who gets the password wrong three times is told each time, then
    disconnected.  A client that speaks no telnet (this one, as nc) gets the
    one telnet request of the prompt, IAC WILL ECHO, once, and nothing else.
    """
    register(chatd, "alice")
    guess = LineClient(chatd)
    guess.read_lines(2)
    guess.send_line("alice")
    prompt = b"*** alice is registered; password:\r\n"
    seen = b""
    for wrong in ("not it at all", "nor this one"):
        seen += guess.read_until(prompt)
        guess.send_line(wrong)
        seen += guess.read_until(b"*** Error: wrong password for alice\r\n")
    seen += guess.read_until(prompt)
    guess.send_line("still not it")
    seen += guess.read_until_closed()
    assert seen.count(b"\xff") == 1 and b"\xff\xfb\x01" in seen  # IAC WILL ECHO
    assert seen.replace(b"\xff\xfb\x01", b"").decode().splitlines() == [
        "*** alice is registered; password:", "*** Error: wrong password for alice",
        "*** alice is registered; password:", "*** Error: wrong password for alice",
        "*** alice is registered; password:", "*** Error: wrong password 3 times: goodbye"]


def test_a_note_and_a_mention_wait_for_their_owner_across_a_restart(tmp_path):
    """bob leaves alice (registered, away) a message and names her; chatd restarts; alice gets both, once."""
    server, port = start(tmp_path)
    try:
        register(port, "alice")
        bob = LineClient(port).login("bob")
        bob.send_line("/msg alice the printer works again")
        assert bob.read_line() == "*** alice is away; they get your message when they log in"
        bob.send_line("alice: see you at lunch?")
        bob.send_line("/msg nobody hello")
        assert bob.read_line() == "*** Error: no such nick: nobody"
        bob.close()
    finally:
        assert server.stop() == 0
    server, port = start(tmp_path)
    try:
        alice = come_back(port, "alice")
        seen = text(alice.read_until(b"since you left (/mentions lists them)\r\n"))
        assert "*** 1 message while you were away:\r\n" in seen
        assert "*bob* the printer works again\r\n" in seen
        assert "*** You were mentioned once in #lobby since you left" in seen
        alice.send_line("/mentions")
        listed = alice.read_until(b"*** End of mentions\r\n").decode()
        assert "<bob> alice: see you at lunch?" in listed
        alice.send_line("/quit")
        alice.read_until(b"*** Bye!\r\n")
        again = come_back(port, "alice")
        again.read_until(b"*** Hello alice!")
        again.send_line("/history 2")
        shown = again.read_until(b"*** End of history\r\n").decode()
        assert "while you were away" not in shown  # the note was given once
        assert "<bob> alice: see you at lunch?" in shown
    finally:
        server.stop()


def come_back(port, nick):
    """A client that logs in as registered `nick` with its password."""
    user = LineClient(port)
    user.read_lines(2)
    user.send_line(nick)
    assert user.read_line() == f"*** {nick} is registered; password:"
    user.send_line(PASSWORD)
    return user


def text(data):
    """What a client that speaks no telnet read, less the IAC WILL ECHO of the password prompt."""
    return data.replace(b"\xff\xfb\x01", b"").decode()


def test_wrong_passwords_from_one_address_are_throttled(chatd):
    """
    Past FAILURES_PER_ADDRESS wrong passwords a minute from one address
    (over several connections, three tries each), that address's next try
    is told to wait, even with the right password; another address is not.
    """
    register(chatd, "alice")
    answers = []
    while not answers or "wait" not in answers[-1]:
        guess = LineClient(chatd)
        guess.read_lines(2)
        guess.send_line("alice")
        for _ in range(3):
            guess.read_until(b"password:\r\n")
            guess.send_line("a wrong guess")
            answers.append(text(guess.read_until(b"\r\n")).strip())
            if "wait" in answers[-1]:
                break
        else:
            guess.read_until_closed()
    wrong = [answer for answer in answers if answer.startswith("*** Error: wrong password")]
    assert len(wrong) == FAILURES_PER_ADDRESS and len(answers) == FAILURES_PER_ADDRESS + 1
    assert answers[-1].startswith("*** Error: too many wrong passwords from 127.0.0.1: wait ")
    guess.read_until(b"password:\r\n")
    guess.send_line(PASSWORD)  # the right one: still told to wait
    assert b"too many wrong passwords from 127.0.0.1" in guess.read_until(b" s\r\n")
    elsewhere = LineClient(chatd, source="127.0.0.2")
    elsewhere.read_lines(2)
    elsewhere.send_line("alice")
    elsewhere.read_until(b"password:\r\n")
    elsewhere.send_line(PASSWORD)
    elsewhere.read_until(b"*** Hello alice! Type /help for commands.\r\n")
