"""
The chat as telnet users see it: the core (chatd.core.server) behind the
telnet front door's login dialogue, syntax and lines (chatd.telnet), with
recording fake sessions and no sockets.
"""

import time

import pytest
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from chatd.core.commands import Names
from chatd.core.events import Acted, Joined, Left, Renamed, Said
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.turn import Turn
from chatd.telnet import render
from chatd.telnet.dialect import TelnetDialect
from chatd.telnet.parse import Act, Help, Invalid, Msg, Nick, Quit, Say
from chatd.telnet.protocol import carry_out
from tests.fakes import greet
from chatd.telnet.render import HELP


@implementer(ISession)
class FakeMember:
    """Records every line sent and every disconnect, in one events list, as a telnet user would see them."""

    username = realname = ""
    def __init__(self, name, events, charset="utf-8", address="127.0.0.1"):
        self.name, self.events, self.address = name, events, address
        self.dialect = TelnetDialect(charset)
        self.lists_members = False
        self.quiet_lobby = False
        self.hears_tags = False
        self.hears_watched = False
        self.awaits_password = False  # no registered nicknames here: a TelnetSession's, for carry_out
        self.deliveries = 0

    def deliver(self, share):
        self._record(share.encoded(self.dialect).decode(self.dialect.charset))

    def send(self, replies):
        self._record("".join(line + "\r\n" for reply in replies for line in render.reply_lines(reply, "#lobby")))

    def _record(self, text):
        self.deliveries += 1
        for line in text.split("\r\n")[:-1]:
            self.events.append((self.name, line))

    def disconnect(self, reason):
        self.events.append((self.name, f"disconnect: {reason}"))


@implementer(ISession)
class BreakableMember(FakeMember):
    """A member whose deliveries fail once `broken` is set."""

    username = realname = ""
    broken = False

    def deliver(self, share):
        if self.broken:
            raise OSError("socket exploded")
        super().deliver(share)


@pytest.fixture
def events():
    return []


@pytest.fixture
def room():
    """A server without a turn: every event goes out at once."""
    return ChatServer("lab", Clock())


@pytest.fixture
def turned():
    """A server with a turn on a fake clock: events wait for `turn.end()` (the reactor turn's end)."""
    clock = Clock()
    return ChatServer("lab", clock, turn=Turn(clock))


def handle(room, member, command):
    carry_out(room, member, command)


def end_turn(room):
    if room.turn is not None:
        room.turn.end()


def arrived(room, events, name):
    """A member who has connected but not chosen a nickname; events cleared."""
    member = FakeMember(name, events)
    greet(room, member)
    end_turn(room)
    events.clear()
    return member


def joined(room, events, *names):
    members = []
    for name in names:
        member = FakeMember(name, events)
        greet(room, member)
        handle(room, member, Say(name))
        members.append(member)
    end_turn(room)
    events.clear()
    return members


def test_fake_member_provides_the_interface(events):
    """The fake used here is a real ISession."""
    assert verifyObject(ISession, FakeMember("x", events))


def test_arrival_greets_and_asks_for_a_nickname(room, events):
    """Welcome with the count of joined users, then the prompt."""
    joined(room, events, "alice", "bob")
    carol = FakeMember("carol", events)
    greet(room, carol)
    assert events == [
        ("carol", "*** Welcome to chatd on lab. 2 users online."),
        ("carol", "*** Choose a nickname:"),
    ]


def test_joining_says_hello_and_tells_everyone_else(room, events):
    """The joiner is greeted by name; the others hear of it with the new count."""
    (alice,) = joined(room, events, "alice")
    bob = arrived(room, events, "bob")
    handle(room, bob, Say("bob"))
    assert events == [
        ("bob", "*** Hello bob! Type /help for commands."),
        ("alice", "*** bob has joined (2 users online)"),
    ]
    assert room.count == 2


def test_taken_nickname_is_refused_ignoring_case(room, events):
    """ALICE is taken when alice is here; the prompt comes again."""
    joined(room, events, "alice")
    other = arrived(room, events, "other")
    handle(room, other, Say("ALICE"))
    assert events == [("other", "*** Error: nickname is taken: ALICE"), ("other", "*** Choose a nickname:")]


def test_invalid_nickname_is_refused_with_the_prompt_again(room, events):
    """A bad nickname gets one error line and the prompt."""
    member = arrived(room, events, "x")
    handle(room, member, Say("9lives"))
    assert events == [("x", "*** Error: nickname may not start with a digit or -"), ("x", "*** Choose a nickname:")]
    assert room.count == 0


def test_before_joining_only_some_commands_work(room, events):
    """/nick chooses, /list and /help answer then prompt, /me and /msg are refused."""
    member = arrived(room, events, "x")
    handle(room, member, Act("waves"))
    handle(room, member, Msg("bob", "hi"))
    handle(room, member, Names())
    handle(room, member, Invalid("unknown command /x (try /help)"))
    handle(room, member, Nick("zed"))
    assert events == [
        ("x", "*** Error: choose a nickname first"),
        ("x", "*** Choose a nickname:"),
        ("x", "*** Error: choose a nickname first"),
        ("x", "*** Choose a nickname:"),
        ("x", "*** 0 users online: "),
        ("x", "*** Choose a nickname:"),
        ("x", "*** Error: unknown command /x (try /help)"),
        ("x", "*** Choose a nickname:"),
        ("x", "*** Hello zed! Type /help for commands."),
    ]


def test_public_message_and_action_reach_everyone_but_the_sender(room, events):
    """Nobody gets their own public message echoed back."""
    alice, bob, carol = joined(room, events, "alice", "bob", "carol")
    handle(room, alice, Say("hi all"))
    handle(room, bob, Act("waves"))
    assert events == [
        ("bob", "<alice> hi all"),
        ("carol", "<alice> hi all"),
        ("alice", "* bob waves"),
        ("carol", "* bob waves"),
    ]


def test_private_message_reaches_only_its_recipient(room, events):
    """The recipient gets *alice*, the sender -> *bob*, nobody else anything."""
    alice, bob, carol = joined(room, events, "alice", "bob", "carol")
    handle(room, alice, Msg("BOB", "psst"))
    assert events == [("bob", "*alice* psst"), ("alice", "-> *bob* psst")]


def test_private_message_to_unknown_nick_is_an_error(room, events):
    """Unknown nick: one error line to the sender."""
    (alice,) = joined(room, events, "alice")
    handle(room, alice, Msg("bob", "psst"))
    assert events == [("alice", "*** Error: no such nick: bob")]


def test_list_is_sorted_ignoring_case(room, events):
    """The user list is sorted case-insensitively."""
    carol, bob, alice = joined(room, events, "carol", "Bob", "alice")
    handle(room, alice, Names())
    assert events == [("alice", "*** 3 users online: alice, Bob, carol")]


def test_rename_is_told_to_everyone_including_the_user(room, events):
    """Everyone, the renamer included, sees the rename; the old nick is free again."""
    alice, bob = joined(room, events, "alice", "bob")
    handle(room, alice, Nick("al"))
    assert events == [("alice", "*** alice is now known as al"), ("bob", "*** alice is now known as al")]
    assert sorted(room.nicks()) == ["al", "bob"]
    newcomer = FakeMember("new", events)
    greet(room, newcomer)
    handle(room, newcomer, Say("alice"))
    assert room.nick_of(newcomer) == "alice"


def test_rename_refusals(room, events):
    """Taken, invalid and unchanged nicknames are each one error line; a case change is allowed."""
    alice, bob = joined(room, events, "alice", "bob")
    handle(room, alice, Nick("Bob"))
    handle(room, alice, Nick("a b"))
    handle(room, alice, Nick("alice"))
    handle(room, alice, Nick("Alice"))
    assert events == [
        ("alice", "*** Error: nickname is taken: Bob"),
        ("alice", "*** Error: nickname may not contain spaces: use letters, digits and _-[]{}|^"),
        ("alice", "*** Error: you are already alice"),
        ("alice", "*** alice is now known as Alice"),
        ("bob", "*** alice is now known as Alice"),
    ]


def test_quit_says_bye_tells_the_others_and_disconnects(room, events):
    """The others hear the reason before the quitter gets Bye and is disconnected."""
    alice, bob = joined(room, events, "alice", "bob")
    handle(room, alice, Quit("gone fishing"))
    room.depart(alice, "Quit")  # the connection closing afterwards changes nothing
    assert events == [
        ("bob", "*** alice has left (gone fishing)"),
        ("alice", "*** Bye!"),
        ("alice", "disconnect: quit"),
    ]
    assert room.count == 1


def test_quit_before_joining_just_says_bye(room, events):
    """A connection without a nickname leaves silently for the others."""
    joined(room, events, "alice")
    x = arrived(room, events, "x")
    handle(room, x, Quit())
    assert events == [("x", "*** Bye!"), ("x", "disconnect: quit")]


def test_help_lists_every_command(room, events):
    """Help is one line per command, after a heading; without moderation, no server operator's command."""
    (alice,) = joined(room, events, "alice")
    handle(room, alice, Help())
    assert [line for _, line in events] == list(HELP)
    text = "\n".join(HELP)
    for form in ["b:TEXT", "/me", "/msg", "c:NICK:TEXT", "/list", "/who", "/names", "/nick", "n:NEW",
                 "/charset", "/quit", "byebye", "/help", "//TEXT"]:
        assert form in text
    for form in ["/oper", "/kick NICK", "/ban NICK", "/unban ADDRESS, /bans"]:
        assert form not in text


def test_a_broken_member_is_dropped_and_the_others_still_get_the_message(room, events):
    """One failing delivery neither stops the fan-out nor hurts the sender."""
    alice, bob = joined(room, events, "alice", "bob")
    broken = BreakableMember("broken", events)
    greet(room, broken)
    handle(room, broken, Say("broken"))
    carol = FakeMember("carol", events)
    greet(room, carol)
    handle(room, carol, Say("carol"))
    events.clear()
    broken.broken = True
    handle(room, alice, Say("hello"))
    assert events == [
        ("bob", "<alice> hello"),
        ("broken", "disconnect: delivery failed"),
        ("carol", "<alice> hello"),  # the message is delivered to everyone before anyone hears broken left
        ("alice", "*** broken has left (Connection lost)"),
        ("bob", "*** broken has left (Connection lost)"),
        ("carol", "*** broken has left (Connection lost)"),
    ]
    assert sorted(room.nicks()) == ["alice", "bob", "carol"]


def test_a_turn_s_public_messages_are_delivered_together_in_order(turned, events):
    """Within a turn: nothing; at its end, one delivery per member, in order, without their own lines."""
    room = turned
    alice, bob, carol = joined(room, events, "alice", "bob", "carol")
    before = (alice.deliveries, bob.deliveries, carol.deliveries)
    handle(room, alice, Say("one"))
    handle(room, bob, Say("two"))
    handle(room, alice, Act("waves"))
    assert events == []
    end_turn(room)
    assert events == [
        ("alice", "<bob> two"),
        ("bob", "<alice> one"),
        ("bob", "* alice waves"),
        ("carol", "<alice> one"),
        ("carol", "<bob> two"),
        ("carol", "* alice waves"),
    ]
    assert (alice.deliveries, bob.deliveries, carol.deliveries) == tuple(count + 1 for count in before)


def test_within_a_turn_replies_and_membership_changes_keep_their_order(turned, events):
    """Each member sees what was said before a reply, a private message or a leave first, and nothing from before joining."""
    room = turned
    alice, bob = joined(room, events, "alice", "bob")
    dave = arrived(room, events, "dave")
    handle(room, alice, Say("before dave"))
    handle(room, dave, Say("dave"))
    handle(room, bob, Names())
    handle(room, dave, Say("before psst"))
    handle(room, alice, Msg("bob", "psst"))
    handle(room, dave, Say("before bob quits"))
    handle(room, bob, Quit())
    handle(room, alice, Say("after bob"))
    seen_by = {name: [line for who, line in events if who == name] for name in ("alice", "bob", "dave")}
    assert seen_by == {  # what was delivered before the release
        "alice": ["*** dave has joined (3 users online)", "<dave> before psst", "-> *bob* psst"],
        "bob": [
            "<alice> before dave",
            "*** dave has joined (3 users online)",
            "*** 3 users online: alice, bob, dave",
            "<dave> before psst",
            "*alice* psst",
            "<dave> before bob quits",
            "*** Bye!",
            "disconnect: quit",
        ],
        "dave": ["*** Hello dave! Type /help for commands."],
    }
    events.clear()
    end_turn(room)
    assert events == [
        ("alice", "<dave> before bob quits"),
        ("alice", "*** bob has left (Quit)"),
        ("dave", "*** bob has left (Quit)"),
        ("dave", "<alice> after bob"),
    ]


def test_a_member_broken_while_a_turn_s_messages_are_delivered_leaves_after_them(turned, events):
    """A failing delivery of a turn's messages: the others get all of them, then hear the member left."""
    room = turned
    alice, bob = joined(room, events, "alice", "bob")
    broken = BreakableMember("broken", events)
    greet(room, broken)
    handle(room, broken, Say("broken"))
    end_turn(room)
    events.clear()
    broken.broken = True
    handle(room, alice, Say("one"))
    handle(room, alice, Say("two"))
    end_turn(room)
    assert events == [
        ("bob", "<alice> one"),
        ("bob", "<alice> two"),
        ("broken", "disconnect: delivery failed"),
        ("alice", "*** broken has left (Connection lost)"),
        ("bob", "*** broken has left (Connection lost)"),
    ]


def test_renames_are_limited_to_three_a_minute(events):
    """A fourth rename within 60 s is refused with the wait; after the window it works again."""
    clock = Clock()
    room = ChatServer("lab", clock)
    alice, bob = joined(room, events, "alice", "bob")
    for nick in ["a1", "a2", "a3"]:  # at 10, 20 and 30 s
        clock.advance(10)
        handle(room, alice, Nick(nick))
    events.clear()
    clock.advance(5)  # 35 s: the first of the three leaves the window at 70 s
    handle(room, alice, Nick("a4"))
    assert events == [("alice", "*** Error: too many nickname changes, wait 35 s")]
    events.clear()
    handle(room, alice, Nick("bob"))  # a refused rename does not count, nor does it tell the wait
    assert events == [("alice", "*** Error: nickname is taken: bob")]
    events.clear()
    clock.advance(35)
    handle(room, alice, Nick("a4"))
    assert events == [("alice", "*** a3 is now known as a4"), ("bob", "*** a3 is now known as a4")]


def test_a_joining_user_gets_the_recent_messages_after_hello(events):
    """History comes right after the hello; joins are not part of it."""
    clock = Clock()
    room = ChatServer("lab", clock, history_size=20)
    (alice,) = joined(room, events, "alice")
    handle(room, alice, Say("hello"))
    handle(room, alice, Act("waves"))
    events.clear()
    late = arrived(room, events, "late")
    handle(room, late, Say("late"))
    stamp = time.strftime("%H:%M", time.localtime(0))
    assert events[:4] == [
        ("late", "*** Hello late! Type /help for commands."),
        ("late", "*** Recent messages:"),
        ("late", f"[{stamp}] <alice> hello"),
        ("late", f"[{stamp}] * alice waves"),
    ]
    assert events[4] == ("late", "*** End of recent messages")


def test_observers_see_every_public_event_and_never_a_private_one(events):
    """The transcript hears joins, messages, actions, renames and leaves, but no /msg."""
    recorded = []
    room = ChatServer("lab", Clock(), observers=[recorded.append])
    alice, bob = joined(room, events, "alice", "bob")
    handle(room, alice, Say("hi"))
    handle(room, alice, Msg("bob", "secret"))
    handle(room, bob, Act("waves"))
    handle(room, alice, Nick("al"))
    handle(room, bob, Quit("bye"))
    assert recorded == [Joined("#lobby", "alice", 1), Joined("#lobby", "bob", 2), Said("#lobby", "alice", "hi"),
                        Acted("#lobby", "bob", "waves"), Renamed("alice", "al"), Left("bob", "bye")]
    assert all("secret" not in repr(event) for event in recorded)



def test_a_nickname_that_looks_like_an_online_one_is_refused(room, events):
    """Cyrillic а for Latin a is refused like a taken nickname, at login and in /nick; it is free once alice leaves."""
    alice, bob = joined(room, events, "alice", "bob")
    mallory = arrived(room, events, "mallory")
    handle(room, mallory, Say("\u0430lice"))
    handle(room, bob, Nick("\u0410LICE"))
    assert events == [
        ("mallory", "*** Error: nickname is taken: \u0430lice (it looks like alice)"),
        ("mallory", "*** Choose a nickname:"),
        ("bob", "*** Error: nickname is taken: \u0410LICE (it looks like alice)"),
    ]
    room.depart(alice, "Quit")
    events.clear()
    handle(room, mallory, Say("\u0430lice"))
    assert events[0] == ("mallory", "*** Hello \u0430lice! Type /help for commands.")


def test_a_capital_that_looks_like_another_letter_is_refused(room, events):
    """aIice (capital I) while alice is online: casefolding alone would miss it; renaming back frees it."""
    alice, bob = joined(room, events, "alice", "bob")
    handle(room, bob, Nick("aIice"))
    handle(room, bob, Nick("B0B"))
    assert events == [
        ("bob", "*** Error: nickname is taken: aIice (it looks like alice)"),
        ("alice", "*** bob is now known as B0B"),
        ("bob", "*** bob is now known as B0B"),
    ]
    events.clear()
    handle(room, alice, Nick("bob"))
    assert events == [("alice", "*** Error: nickname is taken: bob (it looks like B0B)")]
    events.clear()
    handle(room, alice, Nick("al"))
    handle(room, bob, Nick("aIice"))
    assert ("alice", "*** B0B is now known as aIice") in events
