"""
End to end: channels as a telnet or nc user meets them, against the real
`twistd -n chatd`, with every format docs/using.md documents.  Readiness
comes from the server's log or from the lines themselves, never a sleep.
"""

import json

import pytest
from tests.chatd_process import ChatdProcess, LineClient

SUMMARY_WAIT_SECONDS = 15  # the server sums up every 5 s


def start(tmp_path, *args):
    port_file = tmp_path / "port"
    if port_file.exists():
        port_file.unlink()
    server = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--port-file", str(port_file), "--name", "lab",
                          "--no-echo", *args, cwd=tmp_path)
    server.wait_for_log("chat room listening on")
    return server, int(port_file.read_text())


@pytest.fixture
def chat(tmp_path):
    """A running chatd; yields a function that logs a new user in."""
    server, port = start(tmp_path, "--quiet-joins", "3")
    clients = []

    def user(nick):
        client = LineClient(port).login(nick)
        clients.append(client)
        return client

    yield user
    for client in clients:
        client.close()
    server.stop()


def test_join_talk_and_part_across_channels(chat):
    """docs/using.md's walk through channels, line by line, for three users."""
    alice, bob, carol = chat("alice"), chat("bob"), chat("carol")
    alice.read_lines(2)  # bob and carol joined
    bob.read_line()
    alice.send_line("/join lab")
    assert alice.read_line() == "*** You joined #lab (1 user)"
    bob.send_line("/JOIN #Lab")
    assert bob.read_line() == "*** You joined #lab (2 users)"
    assert alice.read_line() == "*** bob has joined (2 users)"

    alice.send_line("soldering tonight?")  # to #lab, alice's current channel
    assert bob.read_line() == "<alice> soldering tonight?"
    carol.send_line("anyone in the lobby?")
    assert alice.read_line() == "[#lobby] <carol> anyone in the lobby?"
    assert bob.read_line() == "[#lobby] <carol> anyone in the lobby?"
    alice.send_line("/msg #lobby yes, me")  # without leaving #lab
    assert carol.read_line() == "<alice> yes, me"
    assert bob.read_line() == "[#lobby] <alice> yes, me"
    alice.send_line("still here")
    assert bob.read_line() == "<alice> still here"

    carol.send_line("/join #lab")
    assert carol.read_line() == "*** You joined #lab (3 users)"
    assert carol.read_line() == "*** Recent messages:"
    assert carol.read_line().endswith("] <alice> soldering tonight?")
    assert carol.read_line().endswith("] <alice> still here")
    assert carol.read_line() == "*** End of recent messages"
    assert alice.read_line() == "*** carol has joined (3 users)"
    assert bob.read_line() == "*** carol has joined (3 users)"

    bob.send_line("/part #lab off to eat")
    assert bob.read_line() == "*** You left #lab; now talking in #lobby"
    assert alice.read_line() == "*** bob has left #lab (off to eat)"
    assert carol.read_line() == "*** bob has left #lab (off to eat)"
    bob.send_line("back in the lobby")
    assert alice.read_line() == "[#lobby] <bob> back in the lobby"
    assert carol.read_line() == "[#lobby] <bob> back in the lobby"

    bob.send_line("/part")
    assert bob.read_line() == "*** You left #lobby; you are in no channel now (/join one)"
    bob.send_line("hello?")
    assert bob.read_line() == "*** Error: you are in no channel; /join a channel first"
    assert alice.read_line() == "*** bob has left #lobby"  # it names the channel already
    bob.send_line("/msg alice psst")  # private messages need no channel
    assert alice.read_line() == "*bob* psst"
    assert bob.read_line() == "-> *alice* psst"


def test_topics_channel_lists_and_members(chat):
    """Topics, the channel list and a channel's members, as telnet users read them."""
    alice, bob = chat("alice"), chat("bob")
    alice.read_line()
    alice.send_line("/join lab")
    alice.read_line()
    alice.send_line("/topic")
    assert alice.read_line() == "*** #lab has no topic"
    alice.send_line("/topic Soldering at 18:00")
    assert alice.read_line() == "*** alice set the topic of #lab: Soldering at 18:00"
    bob.send_line("/join LAB")
    assert bob.read_lines(2) == ["*** You joined #lab (2 users)", "*** Topic of #lab: Soldering at 18:00"]
    assert alice.read_line() == "*** bob has joined (2 users)"
    bob.send_line("/channels")
    assert bob.read_lines(2) == ["*** 2 channels: #lobby (2), #lab (2)", "*** #lab: Soldering at 18:00"]
    bob.send_line("/rooms")
    assert bob.read_line() == "*** 2 channels: #lobby (2), #lab (2)"
    bob.read_line()
    bob.send_line("/list #lab")
    assert bob.read_line() == "*** 2 users in #lab: @alice, bob"  # alice made it: its operator
    bob.send_line("/list")  # everyone online, as before channels
    assert bob.read_line() == "*** 2 users online: alice, bob"
    bob.send_line("/topic -")  # new channels are +t: the topic is their operators'
    assert bob.read_line() == "*** Error: you are not an operator of #lab"
    alice.send_line("/mode -t")
    assert alice.read_line() == "*** alice sets mode -t on #lab"
    assert bob.read_line() == "*** alice sets mode -t on #lab"
    bob.send_line("/topic -")
    assert bob.read_line() == "*** bob cleared the topic of #lab"
    assert alice.read_line() == "*** bob cleared the topic of #lab"


def test_a_join_in_another_of_your_channels_carries_its_name_and_joining_again_switches(chat):
    """alice talks in #lobby and is in #lab: carol joining #lab reads [#lab] ...; /join #lab again makes it current."""
    alice, carol = chat("alice"), chat("carol")
    alice.read_line()  # carol joined
    alice.send_line("/join lab")
    alice.read_line()
    alice.send_line("/join #lobby")
    assert alice.read_line() == "*** Now talking in #lobby"
    carol.send_line("/join lab")
    assert carol.read_line() == "*** You joined #lab (2 users)"
    assert alice.read_line() == "[#lab] *** carol has joined (2 users)"
    carol.send_line("/me waves")
    assert alice.read_line() == "[#lab] * carol waves"
    alice.send_line("/JOIN LAB")
    assert alice.read_line() == "*** Now talking in #lab"
    carol.send_line("hi")
    assert alice.read_line() == "<carol> hi"


def test_channel_refusals_are_one_clear_line(chat):
    """Every channel refusal is one *** Error line, with this door's syntax where it names a command."""
    alice = chat("alice")
    for line, answer in [
        ("/join #no!way", "*** Error: channel name may not contain '!': use # then letters, digits and -_."),
        ("/join", "*** Error: usage: /join NAME [KEY]"),
        ("/part #nowhere", "*** Error: no such channel: #nowhere"),
        ("/list #nowhere", "*** Error: no such channel: #nowhere"),
        ("/msg #nowhere hi", "*** Error: no such channel: #nowhere"),
    ]:
        alice.send_line(line)
        assert alice.read_line() == answer, line
    alice.send_line("/join #lab")
    alice.read_line()
    alice.send_line("/join #1ab")  # digit one for the letter l
    assert alice.read_line() == "*** Error: channel name is taken: #1ab (it looks like #lab)"


def test_a_big_channel_sums_up_joins_and_leaves(chat):
    """Above --quiet-joins 3: no line per join or leave, one summary line a few seconds later."""
    first = [chat(nick) for nick in ("a1", "a2", "a3")]
    assert first[0].read_lines(2) == ["*** a2 has joined (2 users online)", "*** a3 has joined (3 users online)"]
    later = [chat(nick) for nick in ("b1", "b2")]
    later[1].send_line("/quit")
    assert later[1].read_line() == "*** Bye!"
    first[0].sock.settimeout(SUMMARY_WAIT_SECONDS)
    assert first[0].read_line() == "*** 2 joined, 1 left #lobby (4 users)"
    first[0].send_line("still one channel")
    assert later[0].read_line() == "*** 2 joined, 1 left #lobby (4 users)"
    assert later[0].read_line() == "<a1> still one channel"


def test_history_of_each_channel_survives_a_restart(tmp_path):
    """With --transcript, a restarted chatd shows each channel's own recent messages; the lines carry the channel."""
    transcript = tmp_path / "chat.jsonl"
    server, port = start(tmp_path, "--transcript", str(transcript))
    alice = LineClient(port).login("alice")
    alice.send_line("lobby news")
    alice.send_line("/join #lab")
    alice.read_line()
    alice.send_line("lab news")
    alice.send_line("/quit")
    alice.read_line()
    alice.close()
    server.stop()
    channels = [json.loads(line).get("channel") for line in transcript.read_text().splitlines()]
    assert channels[:4] == ["#lobby", "#lobby", "#lab", "#lab"]

    server, port = start(tmp_path, "--transcript", str(transcript))
    try:
        bob = LineClient(port).login("bob")
        assert bob.read_line() == "*** Recent messages:"
        assert bob.read_line().endswith("] <alice> lobby news")
        assert bob.read_line() == "*** End of recent messages"
        bob.send_line("/join lab")
        assert bob.read_lines(2)[1] == "*** Recent messages:"
        assert bob.read_line().endswith("] <alice> lab news")
        bob.close()
    finally:
        server.stop()
