"""
The IRC clients people use, against the real `twistd -n chatd`, each
chatting with a telnet user and a web user: Debian's irssi (SASL, the
server-time and multi-prefix capabilities it asks for, a channel with a
key, /names, /whois), driven through a pseudo-terminal as a person types,
and WeeChat (weechat-headless), driven through its FIFO as its scripts are,
whose logs say what it showed.
"""

from __future__ import annotations

import re
import shutil
import time

import pexpect
import pytest

from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient, WebClient
from tests.e2e.test_irssi import irssi_with_sasl


@pytest.fixture
def server(tmp_path):
    port_file = tmp_path / "port"
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file),
                           "--name", "lab", "--no-echo", "--state-dir", str(tmp_path / "state"), cwd=tmp_path)
    try:
        process.wait_for_log("chat room listening on")
        irc_port = int(process.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        web_port = int(process.wait_for_log("web page listening on").rsplit(":", 1)[1])
        yield process, int(port_file.read_text()), irc_port, web_port
    finally:
        process.stop()


# What irssi draws between the words of a line: colours and cursor moves.
ANSI = r"(?:\x1b\[[0-9;?]*[A-Za-z]|\x1b\(B|\s)*"


def web_lines(web, count):
    """The next `count` messages and actions the web user is sent, as (nick, text)."""
    found = []
    while len(found) < count:
        for event in web.events():
            if event[0] in ("said", "acted"):
                found.append((event[3], event[4]))
    return found


def test_irssi_with_sasl_server_time_prefixes_a_key_names_and_whois(server, tmp_path):
    """
    alice registered; Debian's irssi logs in as her with SASL, joins bob's
    keyed #lab with its key, shows its history at the time it was said
    (server-time), bob as @ in /names, what /whois says of him, and chats
    with bob on telnet and carol on the web page.
    """
    process, port, irc_port, web_port = server
    alice = LineClient(port).login("alice")
    alice.send_line("/register tea and biscuits")
    alice.read_until(b"is registered to you now")
    alice.close()
    process.wait_for_log("alice left")
    bob = LineClient(port).login("bob")
    bob.send_line("/join #lab")
    bob.send_line("/mode +k solder")
    bob.read_until(b"*** bob sets mode +k solder on #lab\r\n")
    before = time.time()
    bob.send_line("the iron is hot")
    carol = WebClient(web_port).login("carol")
    carol.send_json({"type": "join", "channel": "#lab", "key": "solder"})
    carol.receive_until("channel-joined")  # after bob's line: the server has stamped it by now
    said_at = "|".join(time.strftime("%H:%M:%S", time.localtime(second))  # the second it was said, to the test
                       for second in range(int(before), int(time.time()) + 1))
    time.sleep(2.1)  # so that a line shown at the time it was said differs from one shown now
    irssi = irssi_with_sasl(tmp_path, irc_port, "alice", "tea and biscuits")
    try:
        process.wait_for_log("alice joined (3 online)")  # as alice, not a guest: SASL took her password
        irssi.send("/set timestamp_format %H:%M:%S\r")  # seconds: a line said 2 s ago shows another time
        irssi.send("/set show_server_time on\r")  # irssi's setting for server-time's times
        irssi.send("/join #lab solder\r")
        irssi.expect(f"(?:{said_at})" + ANSI + r"[^\n]{0,80}bob" + ANSI + r"[^\n]{0,20}the iron is hot")  # server-time
        irssi.send("/names\r")
        irssi.expect(r"\[" + ANSI + "@" + ANSI + "bob" + ANSI + r"\]")  # the nick list's op
        irssi.send("/window 1\r")  # irssi shows what WHOIS says in its status window
        irssi.send("/whois bob\r")
        irssi.expect("bob" + ANSI + r"\[" + ANSI + "bob@chatd" + ANSI + r"\]")
        irssi.expect("channels" + ANSI + r":[^\n]{0,200}@" + ANSI + "#lab")
        irssi.send("/window goto #lab\r")
        irssi.send("hello from irssi\r")
        assert bob.read_until(b"<alice> hello from irssi\r\n")
        assert web_lines(carol, 1) == [("alice", "hello from irssi")]
        bob.send_line("/op alice")
        irssi.expect(r"\+o alice" + ANSI + r"\]" + ANSI + "by" + ANSI + "bob")
        carol.send_json({"type": "say", "text": "hi from the web", "channel": "#lab"})
        irssi.expect_exact("hi from the web")
        irssi.send("/quit\r")
        irssi.expect(pexpect.EOF)
    finally:
        irssi.close(force=True)
        bob.close()
        carol.close()


def test_weechat_chats_with_telnet_and_web_users_and_sees_ranks(server, tmp_path):
    """
    weechat-headless, told what to do through its FIFO, connects, joins
    #lab (whose maker, bob, it lists as @), chats with bob on telnet and
    carol on the web page, and a NOTICE it sends arrives as a notice.
    """
    process, port, irc_port, web_port = server
    weechat_path = shutil.which("weechat-headless")
    if weechat_path is None:
        pytest.fail("weechat-headless is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    bob = LineClient(port).login("bob")
    bob.send_line("/join #lab")
    carol = WebClient(web_port).login("carol")
    carol.send_json({"type": "join", "channel": "#lab"})
    home, fifo, logs = tmp_path / "weechat", tmp_path / "weechat.fifo", tmp_path / "logs"
    commands = ";".join([
        f"/set fifo.file.path {fifo}", "/set logger.file.flush_delay 0", f"/set logger.file.path {logs}",
        "/set logger.file.mask $plugin.$name.weechatlog",
        f"/server add lab 127.0.0.1/{irc_port} -notls -nicks=dave -username=dave -realname=Dave",
        "/set irc.server.lab.autojoin #lab", "/connect lab"])
    weechat = pexpect.spawn(weechat_path, ["--dir", str(home), "--run-command", commands],
                            timeout=TIMEOUT_SECONDS, encoding="utf-8", env={"TERM": "xterm", "HOME": str(tmp_path)})
    try:
        process.wait_for_log("dave joined #lab")
        channel_log = logs / "irc.lab.#lab.weechatlog"
        bob.send_line("hello weechat")
        wait_for(lambda: "hello weechat" in read(channel_log))
        assert re.search(r"Channel #lab: \d nicks \(1 op", read(channel_log))  # its summary of the names on joining
        assert "@bob" in names_of(fifo, channel_log)
        with open(fifo, "w") as pipe:
            pipe.write("irc.lab.#lab *hello from weechat\n")
        assert bob.read_until(b"<dave> hello from weechat\r\n")
        assert web_lines(carol, 2)[-1] == ("dave", "hello from weechat")
        with open(fifo, "w") as pipe:
            pipe.write("irc.lab.#lab */notice #lab build passed\n")
        assert bob.read_until(b"-dave- build passed\r\n")
        carol.send_json({"type": "say", "text": "hi weechat", "channel": "#lab"})
        wait_for(lambda: "hi weechat" in read(channel_log))
        with open(fifo, "w") as pipe:
            pipe.write("*/quit\n")
        weechat.expect(pexpect.EOF)
    finally:
        weechat.close(force=True)
        bob.close()
        carol.close()


def read(path):
    return path.read_text(errors="replace") if path.exists() else ""


def names_of(fifo, channel_log):
    """What /names shows in the channel's buffer (and so its log)."""
    with open(fifo, "w") as pipe:
        pipe.write("irc.lab.#lab */names\n")
    wait_for(lambda: "Channel #lab:" in read(channel_log))
    return read(channel_log)


def wait_for(condition, seconds=TIMEOUT_SECONDS):
    """Poll `condition` (a file another program writes, which sends no signal) until it holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)
