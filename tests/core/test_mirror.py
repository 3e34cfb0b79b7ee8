"""
The core in a cluster: several ChatServers, each with its own users,
sharing channels, nicknames and moderation through a bus.

The bus here is `Wire`, an in-memory IBus that carries each node's
published events to the others when told to (`deliver`), as the Redis bus
does after a network hop; the Redis bus itself is tested against a real
redis-server in test_redis_bus.py.
"""

from __future__ import annotations

import attrs
import pytest
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.bus import IBus
from chatd.core.events import Joined, Left, Parted, Renamed, Said, TopicChanged
from chatd.core.moderation import Moderation
from chatd.core.remote import NodeState, Topic
from chatd.core.server import CROWD_SUMMARY_SECONDS, ChatServer
from chatd.core.turn import Turn

from tests.fakes import Session


class Wire:
    """
    Carries what each node publishes to every other node, in order, on
    `deliver`.  Each node has a turn: what one node receives at once is one
    turn there, as from the Redis bus.
    """

    def __init__(self):
        self.nodes: dict[str, ChatServer] = {}
        self.in_flight: list[tuple[str, list]] = []

    def node(self, name, clock=None, **settings):
        settings.setdefault("history_size", 10)
        clock = clock or Clock()
        server = ChatServer("lab", clock, bus=WireBus(self, name), node=name, turn=Turn(clock), **settings)
        self.nodes[name] = server
        return server

    def end_turns(self):
        for server in self.nodes.values():
            server.turn.end()

    def deliver(self):
        self.end_turns()
        while self.in_flight:
            origin, events = self.in_flight.pop(0)
            for name, server in self.nodes.items():
                if name != origin:
                    server.receive([attrs.evolve(event, origin=origin) for event in events])
                    server.turn.end()


@implementer(IBus)
class WireBus:
    def __init__(self, wire, name):
        self.wire, self.name = wire, name

    def publish(self, events):
        self.wire.in_flight.append((self.name, list(events)))


def log_in(server, log, name, address="127.0.0.1"):
    session = Session(name, log, address)
    server.arrive(session)
    server.handle(session, c.LogIn(name))
    server.turn.end()
    return session


@pytest.fixture
def log():
    return []


@pytest.fixture
def wire():
    return Wire()


def test_the_wire_is_a_bus(wire):
    """The test's wire between nodes is a real IBus."""
    assert verifyObject(IBus, WireBus(wire, "a"))


def test_users_of_two_nodes_share_a_channel(wire, log):
    """
    A message on one node reaches the other's members and history, and a node does not publish again what it
    received.
    """
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    bob = log_in(b, log, "bob")
    wire.deliver()
    log.clear()
    a.handle(alice, c.Say("hi bob"))
    wire.deliver()
    assert log == [("bob", "events", [Said("#lobby", "alice", "hi bob", origin="a")])]
    assert a.nicks() == ["alice", "bob"] and b.nicks() == ["bob", "alice"]
    assert b.channel("#lobby").nicks == ("bob", "alice")
    assert b.channel("#lobby").history == (Said("#lobby", "alice", "hi bob", origin="a"),)
    assert not wire.in_flight, "a node does not publish again what it received"


def test_joins_parts_renames_and_quits_reach_the_other_node(wire, log):
    """
    One turn of a node's joins, topic, rename and part reaches the other node's members as one delivery, in
    order.
    """
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    bob = log_in(b, log, "bob")
    b.handle(bob, c.Join("#lab"))
    b.handle(bob, c.Mode("#lab", ("-t",)))  # bob made #lab: anyone may set its topic now
    wire.deliver()
    log.clear()
    a.handle(alice, c.Join("#lab"))
    a.handle(alice, c.Topic("#lab", "soldering"))
    a.handle(alice, c.Nick("alicia"))
    a.handle(alice, c.Part("#lab", "later"))
    wire.deliver()
    assert [entry for entry in log if entry[0] == "bob"] == [
        ("bob", "events", [Joined("#lab", "alice", 2, origin="a"),  # one turn of a's: one entry, one delivery
                           TopicChanged("#lab", "alice", "soldering", origin="a"),
                           Renamed("alice", "alicia", origin="a"),
                           Parted("#lab", "alicia", "later", 1, origin="a")]),
    ]
    assert b.channel("#lab").topic == "soldering" and b.channel("#lab").topic_by == "alice"
    log.clear()
    a.handle(alice, c.Quit("bye"))
    wire.deliver()
    assert ("bob", "events", [Left("alicia", "bye", origin="a")]) in log
    assert b.nicks() == ["bob"] and b.online("alicia") is None


def test_a_quiet_lobby_stays_quiet_for_other_nodes_comings_and_goings(wire, log):
    """
    A session whose door keeps the lobby quiet (IRC's) hears nothing of a
    user of another node coming into the lobby, renaming or leaving, and
    hears what they say; a session of another door on the same node hears all.
    """

    class QuietLobbySession(Session):
        quiet_lobby = True

    a, b = wire.node("a"), wire.node("b")
    quiet = QuietLobbySession("quiet", log)
    a.arrive(quiet)
    a.handle(quiet, c.LogIn("quiet"))
    log_in(a, log, "loud")
    wire.deliver()
    log.clear()
    bob = log_in(b, log, "bob")
    b.handle(bob, c.Nick("robert"))
    b.handle(bob, c.Say("hi"))
    b.handle(bob, c.Quit("bye"))
    wire.deliver()
    assert [(name, events) for name, kind, events in log if name != "bob" and kind == "events"] == [
        ("loud", [Joined("#lobby", "bob", 3, origin="b")]),
        ("quiet", [Said("#lobby", "robert", "hi", origin="b")]),
        ("loud", [Renamed("bob", "robert", origin="b"), Said("#lobby", "robert", "hi", origin="b"),
                  Left("robert", "bye", origin="b")]),
    ]


def test_a_channel_only_other_nodes_use_is_listed_and_goes_when_they_leave(wire, log):
    """A channel made on another node exists here while its members are in it, and goes when they leave."""
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    a.handle(alice, c.Join("#lab"))
    wire.deliver()
    assert b.channel("#lab").count == 1
    a.handle(alice, c.Part("#lab"))
    wire.deliver()
    assert b.channel("#lab") is None


def test_nicknames_are_unique_across_nodes_look_alikes_included(wire, log):
    """A nickname (or a look-alike of it) held on another node is refused here."""
    a, b = wire.node("a"), wire.node("b")
    log_in(a, log, "bob")
    wire.deliver()
    log.clear()
    session = log_in(b, log, "bob")
    log_in(b, log, "b\u043eb")  # a Cyrillic o
    assert [entry[2][0].code for entry in log if entry[1] == "replies"] == ["nickname-taken", "nickname-taken"]
    assert b.online("BOB") == "bob" and b.nick_of(session) is None


def test_a_private_message_crosses_nodes(wire, log):
    """A private message to a user of another node reaches them there, counted once, on the sender's node."""
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    log_in(b, log, "bob")
    wire.deliver()
    log.clear()
    a.handle(alice, c.Msg("BOB", "psst"))
    wire.deliver()
    assert log == [
        ("alice", "replies", [r.PrivateSent("bob", "psst")]),
        ("bob", "replies", [r.PrivateReceived("alice", "psst")]),
    ]
    assert a.messages == 1 and b.messages == 0


def test_a_lost_node_takes_its_users_with_it(wire, log):
    """A node lost: its users leave with 'Server lost', and this node goes on publishing its own."""
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    a.handle(alice, c.Join("#lab"))
    bob = log_in(b, log, "bob")
    b.handle(bob, c.Join("#lab"))
    wire.deliver()
    log.clear()
    b.lose_node("a")
    b.turn.end()
    assert log == [("bob", "events", [Left("alice", "Server lost", origin="a")])]
    assert b.nicks() == ["bob"] and b.channel("#lab").nicks == ("bob",)
    assert b.online("alice") is None
    b.handle(bob, c.Say("still here"))
    b.turn.end()
    assert wire.in_flight[-1] == ("b", [Said("#lab", "bob", "still here")])


def test_a_nickname_given_by_two_nodes_at_once_stays_with_one(wire, log):
    """Both log in as carol before either hears of the other: node b's carol becomes carol2, on both nodes."""
    a, b = wire.node("a"), wire.node("b")
    on_a = log_in(a, log, "carol")
    on_b = log_in(b, log, "Carol")
    log.clear()
    wire.deliver()
    assert a.nick_of(on_a) == "carol" and b.nick_of(on_b) == "Carol2"
    assert ("Carol", "replies", [r.Error(
        "Carol was given to a user of another server at the same moment; you are now Carol2", "nickname-taken",
        "Carol")]) in log
    assert ("Carol", "events", [Renamed("Carol", "Carol2"), Joined("#lobby", "carol", 1, origin="a")]) in log
    assert ("carol", "events", [Renamed("Carol", "Carol2", origin="b")]) in log
    assert sorted(a.nicks()) == sorted(b.nicks()) == ["Carol2", "carol"]
    assert a.online("carol2") == "Carol2"


def test_a_new_node_starts_from_the_others_state(wire, log):
    """A node's state, adopted, gives its users, channels and topics; adopted again, only what changed is told."""
    a = wire.node("a")
    alice = log_in(a, log, "alice")
    a.handle(alice, c.Join("#lab"))
    a.handle(alice, c.Topic("#lab", "soldering"))
    state = a.state()
    assert state.users == (("alice", ("#lobby", "#lab")),)
    assert state.topics[0].channel == "#lab" and state.topics[0].text == "soldering"
    b = wire.node("b")
    b.adopt("a", state)
    assert b.channel("#lab").nicks == ("alice",) and b.channel("#lab").topic == "soldering"
    assert b.online("alice") == "alice"
    bob = log_in(b, log, "bob")
    b.handle(bob, c.Join("#lab"))
    log.clear()
    # a state adopted again: only what changed is told
    b.adopt("a", NodeState((("alice", ("#lobby",)), ("dave", ("#lab",))), (Topic("#lab", "new", "dave", 9.0),)))
    b.turn.end()
    assert [entry for entry in log if entry[0] == "bob"] == [
        ("bob", "events", [Parted("#lab", "alice", "", 1, origin="a"), Joined("#lab", "dave", 2, origin="a")]),
    ]
    assert b.channel("#lab").topic == "new"


def test_big_channels_count_other_nodes_joins_in_their_summary(wire, log):
    """Other nodes' joins to a big channel are summed up in this node's crowd summary."""
    clock = Clock()
    a, b = wire.node("a", quiet_joins=2), wire.node("b", clock, quiet_joins=2)
    watcher = log_in(b, log, "watcher")
    for name in ("u1", "u2", "u3", "u4"):
        log_in(a, log, name)
    wire.deliver()
    log.clear()
    clock.advance(CROWD_SUMMARY_SECONDS)
    [(_, _, [crowd])] = [entry for entry in log if entry[0] == "watcher"]
    assert (crowd.joined, crowd.count, crowd.joiners) == (3, 5, ("u2", "u3", "u4"))


def test_operators_kick_and_ban_users_of_other_nodes(wire, log):
    """
    An operator's kick and ban of another node's users are carried out by that node, and everyone sees why they
    left.
    """
    a = wire.node("a", moderation=Moderation("secret", Clock()))
    b = wire.node("b", moderation=Moderation("secret", Clock()))
    oper = log_in(a, log, "oper", "10.0.0.1")
    a.handle(oper, c.Oper("secret"))
    mallory = log_in(b, log, "mallory", "10.0.0.66")
    eve = log_in(b, log, "eve", "10.0.0.99")
    wire.deliver()
    log.clear()
    a.handle(oper, c.Kick("eve", "spam"))
    wire.deliver()
    assert ("eve", "replies", [r.KickedOut("oper", "spam")]) in log
    assert ("oper", "events", [Left("eve", "Kicked by oper: spam", origin="b")]) in log
    log.clear()
    a.handle(oper, c.Ban("mallory", 10))
    wire.deliver()
    assert ("oper", "replies", [r.BanAdded("mallory", 10)]) in log
    assert ("mallory", "replies", [r.Error("you are banned from this server", "banned")]) in log
    assert a.moderation.is_banned("10.0.0.66") and b.moderation.is_banned("10.0.0.66")
    a.handle(oper, c.Unban("10.0.0.66"))
    wire.deliver()
    assert not b.moderation.is_banned("10.0.0.66")


def test_a_new_node_takes_the_bans_in_force(wire, log):
    """A node adopting another's state takes its bans, each until its own time."""
    clock = Clock()
    a = wire.node("a", moderation=Moderation("secret", clock))
    oper = log_in(a, log, "oper", "10.0.0.1")
    a.handle(oper, c.Oper("secret"))
    a.handle(oper, c.Ban("10.0.0.66", 10))
    a.handle(oper, c.Ban("10.0.0.77", 0))
    state = a.state()
    assert state.bans == (("10.0.0.66", 600.0), ("10.0.0.77", None))
    b = wire.node("b", clock, moderation=Moderation("secret", clock))
    b.adopt("a", state)
    assert b.moderation.is_banned("10.0.0.66") and b.moderation.is_banned("10.0.0.77")
    clock.advance(601)
    assert not b.moderation.is_banned("10.0.0.66") and b.moderation.is_banned("10.0.0.77")


def test_what_comes_from_the_bus_is_cleaned_and_bad_names_are_left_out():
    """Redis is shared: an event or a state written there by anyone reaches no screen as control bytes."""
    from chatd.core.events import Banned, Said
    from chatd.core.remote import checked, checked_state

    assert checked(Said("#lab", "mallory", "hi\x1b[2J\x07 \x02bold\x02", origin="x")) == Said(
        "#lab", "mallory", "hi \x02bold\x02", origin="x")
    assert checked(Said("#lab", "mal\x1blory", "hi")) is None
    assert checked(Said("lab; rm", "mallory", "hi")) is None
    assert checked(Banned("10.0.0.1\x1b[31m", 5, "op")) == Banned("10.0.0.1", 5, "op")
    state = checked_state(NodeState((("ok", ("#lab",)), ("bad\x07", ("#lab",)), ("ok2", ("#b a d",))),
                                    (Topic("#lab", "t\x1b]0;pwned\x07ext", "op", 1.0),)))
    assert state.users == (("ok", ("#lab",)),)
    assert state.topics == (Topic("#lab", "text", "op", 1.0),)


def test_every_front_door_says_when_contact_with_the_cluster_is_lost_and_back():
    """Telnet, IRC and the web each have their words for contact lost and regained, a gap included."""
    import json

    from chatd.irc import render as irc
    from chatd.telnet import render as telnet
    from chatd.web import render as web

    assert telnet.reply_lines(r.ContactLost(), "#lobby") == ["*** Lost contact with the rest of the chat; retrying"]
    assert telnet.reply_lines(r.ContactRestored(gap=True), "#lobby") == [
        "*** Back in contact with the rest of the chat; some of what was said elsewhere meanwhile is lost"]
    assert irc.reply("lab", "bob", r.ContactLost()) == [
        ":lab NOTICE bob :Lost contact with the rest of the chat; retrying"]
    assert irc.reply("lab", "bob", r.ContactRestored()) == [":lab NOTICE bob :Back in contact with the rest of the chat"]
    assert json.loads(web.reply(r.ContactLost())) == {"type": "contact", "contact": False, "gap": False}
    assert json.loads(web.reply(r.ContactRestored(gap=True))) == {"type": "contact", "contact": True, "gap": True}
