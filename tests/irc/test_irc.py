"""The IRC front door in memory (chatd.irc): registration, commands and numerics, and events as IRC lines."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from chatd.core.events import Crowd, Said
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.turn import Turn
from chatd.irc import render
from chatd.irc.protocol import PING_INTERVAL_SECONDS, IrcDoor
from chatd.net.door import Settings


class Client:
    """One IRC client in memory: lines in, lines out."""

    def __init__(self, factory, port):
        self.factory = factory
        peer = IPv4Address("TCP", f"127.0.0.{port % 250 + 1}", port)  # the transport's peer, as in Twisted
        self.session = factory.buildProtocol(peer)
        self.transport = StringTransport(hostAddress=IPv4Address("TCP", "10.0.0.1", 6667), peerAddress=peer)
        self.session.makeConnection(self.transport)

    def send(self, *lines: str) -> None:
        self.session.dataReceived("".join(line + "\r\n" for line in lines).encode())

    def take(self) -> list[str]:
        self.factory.flusher.flush()
        data = self.transport.value()
        self.transport.clear()
        return data.decode().split("\r\n")[:-1]

    def register(self, nick: str, *capabilities: str) -> list[str]:
        """NICK and USER (after CAP REQ of these capabilities, if any); what the server answered."""
        if capabilities:
            self.send("CAP LS 302", f"CAP REQ :{' '.join(capabilities)}")
        self.send(f"NICK {nick}", f"USER {nick} 0 * :{nick} the tester", *(["CAP END"] if capabilities else []))
        return self.take()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def factory(clock):
    return IrcDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab"), clock)


def join_all(channel, *clients):
    """Each client joins `channel`, in turn; what they were told until then is read and left."""
    for client in clients:
        client.send(f"JOIN {channel}")
    for client in clients:
        client.take()


def codes(lines):
    return [line.split()[1] for line in lines]


def test_a_session_is_a_session(factory):
    """The door's connection is a real ISession."""
    assert verifyObject(ISession, Client(factory, 1).session)


def test_registration_with_cap_waits_for_cap_end_then_welcomes_and_joins_the_lobby(factory):
    """
    CAP LS holds registration until CAP END; a REQ is all or nothing (an
    unknown capability NAKs it), LIST lists what is on; then the welcome
    numerics and the lobby's JOIN.
    """
    alice = Client(factory, 1)
    alice.send("CAP LS 302", "PASS ignored", "NICK alice", "USER alice 0 * :Alice A")
    assert alice.take() == [":lab CAP * LS :account-notify account-tag away-notify batch draft/chathistory draft/read-marker echo-message extended-join extended-monitor invite-notify labeled-response message-tags multi-prefix server-time setname userhost-in-names"]
    alice.send("CAP REQ :multi-prefix frobnicate", "CAP REQ :multi-prefix server-time", "CAP REQ -server-time",
               "CAP LIST")
    assert alice.take() == [":lab CAP * NAK :multi-prefix frobnicate", "@time=1970-01-01T00:00:00.000Z :lab CAP * ACK :multi-prefix server-time",
                            ":lab CAP * ACK -server-time", ":lab CAP * LIST multi-prefix"]
    alice.send("CAP END")
    lines = alice.take()
    assert codes(lines) == ["001", "002", "003", "004", "005", "005", "251", "254", "255", "265", "266", "422", "JOIN",
                            "353", "366"]
    assert lines[0] == ":lab 001 alice :Welcome to chatd on lab, alice"
    isupport = lines[4].split() + lines[5].split()
    assert all(len(line.split(" :")[0].split()) <= 3 + 13 for line in lines[4:6])  # at most 13 tokens a line
    for token in ("CASEMAPPING=ascii", "CHANTYPES=#", "NICKLEN=24", "CHANNELLEN=33", "NETWORK=lab"):
        assert token in isupport
    assert any(token.startswith("PREFIX=") for token in isupport)
    assert lines[12:] == [":alice!alice@chatd JOIN #lobby", ":lab 353 alice = #lobby :alice",
                          ":lab 366 alice #lobby :End of /NAMES list"]


def test_commands_before_registration_get_451_and_a_taken_nick_433(factory):
    """Commands before registration get 451, and a taken nickname 433."""
    alice = Client(factory, 1)
    alice.register("alice")
    bob = Client(factory, 2)
    bob.send("JOIN #lab")
    assert bob.take() == [":lab 451 * :You have not registered"]
    assert bob.register("ALICE") == [":lab 433 * ALICE :nickname is taken: ALICE"]
    bob.send("NICK aIice")
    assert bob.take() == [":lab 433 * aIice :nickname is taken: aIice (it looks like alice)"]
    bob.send("NICK b@d")
    assert codes(bob.take()) == ["432"]
    bob.send("NICK bob")
    assert codes(bob.take())[0] == "001"


def test_messages_actions_and_private_messages_both_ways(factory):
    """PRIVMSG, CTCP ACTION, private messages and NOTICE reach the others as IRC lines."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    assert alice.take() == []  # the lobby is quiet for IRC clients: no JOIN
    bob.send("PRIVMSG #lobby :hi all", "PRIVMSG #lobby :\x01ACTION waves\x01", "PRIVMSG alice :psst",
             "NOTICE #lobby :a notice")
    assert alice.take() == [":bob!bob@chatd PRIVMSG #lobby :hi all", ":bob!bob@chatd PRIVMSG #lobby :\x01ACTION waves\x01",
                            ":bob!bob@chatd PRIVMSG alice :psst", ":bob!bob@chatd NOTICE #lobby :a notice"]
    assert bob.take() == []  # IRC clients show what they send themselves
    alice.send("JOIN #alices")
    bob.send("PRIVMSG nobody :hello", "PRIVMSG #lab :hello", "PRIVMSG #alices :hello", "PRIVMSG", "PRIVMSG alice",
             "NAMES #lab")
    assert bob.take() == [":lab 401 bob nobody :no such nick: nobody", ":lab 403 bob #lab :no such channel: #lab",
                          ":lab 404 bob #alices :Cannot send to channel",
                          ":lab 411 bob :No recipient given (PRIVMSG)", ":lab 412 bob :No text to send",
                          ":lab 366 bob #lab :End of /NAMES list"]


def test_join_part_and_join_0(factory):
    """JOIN of several channels, PART, and JOIN 0 (part every channel)."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    alice.take()
    bob.send("JOIN #a,#b")
    assert codes(bob.take()) == ["JOIN", "353", "366", "JOIN", "353", "366"]
    alice.send("JOIN #a")
    assert alice.take() == [":alice!alice@chatd JOIN #a", ":lab 353 alice = #a :@bob alice",
                            ":lab 366 alice #a :End of /NAMES list"]
    assert bob.take() == [":alice!alice@chatd JOIN #a"]
    bob.send("PART #a :lunch")
    assert bob.take() == [":bob!bob@chatd PART #a :lunch"]  # the reason in the leaver's own PART too
    assert alice.take() == [":bob!bob@chatd PART #a :lunch"]
    bob.send("JOIN 0")
    assert bob.take() == [":bob!bob@chatd PART #lobby", ":bob!bob@chatd PART #b"]
    assert alice.take() == []  # a PART of the quiet lobby


def test_topic_names_list_who_whois_mode_away_and_unknown(factory):
    """TOPIC, NAMES, LIST, WHO, WHOIS, MODE, AWAY and an unknown command, each with its numerics."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("TOPIC #lobby")
    assert alice.take() == [":lab 331 alice #lobby :No topic is set"]
    alice.send("TOPIC #lobby :soldering tonight")
    assert alice.take() == [":alice!alice@chatd TOPIC #lobby :soldering tonight"]
    alice.send("TOPIC #lobby", "NAMES #lobby", "LIST", "WHO #lobby", "WHOIS ALICE", "MODE #lobby", "MODE alice",
               "MODE #lobby b", "AWAY :lunch", "AWAY", "FROB x")
    assert alice.take() == [
        ":lab 332 alice #lobby :soldering tonight", ":lab 333 alice #lobby alice!alice@chatd 0",
        ":lab 353 alice = #lobby :alice", ":lab 366 alice #lobby :End of /NAMES list",
        ":lab 321 alice Channel :Users  Name", ":lab 322 alice #lobby 1 :soldering tonight", ":lab 323 alice :End of /LIST",
        ":lab 352 alice #lobby alice chatd lab alice H :0 alice the tester", ":lab 315 alice #lobby :End of /WHO list",
        ":lab 311 alice alice alice chatd * :alice the tester",  # no 319: the lobby, where everyone is, is not named
        ":lab 312 alice alice lab chatd", ":lab 317 alice alice 0 0 :seconds idle, signon time",
        ":lab 318 alice alice :End of /WHOIS list",
        ":lab 324 alice #lobby +n", ":lab 329 alice #lobby 0", ":lab 221 alice +i",
        ":lab 368 alice #lobby :End of channel ban list",
        ":lab 306 alice :You have been marked as being away", ":lab 305 alice :You are no longer marked as being away",
        ":lab 421 alice FROB :Unknown command",
    ]


def test_ping_pong_and_a_silent_client_is_pinged_then_dropped(factory, clock):
    """PING is answered; a silent client is pinged, and one that stays silent is dropped with 'Ping timeout'."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    alice.send("JOIN #lab")
    bob.send("JOIN #lab")  # where bob sees alice go
    alice.take(), bob.take()
    alice.send("PING :abc")
    assert alice.take() == [":lab PONG lab abc"]
    clock.advance(PING_INTERVAL_SECONDS)  # both spoke: no ping
    assert alice.take() == [] and bob.take() == []
    clock.advance(PING_INTERVAL_SECONDS)
    assert bob.take() == ["PING :lab"]
    assert alice.take() == ["PING :lab"]
    bob.send("PONG :lab")
    clock.advance(PING_INTERVAL_SECONDS)
    assert alice.take() == ["ERROR :Closing Link: 127.0.0.2 (Ping timeout)"]
    assert bob.take() == [":alice!alice@chatd QUIT :Ping timeout"]


def test_a_line_over_512_bytes_gets_417_and_the_next_line_goes_through(factory):
    """A line over 512 bytes, ended or not, gets 417 once and the next line is read as usual."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("PRIVMSG #lobby :" + "x" * 600)
    alice.session.dataReceived(b"PRIVMSG #lobby :" + b"y" * 600)  # not even ended yet
    alice.send(" still the long one", "PING :after")
    assert alice.take() == [":lab 417 alice :Input line was too long", ":lab 417 alice :Input line was too long",
                            ":lab PONG lab after"]


def test_the_lines_of_one_read_are_answered_in_order_around_a_line_too_long(factory):
    """One read of a line, a line over 512 bytes and a line: the answers come in the order of the lines."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("PING :before", "PRIVMSG #lobby :" + "x" * 600, "PING :after")
    assert alice.take() == [":lab PONG lab before", ":lab 417 alice :Input line was too long", ":lab PONG lab after"]


def test_a_line_that_is_not_utf8_is_read_as_latin1(factory):
    """A line that is not UTF-8 is read as latin-1, as IRC servers commonly do."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    alice.take()
    bob.session.dataReceived("PRIVMSG #lobby :caf\xe9\r\n".encode("latin-1"))
    assert alice.take() == [":bob!bob@chatd PRIVMSG #lobby :café"]


def test_quit_says_error_and_the_others_see_quit(factory):
    """QUIT closes with ERROR, and those who share a channel see the QUIT with its reason."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    alice.send("JOIN #lab")
    bob.send("JOIN #lab")
    alice.take(), bob.take()
    bob.send("QUIT :bye now")
    assert bob.take() == ["ERROR :Closing Link: 127.0.0.3 (quit)"]
    assert bob.transport.disconnecting
    assert alice.take() == [":bob!bob@chatd QUIT :bye now"]
    bob.session.connectionLost(Failure(ConnectionDone()))


def test_shutdown_is_a_notice_then_error(factory):
    """At shutdown an IRC client reads a NOTICE, then ERROR."""
    alice = Client(factory, 1)
    alice.register("alice")
    factory.shut_down(5)
    assert alice.take() == [":lab NOTICE alice :Server shutting down",
                            "ERROR :Closing Link: 127.0.0.2 (server shutting down)"]


def test_events_as_irc_lines():
    """
    Events as IRC lines: a crowd summary as PARTs and JOINs; a long message
    split into lines each of what a client may send (512 bytes without the
    prefix); the longest a client sends, relayed whole on one line.
    """
    assert render.event(Crowd("#big", 2, 1, 60, ("carol", "dan"), ("bob",))) == [
        ":bob!bob@chatd PART #big", ":carol!carol@chatd JOIN #big", ":dan!dan@chatd JOIN #big"]
    long = render.event(Said("#lobby", "alice", "é" * 400))
    assert len(long) == 2 and all(len((line.split(" ", 1)[1] + "\r\n").encode()) <= 512 for line in long)
    assert "".join(line.split(" :", 1)[1] for line in long) == "é" * 400
    longest = "a" * (510 - len("PRIVMSG #lobby :"))
    assert render.event(Said("#lobby", "alice", longest)) == [f":alice!alice@chatd PRIVMSG #lobby :{longest}"]


def test_history_on_join_is_notices_from_the_server(clock):
    """A joiner's history comes as NOTICEs from the server after the names."""
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock), history_size=5), Settings("lab"), clock)
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("PRIVMSG #lobby :before bob", "PRIVMSG #lobby :\x01ACTION waves\x01")
    lines = Client(factory, 2).register("bob")
    assert lines[-3:] == [":lab 366 bob #lobby :End of /NAMES list", ":lab NOTICE #lobby :<alice> before bob",
                          ":lab NOTICE #lobby :* alice waves"]


def test_an_operator_kicks_and_the_kicked_user_is_told_then_closed(clock):
    """A server operator's KILL tells the user, closes them; a non-operator gets 481 (and 482 for a channel's KICK)."""
    from chatd.core.moderation import Moderation

    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock), moderation=Moderation("s3cret", clock)), Settings("lab"), clock)
    op, bob = Client(factory, 1), Client(factory, 2)
    op.register("op")
    bob.register("bob")
    op.send("JOIN #ops")
    bob.send("JOIN #ops")  # where op sees bob go
    op.take(), bob.take()
    op.send("KILL bob :spam", "KICK #lobby bob :spam")
    assert op.take() == [":lab 481 op :you are not an operator",
                         ":lab 482 op #lobby :you are not an operator of #lobby"]
    op.send("OPER op wrong")
    assert op.take() == [":lab 464 op :wrong password"]
    clock.advance(120)  # past the wait after a wrong password
    op.send("OPER op s3cret")
    assert op.take() == [":lab 381 op :You are now an IRC operator", ":op!op@chatd MODE op +o"]
    op.send("KILL bob :spam")
    assert bob.take() == [":lab NOTICE bob :You were kicked by op (spam)",
                          "ERROR :Closing Link: 127.0.0.3 (Kicked by op: spam)"]
    assert op.take() == [":bob!bob@chatd QUIT :Kicked by op: spam"]


def test_a_joiner_gets_the_topic_with_who_set_it_and_when(factory, clock):
    """A joiner gets 332 and 333: the topic, who set it and when."""
    clock.advance(1795000000)
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("JOIN #lab", "TOPIC #lab :solder")
    bob = Client(factory, 2)
    bob.register("bob")
    bob.send("JOIN #lab")
    assert bob.take()[:3] == [":bob!bob@chatd JOIN #lab", ":lab 332 bob #lab :solder",
                              ":lab 333 bob #lab alice!alice@chatd 1795000000"]


def test_the_rest_of_the_numerics(factory, clock):
    """CAP's other subcommands, USER again and JOIN without a channel, each with its numeric; NOTICE to nobody gets none."""
    alice = Client(factory, 1)
    alice.send("CAP LIST", "CAP FROB")
    assert alice.take() == [":lab CAP * LIST :", ":lab 410 * FROB :Invalid CAP command"]
    alice.send("CAP END")
    alice.register("alice")
    alice.send("USER again 0 * :Again", "JOIN", "NOTICE nobody :x", "NOTICE #nowhere :x", "NOTICE", "PRIVMSG nobody :x")
    assert alice.take() == [":lab 462 alice :You may not reregister", ":lab 461 alice JOIN :Not enough parameters",
                            ":lab 401 alice nobody :no such nick: nobody"]  # PRIVMSG's 401; nothing for a NOTICE


def test_login_and_idle_timeouts_end_with_error(clock):
    """No registration in time, or no input for --idle-timeout, ends with ERROR and the others see why."""
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", login_timeout_seconds=10, idle_timeout_seconds=30),
                         clock)
    lazy, alice, bob = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    alice.register("alice")
    bob.register("bob")
    alice.send("JOIN #lab")
    bob.send("JOIN #lab")
    bob.take()
    clock.advance(10)
    assert lazy.take() == ["ERROR :Closing Link: 127.0.0.2 (no nickname chosen within 10 s)"]
    bob.send("PRIVMSG #lobby :still here")
    alice.take()
    clock.advance(20)
    assert alice.take() == ["ERROR :Closing Link: 127.0.0.3 (Idle timeout)"]
    assert bob.take() == [":alice!alice@chatd QUIT :Idle timeout"]


def test_a_banned_address_is_refused_with_error(clock):
    """A banned address is refused with ERROR before anything else."""
    from chatd.core.moderation import Moderation

    moderation = Moderation("s3cret", clock)
    moderation.ban("127.0.0.2", 0)
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock), moderation=moderation), Settings("lab"), clock)
    banned = Client(factory, 1)
    assert banned.transport.value() == b"ERROR :Closing Link: 127.0.0.2 (you are banned from this server)\r\n"
    assert banned.transport.disconnecting


def test_ison_and_userhost_answer_who_is_online(factory):
    """ISON (303) and USERHOST (302): the nicknames online, as their users have them; '-' for one's own away."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("Bob")
    alice.send("AWAY :lunch")
    alice.take()
    alice.send("ISON bob carol ALICE", "USERHOST bob alice carol")
    assert alice.take() == [":lab 303 alice :Bob alice", ":lab 302 alice :Bob=+Bob@chatd alice=-alice@chatd"]


def test_list_with_channels_lists_only_those(factory):
    """LIST #a,#b: 321, a 322 for each of those that exist, 323; LIST alone is every channel."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("JOIN #lab", "TOPIC #lab :solder")
    alice.take()
    alice.send("LIST #lab,#nope")
    assert alice.take() == [":lab 321 alice Channel :Users  Name", ":lab 322 alice #lab 1 :solder",
                            ":lab 323 alice :End of /LIST"]


def test_time_version_info_and_motd_are_answered(factory):
    """TIME (391), VERSION (351, 005), INFO (371, 374), MOTD (422), LUSERS: no 421 for what clients ask at connect."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("TIME", "VERSION", "INFO", "MOTD", "LUSERS")
    lines = alice.take()
    assert codes(lines) == ["391", "351", "005", "005", "371", "371", "374", "422", "251", "254", "255", "265", "266"]
    assert lines[-5:] == [":lab 251 alice :There are 1 users and 0 invisible on 1 servers",
                          ":lab 254 alice 1 :channels formed", ":lab 255 alice :I have 1 clients and 0 servers",
                          ":lab 265 alice 1 1 :Current local users 1, max 1",
                          ":lab 266 alice 1 1 :Current global users 1, max 1"]


def test_a_notice_reaches_its_channel_and_is_never_answered_with_an_error(factory):
    """
    A NOTICE to a channel arrives as a NOTICE, and one to a nick too (what
    bots rely on); one to a channel one is not in gets no 442 back (RFC 2812
    3.3.2), and a notice to someone away gets no 301.
    """
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.register("bob")
    alice.send("JOIN #lab")
    alice.take()
    bob.take()
    bob.send("AWAY :out")
    bob.take()
    alice.send("NOTICE #lobby :hello all", "NOTICE #lab,#elsewhere :only some", "NOTICE bob :bot here")
    assert alice.take() == []
    assert bob.take() == [":alice!alice@chatd NOTICE #lobby :hello all", ":alice!alice@chatd NOTICE bob :bot here"]


def test_channel_operators_modes_kick_and_invite_as_irc_clients_see_them(factory, clock):
    """
    The maker of a channel is @ in NAMES and WHO; MODE shows 324 and 329,
    sets +o, +k and +i as one MODE line to everyone; a join without the key
    is 475, with it in; 482 for a non-operator; INVITE is 341 and an INVITE
    line; 473 without an invitation; KICK is one KICK line to all, the kicked too.
    """
    clock.advance(1795000000)
    alice, bob, carol = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        client.register(nick)
    alice.take()
    alice.send("JOIN #lab")
    assert alice.take()[1:3] == [":lab 353 alice = #lab :@alice", ":lab 366 alice #lab :End of /NAMES list"]
    alice.send("MODE #lab", "WHO #lab")
    assert alice.take() == [":lab 324 alice #lab +nt", ":lab 329 alice #lab 1795000000",
                            ":lab 352 alice #lab alice chatd lab alice H@ :0 alice the tester",
                            ":lab 315 alice #lab :End of /WHO list"]
    alice.send("MODE #lab +k solder")
    assert alice.take() == [":alice!alice@chatd MODE #lab +k solder"]
    bob.take()
    bob.send("JOIN #lab", "JOIN #lab solder")
    assert bob.take()[:3] == [":lab 475 bob #lab :#lab has a key: /join #lab KEY", ":bob!bob@chatd JOIN #lab",
                              ":lab 353 bob = #lab :@alice bob"]
    bob.send("MODE #lab +i", "KICK #lab alice")
    assert bob.take() == [":lab 482 bob #lab :you are not an operator of #lab"] * 2
    alice.send("MODE #lab +iv bob", "MODE #lab b")
    assert alice.take() == [":bob!bob@chatd JOIN #lab", ":alice!alice@chatd MODE #lab +iv bob",
                            ":lab 368 alice #lab :End of channel ban list"]
    carol.take()
    carol.send("JOIN #lab")
    assert carol.take() == [":lab 473 carol #lab :#lab is invite only: an operator of it may /invite you"]
    alice.send("INVITE carol #lab")
    assert alice.take() == [":lab 341 alice carol #lab"]
    assert carol.take() == [":alice!alice@chatd INVITE carol #lab"]
    carol.send("JOIN #lab")
    assert carol.take()[:2] == [":carol!carol@chatd JOIN #lab", ":lab 353 carol = #lab :@alice +bob carol"]
    bob.take()
    alice.send("KICK #lab carol :not now", "KICK #lab bob")
    kicks = [":alice!alice@chatd KICK #lab carol :not now", ":alice!alice@chatd KICK #lab bob :alice"]
    assert alice.take()[-2:] == kicks
    assert bob.take() == kicks
    assert carol.take() == [kicks[0]]


def test_join_keys_kick_lists_and_kill_parse_as_rfc_2812_has_them():
    """JOIN's keys go with its channels in order; KICK takes one channel and many users, or pairs; KILL is the server's."""
    from chatd.core import commands
    from chatd.irc.parse import parse_line

    assert parse_line("JOIN #a,#b,#c k1,k2") == [commands.Join("#a", "k1"), commands.Join("#b", "k2"),
                                                 commands.Join("#c")]
    assert parse_line("KICK #a bob,carol :out") == [commands.KickFrom("#a", "bob", "out"),
                                                   commands.KickFrom("#a", "carol", "out")]
    assert parse_line("KICK #a,#b bob,carol") == [commands.KickFrom("#a", "bob"), commands.KickFrom("#b", "carol")]
    assert parse_line("KILL bob :spam") == [commands.Kick("bob", "spam")]
    assert parse_line("MODE #a +o-v bob carol") == [commands.Mode("#a", ("+o-v", "bob", "carol"))]
    assert parse_line("INVITE bob #a") == [commands.Invite("bob", "#a")]


# Lines that start as the common PRIVMSG to a channel does, made of what can
# make them read differently: spaces and other whitespace, lists of targets,
# colons, CTCP, IRC's formatting codes and control characters.
_TRICKY = st.lists(st.sampled_from(["a", "#", ",", " ", ":", "\t", "\xa0", "\u3000", "\x01", "\x02", "\x00", "\x1b",
                                    "é", "ACTION ", "NickServ"]), max_size=8).map("".join)


@settings(max_examples=2000, deadline=None)
@given(target=_TRICKY, middle=st.sampled_from([" :", " ", "  :", ":"]), text=_TRICKY)
def test_the_common_message_is_read_in_one_step_as_parsemsg_reads_it(target, middle, text):
    """
    `PRIVMSG #channel :text` read in one step (parse._said) makes the same
    commands as the general reading (parsemsg and _message) of the same
    line, whatever the line holds; and the plain line does take that step.
    """
    from chatd.core import commands
    from chatd.irc import parse

    line = f"PRIVMSG #{target}{middle}{text}"
    said = parse._said(line)
    if said is not None:
        assert [said] == parse._parsed(line)
    assert parse.parse_line(line) == parse._parsed(line)
    assert parse._said("PRIVMSG #lobby :hi: there, all") == commands.Say("hi: there, all", "#lobby")


def test_who_masks_whox_whois_and_away_as_clients_ask_them(factory, clock):
    """
    USER's user name (what is safe of it in a mask) and real name are kept
    and shown; as everyone is +i, WHO with a mask lists who matches among
    those who share a channel beyond the lobby (G when away), and WHO of a
    nickname its user; WHOX answers 354 with the fields asked and its token;
    a PRIVMSG to someone away gets 301, as does WHOIS (with 319, 317 and 330
    where known); USERHOST says - for the away.
    """
    clock.advance(1795000000)
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.send("NICK alice", "USER al~ice!@x 0 * :Alice Liddell")
    bob.register("bob")
    alice.take()
    alice.send("AWAY :at lunch")
    assert alice.take() == [":lab 306 alice :You have been marked as being away"]
    bob.take()
    bob.send("WHO AL*", "WHO ALICE")
    assert bob.take() == [":lab 315 bob AL* :End of /WHO list",
                          ":lab 352 bob * alicex chatd lab alice G :0 Alice Liddell", ":lab 315 bob ALICE :End of /WHO list"]
    bob.send("JOIN #lab")
    alice.send("JOIN #lab")
    bob.take()
    bob.send("WHO *", "WHO AL*", "WHO #lobby %tcuhnfar,42", "PRIVMSG alice :hi", "USERHOST alice bob")
    assert bob.take() == [
        ":lab 352 bob * alicex chatd lab alice G :0 Alice Liddell", ":lab 352 bob * bob chatd lab bob H :0 bob the tester",
        ":lab 315 bob * :End of /WHO list",
        ":lab 352 bob * alicex chatd lab alice G :0 Alice Liddell", ":lab 315 bob AL* :End of /WHO list",
        ":lab 354 bob 42 #lobby alicex chatd alice G 0 :Alice Liddell",
        ":lab 354 bob 42 #lobby bob chatd bob H 0 :bob the tester", ":lab 315 bob #lobby :End of /WHO list",
        ":lab 301 bob alice :at lunch",
        ":lab 302 bob :alice=-alicex@chatd bob=+bob@chatd",
    ]
    clock.advance(90)
    bob.send("WHOIS alice", "WHOIS nobody")
    assert bob.take() == [
        ":lab 311 bob alice alicex chatd * :Alice Liddell", ":lab 319 bob alice :#lab", ":lab 312 bob alice lab chatd",
        ":lab 301 bob alice :at lunch", ":lab 317 bob alice 90 1795000000 :seconds idle, signon time",
        ":lab 318 bob alice :End of /WHOIS list",
        ":lab 401 bob nobody :No such nick/channel", ":lab 318 bob nobody :End of /WHOIS list",
    ]


def test_ircv3_echo_message_server_time_multi_prefix_and_labeled_response(factory, clock):
    """
    echo-message sends a channel line (and a private one) back to its sayer,
    but not a refused one; server-time tags events and replies with when;
    multi-prefix lists every rank; a labelled line is answered with its
    label: on its one reply, as an ACK when there is none, or around several
    in a labeled-response BATCH.
    """
    clock.advance(1795000000.25)
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.send("CAP LS 302", "CAP REQ :echo-message server-time multi-prefix labeled-response batch",
               "NICK alice", "USER alice 0 * :Alice", "CAP END")
    bob.register("bob")
    alice.send("JOIN #lab", "MODE #lab +v alice")
    alice.take()
    stamp = "@time=2026-11-18T11:06:40.250Z"
    alice.send("NAMES #lab", "PRIVMSG #lab :hi", "PRIVMSG #nowhere :hi", "PRIVMSG bob :psst")
    assert alice.take() == [f"{stamp} :lab 353 alice = #lab :@+alice", f"{stamp} :lab 366 alice #lab :End of /NAMES list",
                            f"{stamp} :alice!alice@chatd PRIVMSG #lab :hi",
                            f"{stamp} :lab 403 alice #nowhere :no such channel: #nowhere",
                            f"{stamp} :alice!alice@chatd PRIVMSG bob :psst"]
    bob.send("JOIN #lab")
    bob.take()
    alice.take()
    bob.send("PRIVMSG #lab :hello")
    assert alice.take() == [f"{stamp} :bob!bob@chatd PRIVMSG #lab :hello"]
    alice.send("@label=a1 PRIVMSG #lab :labelled", "@label=a2 PONG x", "@label=a3 NAMES #lab")
    assert alice.take() == [
        "@time=2026-11-18T11:06:40.250Z;label=a1 :alice!alice@chatd PRIVMSG #lab :labelled",
        "@label=a2 :lab ACK",
        "@label=a3 :lab BATCH +L2 labeled-response",
        f"{stamp};batch=L2 :lab 353 alice = #lab :@+alice bob",
        f"{stamp};batch=L2 :lab 366 alice #lab :End of /NAMES list",
        ":lab BATCH -L2",
    ]
    assert bob.take() == [":alice!alice@chatd PRIVMSG #lab :labelled"]  # no label, no time: bob asked for neither


def test_a_labelled_nick_change_is_answered_with_its_nick_line(factory):
    """labeled-response: the NICK line a labelled NICK makes (an event of the turn) carries the label; a NICK to oneself says nothing."""
    alice = Client(factory, 1)
    alice.register("alice", "labeled-response", "batch")
    alice.take()
    alice.send("@label=n1 NICK alicia", "NICK alicia")
    assert alice.take() == ["@label=n1 :alice!alice@chatd NICK alicia"]


def test_whowas_remembers_who_left_and_who_renamed(factory, clock):
    """WHOWAS: 314 and 312 for each time a nickname was used, latest first (and at most COUNT), 406 for none; 431 without one."""
    clock.advance(1795000000)
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    bob.send("NICK bob", "USER bobby 0 * :Bob B", "NICK robert", "QUIT")
    alice.take()
    alice.send("WHOWAS bob", "WHOWAS b* 1", "WHOWAS zed", "WHOWAS")
    when = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(1795000000))
    assert alice.take() == [
        ":lab 314 alice bob bobby chatd * :Bob B", f":lab 312 alice bob lab :{when}", ":lab 369 alice bob :End of WHOWAS",
        ":lab 314 alice bob bobby chatd * :Bob B", f":lab 312 alice bob lab :{when}", ":lab 369 alice b* :End of WHOWAS",
        ":lab 406 alice zed :There was no such nickname", ":lab 369 alice zed :End of WHOWAS",
        ":lab 431 alice :No nickname given",
    ]


def test_monitor_tells_of_nicknames_coming_and_going(factory):
    """MONITOR + answers 730/731 now and on every change (login, rename, quit); L lists (732, 733); - and C stop it."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    alice.send("MONITOR + bob,carol", "MONITOR L")
    assert alice.take() == [":lab 731 alice :bob,carol", ":lab 732 alice :bob,carol", ":lab 733 alice :End of MONITOR list"]
    bob.register("bob")
    assert [line for line in alice.take() if " 73" in line] == [":lab 730 alice :bob!bob@chatd"]
    bob.send("NICK carol")
    assert [line for line in alice.take() if " 73" in line] == [":lab 731 alice :bob", ":lab 730 alice :carol!carol@chatd"]
    alice.send("MONITOR - bob", "MONITOR S")
    assert alice.take() == [":lab 730 alice :carol!carol@chatd"]
    alice.send("MONITOR C")
    bob.send("QUIT")
    assert [line for line in alice.take() if " 73" in line] == []


def test_a_labelled_message_to_oneself_is_labelled_once(factory):
    """With echo-message, a PRIVMSG to oneself comes back twice, as received and as echoed: only the echo carries the label."""
    alice = Client(factory, 1)
    alice.register("alice", "echo-message", "extended-monitor", "labeled-response", "batch")
    alice.take()
    alice.send("@label=s1 PRIVMSG alice :note to self")
    assert alice.take() == [":alice!alice@chatd PRIVMSG alice :note to self",
                            "@label=s1 :alice!alice@chatd PRIVMSG alice :note to self"]


def test_history_on_join_carries_when_it_was_said_with_server_time(clock):
    """With server-time, a joiner's history NOTICEs are tagged with the time each line was said, not now."""
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock), history_size=5), Settings("lab"), clock)
    clock.advance(1795000000)
    bob = Client(factory, 1)
    bob.register("bob")
    bob.send("JOIN #lab", "PRIVMSG #lab :earlier")
    clock.advance(50)
    alice = Client(factory, 2)
    alice.send("CAP LS 302", "CAP REQ server-time", "NICK alice", "USER alice 0 * :A", "CAP END", "JOIN #lab")
    history = [line for line in alice.take() if "earlier" in line]
    assert history == ["@time=2026-11-18T11:06:40.000Z :lab NOTICE #lab :<bob> earlier"]


def test_the_message_of_the_day_and_admin(clock):
    """--motd-file's lines: 375, a 372 each and 376 at registration and for MOTD; ADMIN: 256 to 259."""
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock)), Settings("lab", motd=("Soldering at six",)), clock)
    alice = Client(factory, 1)
    motd = [":lab 375 alice :- lab Message of the day -", ":lab 372 alice :- Soldering at six",
            ":lab 376 alice :End of /MOTD command"]
    lines = alice.register("alice")
    assert lines[lines.index(motd[0]):lines.index(motd[0]) + 3] == motd
    alice.send("MOTD", "ADMIN")
    assert alice.take() == motd + [":lab 256 alice lab :Administrative info",
                                   ":lab 257 alice :A chatd on the local network",
                                   ":lab 258 alice :Ask whoever runs it in the room",
                                   ":lab 259 alice :no e-mail: this is a LAN chat"]


def test_away_notify_tells_who_shares_a_channel_and_only_those_who_asked(factory):
    """
    With away-notify, the AWAY (and back) of those who share a channel
    arrive as AWAY lines; a client that did not ask gets none, nor does one
    that shares only the (quiet) lobby.
    """
    alice, bob, carol, dan = Client(factory, 1), Client(factory, 2), Client(factory, 3), Client(factory, 4)
    alice.register("alice", "away-notify")
    dan.register("dan", "away-notify")
    bob.register("bob")
    carol.register("carol")
    join_all("#lab", alice, bob, carol)
    dan.take()
    bob.send("AWAY :lunch", "AWAY")
    assert alice.take() == [":bob!bob@chatd AWAY :lunch", ":bob!bob@chatd AWAY"]
    assert carol.take() == []
    assert dan.take() == []


def test_help_answers_with_704_705_706_and_524_for_what_has_none(factory):
    """HELP (and HELPOP) lists the commands, explains one (704, 705, 706), and answers 524 for an unknown subject."""
    alice = Client(factory, 1)
    alice.register("alice")
    alice.send("HELP")
    index = alice.take()
    assert codes(index)[0] == "704" and codes(index)[-1] == "706" and set(codes(index)[1:-1]) == {"705"}
    assert any("PRIVMSG" in line for line in index)
    alice.send("HELPOP privmsg", "HELP FROB")
    assert alice.take() == [":lab 704 alice PRIVMSG :PRIVMSG TARGET[,TARGET ...] :TEXT",
                            ":lab 705 alice PRIVMSG :Say TEXT in a channel, or to a nickname privately.",
                            ":lab 706 alice PRIVMSG :End of /HELP",
                            ":lab 524 alice FROB :No help available on this topic"]


def test_several_targets_as_targmax_says(factory):
    """
    005's TARGMAX is kept: NAMES of several channels ends with one 366 for
    them all; KICK takes up to 4 nicknames; a PRIVMSG reaches 4 targets and
    answers 407 for each one past them.
    """
    alice, bob = Client(factory, 1), Client(factory, 2)
    assert any("TARGMAX=JOIN:,KICK:4,NAMES:4,NOTICE:4,PART:,PRIVMSG:4,WHOIS:1" in line for line in alice.register("alice"))
    bob.register("bob")
    alice.send("JOIN #a,#b")
    bob.send("JOIN #a")
    alice.take(), bob.take()
    alice.send("NAMES #a,#b,#nowhere")
    assert alice.take() == [":lab 353 alice = #a :@alice bob", ":lab 353 alice = #b :@alice",
                            ":lab 366 alice #a,#b,#nowhere :End of /NAMES list"]
    alice.send("PRIVMSG bob,#a,#b,bob,#c :hi")
    assert alice.take() == [":lab 407 alice #c :Too many targets: at most 4; not sent to it"]
    assert bob.take() == [":alice!alice@chatd PRIVMSG bob :hi", ":alice!alice@chatd PRIVMSG #a :hi",
                          ":alice!alice@chatd PRIVMSG bob :hi"]
    alice.send("KICK #a bob,nobody :out")
    assert bob.take() == [":alice!alice@chatd KICK #a bob :out"]
    assert codes(alice.take()) == ["KICK", "441"]


def test_invite_alone_lists_ones_invitations_and_plus_i_lets_masks_in(factory):
    """INVITE without parameters lists the channels one is invited into (336, 337); +I masks join +i unasked."""
    alice, bob, carol = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    for client, nick in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
        client.register(nick)
    alice.send("JOIN #club", "MODE #club +iI carol!*@*", "INVITE bob #club")
    alice.take()
    bob.take()
    bob.send("INVITE")
    assert bob.take() == [":lab 336 bob #club", ":lab 337 bob :End of /INVITE list"]
    carol.send("JOIN #club")
    assert codes(carol.take())[:1] == ["JOIN"]  # past +i by +I
    alice.take()
    alice.send("MODE #club I")
    assert alice.take() == [":lab 346 alice #club carol!*@* alice 0",
                            ":lab 347 alice #club :End of channel invite exception list"]


def test_list_conditions_of_elist(factory):
    """LIST with ELIST's conditions: a mask, !mask, and <N or >N members (ELIST=MNU)."""
    alice, bob = Client(factory, 1), Client(factory, 2)
    assert any("ELIST=MNU" in line for line in alice.register("alice"))
    bob.register("bob")
    alice.send("JOIN #chan1,#chan2")
    bob.send("JOIN #chan2")
    alice.take(), bob.take()

    def listed(condition):
        bob.send(f"LIST {condition}")
        return [line.split()[3] for line in bob.take() if line.split()[1] == "322"]

    assert listed("*an1") == ["#chan1"]
    assert listed("!#c*n2") == ["#lobby", "#chan1"]
    assert listed(">1") == ["#lobby", "#chan2"]
    assert listed("<2,#ch*") == ["#chan1"]


def test_message_tags_relay_client_tags_with_a_msgid_the_echo_shares(factory):
    """
    With message-tags, a message reaches those who asked for it with its
    msgid and its sender's client tags ("+name"; other tags are not
    relayed), the sender's echo with the same msgid; a client without it
    gets the bare line; TAGMSG reaches only message-tags clients, channel
    or private; over 4096 bytes of tags is 417.
    """
    alice, bob, carol = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    alice.register("alice", "message-tags", "echo-message")
    bob.register("bob", "message-tags")
    carol.register("carol")
    join_all("#test", alice, bob, carol)
    alice.send("@+baz=bat\\:x;fizz=buzz PRIVMSG #test hi")
    (echo,) = alice.take()
    (relayed,) = bob.take()
    assert relayed.startswith("@msgid=") and relayed.endswith(";+baz=bat\\:x :alice!alice@chatd PRIVMSG #test :hi")
    assert echo == relayed
    assert carol.take() == [":alice!alice@chatd PRIVMSG #test :hi"]
    alice.send("@+typing=active TAGMSG #test", "@+typing=paused TAGMSG bob", "@+typing=done TAGMSG carol")
    echoes = alice.take()
    assert [line.split(" ", 1)[1] for line in echoes] == [":alice!alice@chatd TAGMSG #test",
                                                          ":alice!alice@chatd TAGMSG bob", ":alice!alice@chatd TAGMSG carol"]
    assert [line.split(";", 1)[1] for line in bob.take()] == ["+typing=active :alice!alice@chatd TAGMSG #test",
                                                              "+typing=paused :alice!alice@chatd TAGMSG bob"]
    assert carol.take() == []
    bob.send("@+draft/reply=x PRIVMSG alice :psst")
    (private,) = alice.take()
    assert private.startswith("@msgid=") and private.endswith(";+draft/reply=x :bob!bob@chatd PRIVMSG alice :psst")
    alice.send("@+long=" + "a" * 4090 + " TAGMSG #test")
    assert alice.take() == [":lab 417 alice :Input line was too long"]


def test_setname_changes_the_real_name_and_tells_those_who_asked(factory):
    """
    SETNAME changes one's real name (WHOIS shows it), confirmed to the
    client and sent to channel-mates who negotiated setname only; an empty
    or over-long one is FAIL SETNAME INVALID_REALNAME.
    """
    alice, bob, carol = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    alice.register("alice", "setname")
    bob.register("bob", "setname")
    carol.register("carol")
    join_all("#chan", alice, bob, carol)
    alice.send("SETNAME :Alice Liddell")
    assert alice.take() == [":alice!alice@chatd SETNAME :Alice Liddell"]
    assert bob.take() == [":alice!alice@chatd SETNAME :Alice Liddell"]
    assert carol.take() == []
    carol.send("WHOIS alice")
    assert carol.take()[0] == ":lab 311 carol alice alice chatd * :Alice Liddell"
    alice.send("SETNAME :" + "x" * 101, "SETNAME")
    assert alice.take() == [":lab FAIL SETNAME INVALID_REALNAME :a real name is 1 to 100 characters",
                            ":lab 461 alice SETNAME :Not enough parameters"]


def test_extended_monitor_tells_a_watcher_of_away_and_real_name_as_a_channel_mate_hears_them(factory):
    """
    With extended-monitor (and away-notify, setname), a client that
    MONITORs a nickname hears that user's AWAY and SETNAME though it shares
    no channel with them, once even when it does; without extended-monitor, nothing.
    """
    watcher, plain, bob = Client(factory, 1), Client(factory, 2), Client(factory, 3)
    watcher.send("CAP LS 302", "CAP REQ :extended-monitor away-notify setname", "NICK watcher", "USER w 0 * :W",
                 "CAP END", "MONITOR + bob")
    plain.send("CAP LS 302", "CAP REQ :away-notify setname", "NICK plain", "USER p 0 * :P", "CAP END",
               "MONITOR + bob")
    bob.register("bob")
    watcher.take(), plain.take()
    bob.send("AWAY :lunch", "SETNAME :Robert")
    assert watcher.take() == [":bob!bob@chatd AWAY :lunch", ":bob!bob@chatd SETNAME :Robert"]
    assert plain.take() == []
    watcher.send("JOIN #lab")
    bob.send("JOIN #lab")
    watcher.take()
    bob.send("AWAY")
    assert watcher.take() == [":bob!bob@chatd AWAY"]  # once: as a channel-mate


def test_bot_mode_marks_a_bot_in_whois_who_and_on_its_messages(factory):
    """
    MODE NICK +B marks a bot (005 BOT=B, the MODE line back; 221 +iB):
    WHOIS says 335, WHO's flags B, and its messages carry the `bot` tag for
    message-tags clients, its own echo too; -B unmarks; another letter is 501.
    """
    bot, user = Client(factory, 1), Client(factory, 2)
    assert any("BOT=B" in line for line in bot.register("beeper", "message-tags", "echo-message"))
    user.register("user", "message-tags")
    bot.send("MODE beeper +B", "MODE beeper", "MODE beeper +x")
    assert bot.take() == [":beeper!beeper@chatd MODE beeper +B", ":lab 221 beeper +iB",
                          ":lab 501 beeper :Unknown MODE flag"]
    bot.send("JOIN #chan")
    user.send("JOIN #chan")
    bot.take(), user.take()
    bot.send("PRIVMSG #chan :beep", "PRIVMSG user :boop")
    assert [line.split(" ", 1)[0].split(";")[1] for line in bot.take()] == ["bot", "bot"]  # the echoes
    assert [line.split(" ", 1)[0].split(";")[1] for line in user.take()] == ["bot", "bot"]
    user.send("WHOIS beeper", "WHO #chan")
    shown = user.take()
    assert ":lab 335 user beeper :is a bot" in shown
    assert any(line.startswith(":lab 352 user #chan beeper chatd lab beeper H@B ") for line in shown)
    bot.send("MODE beeper -B", "PRIVMSG #chan :plain")
    assert bot.take()[0] == ":beeper!beeper@chatd MODE beeper -B"
    assert ";bot" not in user.take()[0]


def test_away_on_join_external_messages_and_the_most_users_so_far(factory):
    """
    With away-notify, a joiner who is away is followed by their AWAY; a -n
    channel takes messages from outside it; LUSERS's 265 and 266 give the
    most users so far.
    """
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.send("CAP LS 302", "CAP REQ away-notify", "NICK alice", "USER a 0 * :A", "CAP END", "JOIN #chan")
    bob.register("bob")
    bob.send("AWAY :tea")
    alice.take(), bob.take()
    bob.send("JOIN #chan")
    assert alice.take() == [":bob!bob@chatd JOIN #chan", ":bob!bob@chatd AWAY :tea"]
    alice.send("MODE #chan -n")
    carol = Client(factory, 3)
    carol.register("carol")
    carol.send("PRIVMSG #chan :from outside")
    assert ":carol!carol@chatd PRIVMSG #chan :from outside" in alice.take()
    alice.send("JOIN #chan2")  # +n, as new channels are
    carol.send("PRIVMSG #chan2 :not here")
    assert carol.take() == [":lab 404 carol #chan2 :Cannot send to channel"]
    carol.send("QUIT")
    alice.send("LUSERS")
    assert [line for line in alice.take() if line.split()[1] in ("265", "266")] == [
        ":lab 265 alice 2 3 :Current local users 2, max 3", ":lab 266 alice 2 3 :Current global users 2, max 3"]


def test_a_labelled_tagmsg_to_oneself_is_answered_by_its_echo_and_arrives_unlabelled(factory):
    """A labelled TAGMSG to oneself: the echo carries the label, the one received does not (as for PRIVMSG)."""
    alice = Client(factory, 1)
    alice.send("CAP LS 302", "CAP REQ :echo-message batch labeled-response message-tags", "NICK alice",
               "USER a 0 * :A", "CAP END")
    alice.take()
    alice.send("@label=12;+draft/react=x TAGMSG alice")
    lines = alice.take()
    assert len(lines) == 2 and all(line.endswith(" :alice!alice@chatd TAGMSG alice") for line in lines)
    assert ["label=12" in line.split(" ", 1)[0] for line in lines].count(True) == 1


def test_read_marker_is_kept_only_moves_on_and_comes_on_join(factory):
    """
    draft/read-marker: MARKREAD TARGET asks how far one read it ("*": not
    known), MARKREAD TARGET timestamp=... sets it (an older one leaves it),
    a JOIN says it before 366, and bad input is FAIL MARKREAD.
    """
    alice = Client(factory, 1)
    alice.register("alice", "draft/read-marker")
    alice.take()
    alice.send("MARKREAD #test", "JOIN #test")
    lines = alice.take()
    assert lines[0] == ":lab MARKREAD #test *"
    assert [line.split()[1] for line in lines[1:]] == ["JOIN", "353", "MARKREAD", "366"]
    alice.send("MARKREAD #test timestamp=2019-06-01T12:00:00.123Z", "MARKREAD #test timestamp=2019-01-01T00:00:00.000Z",
               "MARKREAD bob timestamp=2020-01-01T00:00:00Z")
    assert alice.take() == [":lab MARKREAD #test timestamp=2019-06-01T12:00:00.123Z"] * 2 + [
        ":lab MARKREAD bob timestamp=2020-01-01T00:00:00.000Z"]
    alice.send("PART #test", "JOIN #test")
    assert ":lab MARKREAD #test timestamp=2019-06-01T12:00:00.123Z" in alice.take()
    alice.send("MARKREAD", "MARKREAD #test *", "MARKREAD #test timestamp=yesterday")
    assert [line.split(" :")[0] for line in alice.take()] == [
        ":lab FAIL MARKREAD NEED_MORE_PARAMS", ":lab FAIL MARKREAD INVALID_PARAMS #test",
        ":lab FAIL MARKREAD INVALID_PARAMS #test"]


def test_invite_notify_tells_a_channels_members_who_was_invited(factory):
    """invite-notify: a channel's members who asked for it see the INVITE an operator sends; others see nothing."""
    op, watcher, plain, dan = Client(factory, 1), Client(factory, 2), Client(factory, 3), Client(factory, 4)
    op.register("op")
    watcher.register("watcher", "invite-notify")
    plain.register("plain")
    dan.register("dan")
    join_all("#club", op, watcher, plain)
    op.send("INVITE dan #club")
    assert op.take() == [":lab 341 op dan #club"]
    assert watcher.take() == [":op!op@chatd INVITE dan #club"]
    assert plain.take() == []
    assert dan.take() == [":op!op@chatd INVITE dan #club"]


def test_chathistory_and_the_history_on_join_as_a_batch(clock):
    """
    draft/chathistory: CHATHISTORY LATEST/BEFORE answer in a chathistory
    batch, each line as it was said (its time, its msgid); with batch and
    server-time, the history on joining is such a batch too; a channel one
    is not in is FAIL ... INVALID_TARGET, a bad query INVALID_PARAMS; TARGETS
    names one's channels with their latest line.
    """
    clock.advance(1795000000)
    factory = IrcDoor(ChatServer("lab", clock, turn=Turn(clock), history_size=10), Settings("lab"), clock)
    alice, bob = Client(factory, 1), Client(factory, 2)
    alice.register("alice")
    alice.send("JOIN #lab")
    for n in range(1, 4):
        clock.advance(1)
        alice.send(f"PRIVMSG #lab :line {n}")
    bob.register("bob", "batch", "server-time", "message-tags", "draft/chathistory")
    bob.send("JOIN #lab")
    joined = bob.take()
    assert [line.split(" ", 1)[1] for line in joined[-5:]] == [
        ":lab BATCH +H1 chathistory #lab", ":alice!alice@chatd PRIVMSG #lab :line 1", ":alice!alice@chatd PRIVMSG #lab :line 2",
        ":alice!alice@chatd PRIVMSG #lab :line 3", ":lab BATCH -H1"]
    assert "time=2026-11-18T11:06:41.000Z" in joined[-4] and "batch=H1" in joined[-4] and "msgid=" in joined[-4]
    msgid = joined[-3].split("msgid=")[1].split(";")[0]
    bob.send(f"CHATHISTORY BEFORE #lab msgid={msgid} 10", "CHATHISTORY LATEST #lab * 1")
    answer = [line.split(" ", 1)[1] for line in bob.take()]
    assert answer == [":lab BATCH +H2 chathistory #lab", ":alice!alice@chatd PRIVMSG #lab :line 1", ":lab BATCH -H2",
                      ":lab BATCH +H3 chathistory #lab", ":alice!alice@chatd PRIVMSG #lab :line 3", ":lab BATCH -H3"]
    bob.send("CHATHISTORY LATEST #elsewhere * 5", "CHATHISTORY SIDEWAYS #lab * 5", "CHATHISTORY BEFORE #lab * 5",
             "CHATHISTORY TARGETS timestamp=2026-01-01T00:00:00Z timestamp=2027-01-01T00:00:00Z 5")
    lines = [line.split(" ", 1)[1] for line in bob.take()]
    assert lines[0] == ":lab FAIL CHATHISTORY INVALID_TARGET #elsewhere :no such channel: #elsewhere"
    assert [line.split(" :")[0] for line in lines[1:3]] == [":lab FAIL CHATHISTORY INVALID_PARAMS SIDEWAYS",
                                                            ":lab FAIL CHATHISTORY INVALID_PARAMS BEFORE"]
    assert lines[3:] == [":lab BATCH +H4 draft/chathistory-targets",
                         ":lab CHATHISTORY TARGETS #lab timestamp=2026-11-18T11:06:43.000Z", ":lab BATCH -H4"]
