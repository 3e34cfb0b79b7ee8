"""
The core owns its turn: a door that only hands the server commands (no
hold, no catch-up, no end of turn) still has every member see everything
in the order it happened, and a turn's events reach each member as one
delivery at its end.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from zope.interface import implementer

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.turn import Turn


@implementer(ISession)
class MinimalDoor:
    """The least a door can be: commands in, whatever comes back recorded. It never touches the turn."""

    username = realname = ""
    dialect = "minimal"
    lists_members = True
    quiet_lobby = False
    hears_tags = False
    hears_watched = False

    def __init__(self, server, name, log):
        self.server, self.name, self.log = server, name, log
        self.address = "127.0.0.1"
        server.arrive(self)
        server.handle(self, c.LogIn(name))

    def line(self, command):
        self.server.handle(self, command)

    def deliver(self, share):
        self.log.append((self.name, "events", [(type(event).__name__, getattr(event, "text", None) or event.nick)
                                               for event in share.events]))

    def send(self, replies):
        self.log.append((self.name, "replies", list(replies)))

    def disconnect(self, reason):
        self.log.append((self.name, "disconnect", reason))


def test_a_door_that_never_touches_the_turn_gets_everything_in_order():
    """
    Within one turn alice talks, whispers, talks again and bob joins and
    quits: bob sees each thing before the next, replies included; the
    turn's rest reaches carol as one delivery at the end of the turn.
    """
    clock, log = Clock(), []
    server = ChatServer("lab", clock, turn=Turn(clock))
    alice, bob, carol = (MinimalDoor(server, name, log) for name in ("alice", "bob", "carol"))
    clock.advance(0)
    log.clear()
    alice.line(c.Say("one"))
    alice.line(c.Msg("bob", "psst"))
    alice.line(c.Say("two"))
    bob.line(c.Join("#lab"))
    alice.line(c.Join("#lab"))
    alice.line(c.Say("three"))
    bob.line(c.Quit())
    assert [entry for entry in log if entry[0] == "carol"] == [], "nothing for carol before the turn ends"
    clock.advance(0)
    assert [entry for entry in log if entry[0] == "bob"] == [
        ("bob", "events", [("Said", "one")]),
        ("bob", "replies", [r.PrivateReceived("alice", "psst")]),
        ("bob", "events", [("Said", "two")]),
        ("bob", "replies", [r.ChannelJoined("#lab", 1, "", (), ("@bob",))]),
        ("bob", "events", [("Joined", "alice"), ("Said", "three")]),
        ("bob", "replies", [r.Bye()]),
        ("bob", "disconnect", "quit"),
    ]
    assert [entry for entry in log if entry[0] == "carol"] == [
        ("carol", "events", [("Said", "one"), ("Said", "two"), ("Left", "bob")])]


def test_without_a_turn_every_event_goes_out_at_once():
    """A server given no turn (as in most unit tests) delivers each event as it happens."""
    clock, log = Clock(), []
    server = ChatServer("lab", clock)
    alice, bob = MinimalDoor(server, "alice", log), MinimalDoor(server, "bob", log)
    log.clear()
    alice.line(c.Say("one"))
    assert log == [("bob", "events", [("Said", "one")])]


def test_the_end_of_a_turn_runs_the_fan_out_then_the_output_steps_and_times_the_fan_out():
    """
    A turn with output only runs the output step; a turn that began fans out first, then outputs, and times the
    fan-out.
    """
    clock, steps, timed = Clock(), [], []
    turn = Turn(clock, timed.append)
    turn.fan_out(lambda: steps.append("fan-out"))
    turn.then(lambda: steps.append("output"))
    turn.later()
    clock.advance(0)
    assert steps == ["output"] and timed == [], "output alone: no fan-out, nothing timed"
    turn.begin()
    assert turn.held
    clock.advance(0)
    assert steps == ["output", "fan-out", "output"] and len(timed) == 1 and not turn.held
