"""
The protocol-neutral core (chatd.core), with recording fake sessions that
keep whole event and reply values, no front door and no sockets.
"""

import ast
import pathlib

import pytest
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.events import Acted, Crowd, Joined, Left, Parted, Renamed, Said, TopicChanged
from chatd.core.server import CROWD_SUMMARY_SECONDS, LOGIN_LINES_PER_PERIOD, MAX_CHANNELS_PER_USER, ChatServer
from chatd.core.session import ISession
from chatd.core.store import IStore, NoStore
from chatd.core.turn import Turn
from tests.fakes import Session, current_channel

CORE = pathlib.Path(__file__).resolve().parents[2] / "chatd" / "core"


@pytest.fixture
def log():
    return []


@pytest.fixture
def server():
    """A server without a turn: every event goes out at once."""
    return ChatServer("lab", Clock(), quiet_joins=5)


@pytest.fixture
def turned():
    """A server with a turn on a fake clock: events wait for `turn.end()` (the reactor turn's end)."""
    clock = Clock()
    return ChatServer("lab", clock, quiet_joins=5, turn=Turn(clock))


def online(server, log, *names):
    sessions = []
    for name in names:
        session = Session(name, log)
        server.arrive(session)
        server.handle(session, c.LogIn(name))
        sessions.append(session)
    if server.turn is not None:
        server.turn.end()
    log.clear()
    return sessions


def test_the_fake_is_a_session(log):
    """The recording fake these tests use is a real ISession."""
    assert verifyObject(ISession, Session("x", log))


def test_logging_in_puts_the_user_in_the_default_channel(server, log):
    """The newcomer gets LoggedIn; everyone already in #lobby hears Joined with the count."""
    (alice,) = online(server, log, "alice")
    bob = Session("bob", log)
    server.arrive(bob)
    server.handle(bob, c.LogIn("bob"))
    assert log == [
        ("bob", "replies", [r.LoggedIn("bob", "#lobby", (), ("alice", "bob"))]),
        ("alice", "events", [Joined("#lobby", "bob", 2)]),
    ]
    assert current_channel(server, bob) == "#lobby"


def test_a_channel_hears_only_its_own_members(server, log):
    """Join creates #lab; a message there reaches its members, never the lobby-only user."""
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    server.handle(alice, c.Join("lab"))
    server.handle(bob, c.Join("#LAB"))
    server.handle(alice, c.Say("hi lab"))
    server.handle(carol, c.Say("hi lobby"))
    assert log == [
        ("alice", "replies", [r.ChannelJoined("#lab", 1, "", (), ("@alice",))]),
        ("bob", "replies", [r.ChannelJoined("#lab", 2, "", (), ("@alice", "bob"))]),
        ("alice", "events", [Joined("#lab", "bob", 2)]),
        ("bob", "events", [Said("#lab", "alice", "hi lab")]),
        ("alice", "events", [Said("#lobby", "carol", "hi lobby")]),
        ("bob", "events", [Said("#lobby", "carol", "hi lobby")]),
    ]


def test_saying_in_a_named_channel_keeps_the_current_one(server, log):
    """
    /msg #lobby TEXT from #lab: said in #lobby, and #lab stays current; a
    channel that is not there, and one the user is not in, are refused as such.
    """
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#bobs"))
    log.clear()
    server.handle(alice, c.Say("back soon", "#lobby"))
    server.handle(alice, c.Say("nope", "#elsewhere"))
    server.handle(alice, c.Say("nope", "#bobs"))
    assert log == [
        ("bob", "events", [Said("#lobby", "alice", "back soon")]),
        ("alice", "replies", [r.Error("no such channel: #elsewhere", "no-such-channel", "#elsewhere")]),
        ("alice", "replies", [r.Error("you are not in #bobs", "not-in-channel", "#bobs")]),
    ]
    assert current_channel(server, alice) == "#lab"


def test_joining_a_channel_again_makes_it_current(server, log):
    """/join of a channel one is in makes it current and says so, without joining again."""
    (alice,) = online(server, log, "alice")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Join("#lobby"))
    assert log[-1] == ("alice", "replies", [r.NowTalkingIn("#lobby")])
    assert current_channel(server, alice) == "#lobby"


def test_parting_the_current_channel_falls_back_to_the_latest_joined_one(server, log):
    """#a, #b, #c joined in turn; /join #a again makes it current; parting it makes #c current, not #a's predecessor."""
    alice, bob = online(server, log, "alice", "bob")
    for name in ("#a", "#b", "#c", "#a"):
        server.handle(alice, c.Join(name))
    server.handle(bob, c.Join("#a"))
    log.clear()
    server.handle(alice, c.Part(None, "lunch"))
    assert log == [
        ("alice", "replies", [r.ChannelParted("#a", "#c", "lunch")]),
        ("bob", "events", [Parted("#a", "alice", "lunch", 1)]),
    ]


def test_with_no_channel_left_text_is_refused(server, log):
    """With no channel left, a line is refused with a reason in no door's syntax."""
    (alice,) = online(server, log, "alice")
    server.handle(alice, c.Part())
    log.clear()
    server.handle(alice, c.Say("anyone?"))
    assert log == [("alice", "replies", [r.Error("you are in no channel; join one first", "no-channel")])]


def test_an_empty_channel_vanishes_keeping_its_topic_and_the_default_one_stays(server, log):
    """
    An emptied channel goes, keeping its topic (as it keeps its history) for
    when it is made again; the default channel stays even when empty.
    """
    (alice,) = online(server, log, "alice")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Topic(None, "soldering"))
    server.handle(alice, c.Part("#lab"))
    server.handle(alice, c.Part("#lobby"))
    assert server.channel("#lab") is None and server.channel("#lobby") is not None
    log.clear()
    server.handle(alice, c.Join("#lab"))
    assert log == [("alice", "replies", [r.ChannelJoined("#lab", 1, "soldering", (), ("@alice",), "alice", 0.0)])]


def test_topic_is_shown_set_and_cleared(server, log):
    """A topic is shown (with who set it and when), set and cleared, and its channel hears of each change."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Topic())
    server.handle(alice, c.Topic(None, "welcome"))
    server.handle(bob, c.Topic())
    server.handle(bob, c.Topic(None, ""))
    assert log == [
        ("alice", "replies", [r.TopicShown("#lobby", "")]),
        ("alice", "events", [TopicChanged("#lobby", "alice", "welcome")]),
        ("bob", "events", [TopicChanged("#lobby", "alice", "welcome")]),
        ("bob", "replies", [r.TopicShown("#lobby", "welcome", "alice", 0.0)]),  # who set it, and when
        ("alice", "events", [TopicChanged("#lobby", "bob", "")]),
        ("bob", "events", [TopicChanged("#lobby", "bob", "")]),
    ]


def test_channel_names_clash_ignoring_case_and_look_alikes(server, log):
    """#lab exists: #LAB is the same channel, #1ab (digit one) is refused as taken."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    log.clear()
    server.handle(bob, c.Join("#1ab"))
    server.handle(bob, c.Join("bad name"))
    assert log == [
        ("bob", "replies", [r.Error("channel name is taken: #1ab (it looks like #lab)", "channel-taken", "#1ab")]),
        ("bob", "replies", [r.Error("channel name may not contain spaces: use # then letters, digits and -_.",
                                    "bad-channel-name", "bad name")]),
    ]


def test_limits_on_channels_per_server_and_per_user(log):
    """Past --max-channels, or MAX_CHANNELS_PER_USER for one user, a join is one clear refusal naming the channel."""
    server = ChatServer("lab", Clock(), max_channels=3)
    (alice,) = online(server, log, "alice")
    server.handle(alice, c.Join("#a"))
    server.handle(alice, c.Join("#b"))
    log.clear()
    server.handle(alice, c.Join("#c"))
    assert log == [("alice", "replies", [r.Error("this server has 3 channels, its most; join one of them",
                                                 "too-many-channels", "#c")])]
    roomy = ChatServer("lab", Clock(), max_channels=100)
    (bob,) = online(roomy, log, "bob")
    for index in range(MAX_CHANNELS_PER_USER - 1):  # and #lobby
        roomy.handle(bob, c.Join(f"#c{index}"))
    log.clear()
    roomy.handle(bob, c.Join("#one-more"))
    assert log == [("bob", "replies", [r.Error(
        "you are in 20 channels, the most one user may be in; part one first", "too-many-joined", "#one-more")])]


def test_leaving_reaches_everyone_who_shares_a_channel_once(server, log):
    """alice in #lobby and #lab quits: bob (in both) hears it once, dave (in #lab only) too."""
    alice, bob, carol, dave = online(server, log, "alice", "bob", "carol", "dave")
    for session in (alice, bob, dave):
        server.handle(session, c.Join("#lab"))
    server.handle(carol, c.Part())
    server.handle(dave, c.Part("#lobby"))
    log.clear()
    server.handle(alice, c.Quit("bye"))
    assert log == [
        ("bob", "events", [Left("alice", "bye")]),
        ("dave", "events", [Left("alice", "bye")]),
        ("alice", "replies", [r.Bye()]),
        ("alice", "disconnect", "quit"),
    ]


def test_a_rename_reaches_the_renamer_even_in_no_channel(server, log):
    """A user in no channel still hears of their own rename."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Part())
    log.clear()
    server.handle(alice, c.Nick("al"))
    assert log == [("alice", "events", [Renamed("alice", "al")])]


class QuietLobbySession(Session):
    """A session of a door that keeps the default channel quiet (IRC's)."""

    quiet_lobby = True


def test_a_door_that_keeps_the_lobby_quiet_hears_its_talk_and_not_its_comings_and_goings(server, log):
    """
    alice's door keeps the lobby quiet: she hears what is said there, and of
    comings and goings only those in a channel she shares beyond the lobby;
    she is told of her own rename; her lobby's member list is herself, and
    it is left out of others' channels as she asks.  bob's door hears
    everything, alice's arrival and rename included.
    """
    alice = QuietLobbySession("alice", log)
    server.arrive(alice)
    server.handle(alice, c.LogIn("alice"))
    assert log[-1][2][0].nicks == ("alice",)  # LoggedIn lists the lobby as herself
    bob, carol = online(server, log, "bob", "carol")
    assert log == []  # nothing reached alice of bob's and carol's arrivals
    server.handle(bob, c.Say("hi"))
    assert log == [("alice", "events", [Said("#lobby", "bob", "hi")]), ("carol", "events", [Said("#lobby", "bob", "hi")])]
    log.clear()
    server.handle(alice, c.Nick("al"))
    assert log == [("bob", "events", [Renamed("alice", "al")]), ("carol", "events", [Renamed("alice", "al")]),
                   ("alice", "events", [Renamed("alice", "al")])]
    log.clear()
    server.handle(alice, c.Names("#lobby"))
    assert log == [("alice", "replies", [r.ChannelMembers("#lobby", ("al",))])]
    for session in (alice, bob):
        server.handle(session, c.Join("#lab"))
    assert server.user_info("bob", alice).channels == ("#lab",)  # not the lobby, where everyone is
    assert server.user_info("bob", carol).channels == ("#lobby", "#lab")
    log.clear()
    server.handle(carol, c.Quit("bye"))
    server.handle(bob, c.Quit("bye"))
    assert [(name, events) for name, kind, events in log if kind == "events"] == [
        ("bob", [Left("carol", "bye")]), ("alice", [Left("bob", "bye")])]


def test_a_turn_is_one_delivery_per_member_and_one_share_per_view(turned, log):
    """In one turn: bob (in #lobby and #lab) gets one delivery for both channels; carol and dave share one share."""
    server = turned
    alice, bob, carol, dave = online(server, log, "alice", "bob", "carol", "dave")
    server.handle(alice, c.Join("#lab"))
    server.handle(bob, c.Join("#lab"))
    server.handle(bob, c.Join("#lobby"))
    server.turn.end()
    log.clear()
    before = len(bob.shares)
    server.handle(alice, c.Say("in lab"))
    server.handle(carol, c.Say("in lobby"))
    server.handle(alice, c.Act("waves", "#lobby"))
    assert log == []
    server.turn.end()
    assert sorted(log, key=lambda entry: entry[0]) == [
        ("alice", "events", [Said("#lobby", "carol", "in lobby")]),
        ("bob", "events", [Said("#lab", "alice", "in lab"), Said("#lobby", "carol", "in lobby"),
                           Acted("#lobby", "alice", "waves")]),
        ("carol", "events", [Acted("#lobby", "alice", "waves")]),
        ("dave", "events", [Said("#lobby", "carol", "in lobby"), Acted("#lobby", "alice", "waves")]),
    ]
    assert len(bob.shares) == before + 1


def test_members_with_the_same_view_get_the_same_share_object(server, log):
    """Members who see the same channels get one share object, not a copy each."""
    sessions = online(server, log, "alice", "bob", "carol", "dave")
    server.handle(sessions[0], c.Say("hi"))
    assert sessions[1].shares[-1] is sessions[2].shares[-1] is sessions[3].shares[-1]


def test_a_member_who_joins_mid_turn_gets_only_what_follows(turned, log):
    """Joining a channel mid-turn: bob gets the join's reply, then only what was said there after it."""
    server = turned
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.turn.end()
    log.clear()
    server.handle(alice, c.Say("before bob"))
    server.handle(bob, c.Join("#lab"))
    server.handle(alice, c.Say("after bob", "#lab"))
    server.turn.end()
    assert [entry for entry in log if entry[0] == "bob"] == [
        ("bob", "replies", [r.ChannelJoined("#lab", 2, "", (), ("@alice", "bob"))]),
        ("bob", "events", [Said("#lab", "alice", "after bob")]),
    ]


def test_big_channels_sum_up_joins_and_leaves(log):
    """Above quiet_joins members, no join or leave line; one Crowd summary a few seconds later."""
    clock = Clock()
    server = ChatServer("lab", clock, quiet_joins=2)
    alice, bob = online(server, log, "alice", "bob")
    carol, dave = online(server, log, "carol", "dave")
    server.handle(dave, c.Quit())
    assert [entry for entry in log if entry[1] == "events"] == []
    log.clear()
    clock.advance(CROWD_SUMMARY_SECONDS)
    assert log == [
        ("alice", "events", [Crowd("#lobby", 2, 1, 3, ("carol",), ("dave",), at=CROWD_SUMMARY_SECONDS)]),
        ("bob", "events", [Crowd("#lobby", 2, 1, 3, ("carol",), ("dave",), at=CROWD_SUMMARY_SECONDS)]),
        ("carol", "events", [Crowd("#lobby", 2, 1, 3, ("carol",), ("dave",), at=CROWD_SUMMARY_SECONDS)]),
    ]
    log.clear()
    clock.advance(CROWD_SUMMARY_SECONDS)
    assert log == []  # nothing new: no summary


def test_a_big_channels_summary_names_who_came_and_who_went(log):
    """One who leaves a big channel, renames and comes back is a leaver by the old name and a joiner by the new."""
    clock = Clock()
    server = ChatServer("lab", clock, quiet_joins=2)
    alice, bob, carol = online(server, log, "alice", "bob", "carol")
    clock.advance(CROWD_SUMMARY_SECONDS)  # carol's join summed up
    server.handle(carol, c.Join("#side"))
    server.handle(carol, c.Part("#lobby"))
    clock.advance(60)  # past the rename limit, and the summary of carol's leaving
    log.clear()
    server.handle(carol, c.Nick("caro"))
    server.handle(carol, c.Join("#lobby"))
    clock.advance(CROWD_SUMMARY_SECONDS)
    summaries = [events for name, kind, events in log if name == "alice" and kind == "events"]
    assert summaries == [[Crowd("#lobby", 1, 0, 3, ("caro",), (), at=65 + CROWD_SUMMARY_SECONDS)]]
    server.handle(carol, c.Part("#lobby"))
    server.handle(carol, c.Nick("carla"))
    server.handle(bob, c.Nick("caro"))  # bob takes the name carol left by
    clock.advance(60)
    server.handle(carol, c.Join("#lobby"))
    log.clear()
    clock.advance(CROWD_SUMMARY_SECONDS)
    crowd = [events for name, kind, events in log if name == "alice" and kind == "events"][0][0]
    assert (crowd.joiners, crowd.leavers) == (("carla",), ())


def test_a_login_storm_is_logged_one_line_each_then_counted(log, log_lines):
    """The first LOGIN_LINES_PER_PERIOD logins of a period get a line each; the rest one line, at the period's end or at stop."""
    clock = Clock()
    server = ChatServer("lab", clock)
    online(server, log, *[f"u{index}" for index in range(LOGIN_LINES_PER_PERIOD + 3)])
    joined = [line for line in log_lines if " joined (" in line]
    assert len(joined) == LOGIN_LINES_PER_PERIOD and joined[-1].startswith(f"u{LOGIN_LINES_PER_PERIOD - 1} joined")
    clock.advance(CROWD_SUMMARY_SECONDS)
    assert log_lines[-1] == f"3 more users joined ({LOGIN_LINES_PER_PERIOD + 3} online)"
    online(server, log, "late")  # a new period: logged on its own
    assert log_lines[-1] == f"late joined ({LOGIN_LINES_PER_PERIOD + 4} online) from 127.0.0.1"
    online(server, log, *[f"v{index}" for index in range(LOGIN_LINES_PER_PERIOD)])
    server.stop()  # shutting down: the count is not lost
    assert log_lines[-1] == f"1 more user joined ({2 * LOGIN_LINES_PER_PERIOD + 4} online)"


def test_everyone_leaving_at_once_is_logged_one_line_each_then_counted(log, log_lines):
    """The first LOGIN_LINES_PER_PERIOD departures of a period get a line each; the rest one line, at the period's end or at stop."""
    clock = Clock()
    server = ChatServer("lab", clock)
    sessions = online(server, log, *[f"u{index}" for index in range(2 * LOGIN_LINES_PER_PERIOD + 4)])
    clock.advance(CROWD_SUMMARY_SECONDS)  # the logins' own summary
    for session in sessions[:LOGIN_LINES_PER_PERIOD + 3]:
        server.depart(session, "Connection lost")
    left = [line for line in log_lines if " left (" in line]
    assert len(left) == LOGIN_LINES_PER_PERIOD and left[0] == "u0 left (Connection lost)"
    clock.advance(CROWD_SUMMARY_SECONDS)
    assert log_lines[-1] == f"3 more users left ({LOGIN_LINES_PER_PERIOD + 1} online)"
    server.depart(sessions[LOGIN_LINES_PER_PERIOD + 3], "Quit")  # a new period: logged on its own
    assert log_lines[-1] == f"u{LOGIN_LINES_PER_PERIOD + 3} left (Quit)"
    for session in sessions[LOGIN_LINES_PER_PERIOD + 4:]:
        server.depart(session, "Server shutting down")
    server.stop()  # shutting down: the count is not lost
    assert log_lines[-1] == "1 more user left (0 online)"


def test_history_is_per_channel(log):
    """A joiner gets the recent messages of the channel joined, not of another."""
    server = ChatServer("lab", Clock(), history_size=5)
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Say("lobby talk"))
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Say("lab talk"))
    log.clear()
    server.handle(bob, c.Join("#lab"))
    assert log[0] == ("bob", "replies", [r.ChannelJoined("#lab", 2, "", (Said("#lab", "alice", "lab talk"),), ("@alice", "bob"))])


def test_history_of_a_channel_outlives_its_emptying_and_comes_from_before_a_restart(log):
    """A channel's history outlives its emptying, and history from before a restart is given when it is made again."""
    server = ChatServer("lab", Clock(), history_size=5, recent={"#old": [Said("#Old", "zed", "long ago")]})
    alice, bob = online(server, log, "alice", "bob")
    server.handle(alice, c.Join("#lab"))
    server.handle(alice, c.Say("lab talk"))
    server.handle(alice, c.Part())
    server.handle(bob, c.Join("#lab"))
    server.handle(bob, c.Join("#old"))
    joins = [entry[2][0] for entry in log if entry[0] == "bob" and entry[1] == "replies"]
    assert joins == [r.ChannelJoined("#lab", 1, "", (Said("#lab", "alice", "lab talk"),), ("@bob",)),
                     r.ChannelJoined("#old", 1, "", (Said("#Old", "zed", "long ago"),), ("@bob",))]


def test_commands_before_logging_in(server, log):
    """Before a nickname, only the names of those online are answered; anything else is refused."""
    x = Session("x", log)
    server.arrive(x)
    server.handle(x, c.Say("hi"))
    server.handle(x, c.Names())
    server.handle(x, c.Join("#lab"))
    assert log == [
        ("x", "replies", [r.Error("choose a nickname first", "not-logged-in")]),
        ("x", "replies", [r.UserList(())]),
        ("x", "replies", [r.Error("choose a nickname first", "not-logged-in")]),
    ]


def test_names_and_channels(server, log):
    """A channel's members, a channel that does not exist, and the channel list with topics."""
    alice, bob = online(server, log, "alice", "bob")
    server.handle(bob, c.Join("#lab"))
    server.handle(bob, c.Topic(None, "solder"))
    log.clear()
    server.handle(alice, c.Names("lab"))
    server.handle(alice, c.Names("#nope"))
    server.handle(alice, c.Channels())
    assert log == [
        ("alice", "replies", [r.ChannelMembers("#lab", ("@bob",))]),
        ("alice", "replies", [r.Error("no such channel: #nope", "no-such-channel", "#nope")]),
        ("alice", "replies", [r.ChannelList((r.ChannelInfo("#lobby", 2, ""), r.ChannelInfo("#lab", 1, "solder")))]),
    ]


def test_the_core_imports_no_front_door_and_no_reactor():
    """
    chatd.core may use Twisted's interfaces, logger and Deferreds (the
    store's answers, which come later), never a transport, a front door, a
    bus or the reactor.
    """
    allowed_twisted = {"twisted.internet.interfaces", "twisted.logger", "twisted.internet.defer",
                       "twisted.python.failure"}
    for path in CORE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("chatd"):
                    assert name.startswith("chatd.core"), f"{path.name} imports {name}"
                if name.startswith("twisted"):
                    assert name in allowed_twisted, f"{path.name} imports {name}"


class RecordingStore(NoStore):
    """A store that notes what it is handed, turn by turn."""

    def __init__(self):
        self.turns = []

    def record(self, events):
        self.turns.append(list(events))


def test_each_turns_events_of_this_node_go_to_the_store_once(turned, log):
    """The store is handed this node's events once per turn, in order, as the bus is (it keeps what it wants)."""
    store = turned.store = RecordingStore()
    verifyObject(IStore, store, tentative=True)
    (alice,) = online(turned, log, "alice")
    store.turns.clear()
    turned.turn.begin()
    turned.handle(alice, c.Say("one"))
    turned.handle(alice, c.Act("two"))
    turned.turn.end()
    assert [[type(event) for event in turn] for turn in store.turns] == [[Said, Acted]]
    assert [event.text for event in store.turns[0]] == ["one", "two"]


def test_a_channel_kept_from_before_comes_back_with_its_topic_and_history(log):
    """The store's `recent` events at start: the channel, made again, has its topic and shows its lines."""
    kept = {"#lab": [TopicChanged("#lab", "alice", "robots", at=5.0), Said("#lab", "alice", "bring irons", at=6.0)]}
    server = ChatServer("lab", Clock(), history_size=10, recent=kept)
    (bob,) = online(server, log, "bob")
    log.clear()
    server.handle(bob, c.Join("#lab"))
    assert log == [("bob", "replies", [r.ChannelJoined("#lab", 1, "robots", (Said("#lab", "alice", "bring irons",
                                                                                      at=6.0),),
                                                      ("@bob",), "alice", 5.0)])]
