"""
End to end: the IRC front door of the real `twistd -n chatd`, with a raw
IRC client (a socket speaking IRC lines) and telnet-style clients in the
same channels.  Readiness comes from the log and the lines, never a sleep.
"""

import pytest
from tests.chatd_process import ChatdProcess, LineClient


@pytest.fixture
def chat(tmp_path):
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", cwd=tmp_path)
    clients = []
    try:
        server.wait_for_log("chat room listening on")
        irc_port = int(server.wait_for_log("IRC listening on").rsplit(":", 1)[1])

        class Chat:
            @staticmethod
            def telnet(nick):
                client = LineClient(int(port_file.read_text())).login(nick)
                clients.append(client)
                return client

            @staticmethod
            def irc_unregistered():
                client = LineClient(irc_port)
                clients.append(client)
                return client

            @staticmethod
            def irc(nick):
                client = Chat.irc_unregistered()
                client.send_line(f"NICK {nick}")
                client.send_line(f"USER {nick} 0 * :{nick}")
                while not client.read_line().endswith(" 366 %s #lobby :End of /NAMES list" % nick):
                    pass
                return client

        yield Chat
    finally:
        for client in clients:
            client.close()
        server.stop()


def test_irc_and_telnet_users_talk_both_ways_in_two_channels(chat):
    """
    An IRC client and a telnet user talk both ways, in the lobby (quiet for
    the IRC client: no JOIN of bob there) and in a channel.
    """
    alice = chat.irc("alice")
    bob = chat.telnet("bob")
    alice.send_line("PRIVMSG #lobby :hello from irc")
    assert bob.read_line() == "<alice> hello from irc"
    bob.send_line("hi from telnet, Алиса")
    assert alice.read_line() == ":bob!bob@chatd PRIVMSG #lobby :hi from telnet, Алиса"
    alice.send_line("JOIN #lab")
    assert alice.read_line() == ":alice!alice@chatd JOIN #lab"
    bob.send_line("/join lab")
    assert bob.read_line() == "*** You joined #lab (2 users)"
    lines = [alice.read_line() for _ in range(3)]
    assert lines[2] == ":bob!bob@chatd JOIN #lab"
    alice.send_line("PRIVMSG #lab :\x01ACTION waves\x01")
    assert bob.read_line() == "* alice waves"
    bob.send_line("/me waves back")
    assert alice.read_line() == ":bob!bob@chatd PRIVMSG #lab :\x01ACTION waves back\x01"
    bob.send_line("/msg #lobby to the lobby")
    assert alice.read_line() == ":bob!bob@chatd PRIVMSG #lobby :to the lobby"
    alice.send_line("PRIVMSG bob :psst")
    assert bob.read_line() == "*alice* psst"
    alice.send_line("QUIT :off to bed")
    assert alice.read_line() == "ERROR :Closing Link: 127.0.0.1 (quit)"
    assert bob.read_line() == "*** alice has left (off to bed)"


def test_a_nickname_taken_on_telnet_is_taken_on_irc(chat):
    """A nickname a telnet user holds is refused to an IRC client with 433, in any case."""
    bob = chat.telnet("bob")
    carol = chat.irc_unregistered()
    carol.send_line("NICK BOB")
    carol.send_line("USER carol 0 * :Carol")
    assert carol.read_line() == ":lab 433 * BOB :nickname is taken: BOB"
    carol.send_line("NICK carol")
    assert carol.read_line().startswith(":lab 001 carol ")
    assert bob.read_line() == "*** carol has joined (2 users online)"


def test_an_irc_client_at_the_chat_port_is_served_as_irc(tmp_path):
    """Its first line (CAP, NICK, USER or PASS) comes before the greeting: the chat port answers in IRC."""
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", cwd=tmp_path)
    try:
        server.wait_for_log("IRC listening on")
        port = int(port_file.read_text())
        client = LineClient(port)
        client.send("CAP LS 302\r\nNICK alice\r\nUSER alice 0 * :Alice\r\n")
        assert client.read_line() == (":lab CAP * LS :account-notify account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join extended-monitor invite-notify labeled-response message-tags multi-prefix "
                                      "server-time setname userhost-in-names sasl=PLAIN")
        client.send_line("CAP END")
        assert client.read_line() == ":lab 001 alice :Welcome to chatd on lab, alice"
        bob = LineClient(port).login("bob")
        bob.send_line("hello irc")
        while (line := client.read_line()) != ":bob!bob@chatd PRIVMSG #lobby :hello irc":
            assert " PRIVMSG " not in line
        client.close()
        bob.close()
    finally:
        server.stop()


def test_irc_formatting_stays_for_irc_clients_and_goes_for_telnet(chat):
    """
    IRC's colour and bold codes reach IRC clients and are stripped for telnet users; escape sequences reach
    nobody.
    """
    alice = chat.irc("alice")
    carol = chat.irc("carol")
    bob = chat.telnet("bob")
    alice.send_line("PRIVMSG #lobby :\x02bold\x02 and \x0304,12red\x03 \x1b[31mno escape")
    assert carol.read_line() == ":alice!alice@chatd PRIVMSG #lobby :\x02bold\x02 and \x0304,12red\x03 no escape"
    assert bob.read_line() == "<alice> bold and red no escape"


def test_an_irc_operator_kicks_a_telnet_user(tmp_path):
    """An IRC client that is a server operator KILLs a telnet user, who is told and closed."""
    password = tmp_path / "oper"
    password.write_text("s3cret\n")
    port_file = tmp_path / "port"
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", "--no-web", "--oper-password-file", str(password), cwd=tmp_path)
    try:
        server.wait_for_log("chat room listening on")
        irc_port = int(server.wait_for_log("IRC listening on").rsplit(":", 1)[1])
        op = LineClient(irc_port)
        op.send("NICK op\r\nUSER op 0 * :Op\r\n")
        op.send_line("JOIN #ops")
        while not op.read_line().endswith(" 366 op #ops :End of /NAMES list"):
            pass
        mallory = LineClient(int(port_file.read_text())).login("mallory")
        mallory.send_line("/join #ops")  # where op sees her come and go (the lobby is quiet for IRC clients)
        assert op.read_line() == ":mallory!mallory@chatd JOIN #ops"
        assert mallory.read_line() == "*** You joined #ops (2 users)"
        op.send_line("OPER op s3cret")
        assert op.read_line() == ":lab 381 op :You are now an IRC operator"
        assert op.read_line() == ":op!op@chatd MODE op +o"
        op.send_line("KILL mallory :spamming")
        assert mallory.read_until_closed().decode().startswith("*** You were kicked by op (spamming)\r\n")
        assert op.read_line() == ":mallory!mallory@chatd QUIT :Kicked by op: spamming"
        server.wait_for_log("op kicked mallory")
        op.close()
    finally:
        server.stop()
