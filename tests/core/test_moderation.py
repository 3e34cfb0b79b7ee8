"""Operators, kicks, bans and slowed password guesses (chatd.core.moderation, through the server and the telnet door)."""

import pytest
from twisted.internet.task import Clock
from zope.interface import implementer

from chatd.core.moderation import Moderation
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.telnet import render
from chatd.telnet.dialect import TelnetDialect
from chatd.telnet.parse import Ban, Bans, Help, Invalid, Kick, Oper, Say, Unban, parse_line
from chatd.telnet.protocol import carry_out
from tests.fakes import greet
from chatd.telnet.render import HELP, OPERATOR_HELP


@implementer(ISession)
class Member:
    """A telnet user as the server sees it: records the lines it would show."""

    username = realname = ""
    lists_members = False
    quiet_lobby = False
    hears_tags = False
    hears_watched = False

    def __init__(self, name, events, address):
        self.name, self.events, self.address = name, events, address
        self.dialect = TelnetDialect("utf-8")

    def deliver(self, share):
        self.events += [(self.name, line) for line in share.encoded(self.dialect).decode().split("\r\n")[:-1]]

    def send(self, replies):
        self.events += [(self.name, line) for reply in replies for line in render.reply_lines(reply, "#lobby")]

    def disconnect(self, reason):
        self.events.append((self.name, "disconnect"))


@pytest.fixture
def setup():
    clock, events = Clock(), []
    room = ChatServer("lab", clock, moderation=Moderation("s3cret", clock))
    members = {}
    for name, address in [("op", "10.0.0.1"), ("bob", "10.0.0.2"), ("bob2", "10.0.0.2"), ("carol", "10.0.0.3")]:
        members[name] = Member(name, events, address)
        greet(room, members[name])
        carry_out(room, members[name], Say(name))
    events.clear()
    return room, members, events, clock


@pytest.mark.parametrize(
    "line, command",
    [
        ("/oper pw", Oper("pw")),
        ("/kick bob", Kick("bob", "")),
        ("/kick bob too loud", Kick("bob", "too loud")),
        ("/ban bob", Ban("bob", 60)),
        ("/ban 10.0.0.2 0", Ban("10.0.0.2", 0)),
        ("/ban bob soon", Invalid("usage: /ban NICK|ADDRESS [MINUTES] (0: until restart)")),
        ("/unban 10.0.0.2", Unban("10.0.0.2")),
        ("/bans", Bans()),
        ("/oper", Invalid("usage: /oper PASSWORD")),
    ],
)
def test_moderation_commands_parse(line, command):
    """Each moderation command and its usage error."""
    assert parse_line(line) == command


def test_help_lists_the_operator_commands_where_moderation_is_on(setup):
    """With --oper-password-file, /help adds /oper, /kick, /ban, /unban and /bans after the others."""
    room, members, events, clock = setup
    carry_out(room, members["carol"], Help())
    assert [line for _, line in events] == [*HELP, *OPERATOR_HELP]
    assert [form for form in ["/oper", "/kick", "/ban", "/unban", "/bans"] if form in "\n".join(OPERATOR_HELP)] == [
        "/oper", "/kick", "/ban", "/unban", "/bans"]


def test_without_a_password_file_moderation_is_off(events=None):
    """No --oper-password-file: every moderation command says so."""
    events = []
    room = ChatServer("lab", Clock())
    alice = Member("alice", events, "10.0.0.1")
    greet(room, alice)
    carry_out(room, alice, Say("alice"))
    events.clear()
    carry_out(room, alice, Oper("x"))
    carry_out(room, alice, Bans())
    assert events == [("alice", "*** Error: moderation is off on this server")] * 2


def test_only_operators_may_moderate(setup):
    """Before /oper, kick and ban are refused."""
    room, members, events, _ = setup
    carry_out(room, members["bob"], Kick("carol", ""))
    carry_out(room, members["bob"], Ban("carol", 5))
    assert events == [("bob", "*** Error: you are not an operator")] * 2


def test_wrong_passwords_are_slowed_down(setup, log_lines):
    """Each failure doubles the wait for that address; the right password then works; failures are logged."""
    room, members, events, clock = setup
    op = members["op"]
    carry_out(room, op, Oper("guess1"))
    carry_out(room, op, Oper("s3cret"))
    clock.advance(1)
    carry_out(room, op, Oper("guess2"))
    clock.advance(1)
    carry_out(room, op, Oper("s3cret"))
    clock.advance(1)
    carry_out(room, op, Oper("s3cret"))
    assert events == [
        ("op", "*** Error: wrong password"),
        ("op", "*** Error: too many attempts, wait 1 s"),
        ("op", "*** Error: wrong password"),
        ("op", "*** Error: too many attempts, wait 1 s"),
        ("op", "*** You are now an operator"),
    ]
    assert "failed /oper by op from 10.0.0.1" in log_lines


def test_kick_tells_the_user_and_the_room(setup):
    """The kicked user gets the reason and is disconnected; everyone else sees who kicked."""
    room, members, events, _ = setup
    carry_out(room, members["op"], Oper("s3cret"))
    events.clear()
    carry_out(room, members["op"], Kick("Carol", "too loud"))
    assert ("carol", "*** You were kicked by op (too loud)") in events
    assert ("carol", "disconnect") in events
    assert ("op", "*** carol has left (Kicked by op: too loud)") in events
    assert ("bob", "*** carol has left (Kicked by op: too loud)") in events
    assert "carol" not in room.nicks()


def test_ban_by_nick_removes_everyone_from_that_address_and_bans_expire(setup):
    """/ban bob bans bob's address: bob and bob2 are removed; the ban lists, and ends after its minutes."""
    room, members, events, clock = setup
    op = members["op"]
    carry_out(room, op, Oper("s3cret"))
    events.clear()
    carry_out(room, op, Ban("bob", 5))
    assert events[0] == ("op", "*** Banned 10.0.0.2 for 5 minutes")
    assert ("bob", "*** Error: you are banned from this server") in events
    assert ("bob2", "disconnect") in events
    assert ("carol", "*** bob has left (Banned by op)") in events
    assert sorted(room.nicks()) == ["carol", "op"]
    assert room.moderation.is_banned("10.0.0.2")
    events.clear()
    carry_out(room, op, Bans())
    assert events[0][1].startswith("*** Bans: 10.0.0.2 (until ")
    clock.advance(5 * 60)
    assert not room.moderation.is_banned("10.0.0.2")


def test_ban_until_restart_unban_and_refusals(setup):
    """0 minutes is until restart; /unban lifts it; unknown targets and one's own address are refused."""
    room, members, events, _ = setup
    op = members["op"]
    carry_out(room, op, Oper("s3cret"))
    events.clear()
    carry_out(room, op, Ban("192.0.2.9", 0))
    carry_out(room, op, Bans())
    carry_out(room, op, Unban("192.0.2.9"))
    carry_out(room, op, Unban("192.0.2.9"))
    carry_out(room, op, Ban("nobody", 5))
    carry_out(room, op, Ban("10.0.0.1", 5))
    carry_out(room, op, Bans())
    assert events == [
        ("op", "*** Banned 192.0.2.9 until restart"),
        ("op", "*** Bans: 192.0.2.9 (until restart)"),
        ("op", "*** Unbanned 192.0.2.9"),
        ("op", "*** Error: not banned: 192.0.2.9"),
        ("op", "*** Error: no such nick or address: nobody"),
        ("op", "*** Error: that is your own address"),
        ("op", "*** No bans"),
    ]
