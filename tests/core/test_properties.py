"""
A hypothesis state machine over the core: random logins, joins, parts,
messages, renames, quits and broken connections across several channels,
inside and outside held turns.  Whatever happens, every member of a channel
gets each of its messages exactly once, in order, and nothing from a
channel they were not in when it was said; and a member list kept from the
events, as the web page keeps it, matches the channel's once its joins and
leaves are summed up (in channels above --quiet-joins too).
"""

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule
from twisted.internet.task import Clock
from zope.interface import implementer

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.events import Crowd, Joined, Left, Parted, Renamed, Said
from chatd.core.server import ChatServer
from chatd.core.turn import Turn
from tests.fakes import current_channel, sessions_in
from chatd.core.session import ISession

CHANNELS = ["#lobby", "#a", "#b", "#c"]


@implementer(ISession)
class Session:
    username = realname = ""
    dialect = "fake"
    lists_members = True
    quiet_lobby = False
    hears_tags = False
    hears_watched = False
    address = "127.0.0.1"

    def __init__(self, name, server):
        self.name = name
        self.server = server
        self.said_to_me: list[str] = []
        self.broken = False  # its next delivery fails, and it is dropped
        self.dropped = False
        # Channel name -> the members it shows, as a page would keep them:
        # the list asked for on joining (here: read then), then the events.
        self.lists: dict[str, set[str]] = {}

    def deliver(self, share):
        if self.broken:
            self.dropped = True
            raise OSError("connection broke")
        self.said_to_me += [event.text for event in share.events if isinstance(event, Said)]
        for event in share.events:
            match event:
                case Joined(channel, nick):
                    self.lists[channel].add(nick)
                case Parted(channel, nick):
                    self.lists[channel].discard(nick)
                case Crowd(channel, joiners=joiners, leavers=leavers):
                    self.lists[channel] = (self.lists[channel] - set(leavers)) | set(joiners)
                case Left(nick):
                    for members in self.lists.values():
                        members.discard(nick)
                case Renamed(old, new):
                    for members in self.lists.values():
                        if old in members:
                            members.remove(old)
                            members.add(new)

    def send(self, replies):
        # A reply to one's own command does not fail (that is the front door's business).
        for reply in replies:
            match reply:
                case r.LoggedIn() | r.ChannelJoined():
                    # The reply says who is in it (each after their rank: "@" for who made it).
                    self.lists[reply.channel] = {nick.lstrip("@+") for nick in reply.nicks}
                case r.ChannelParted(channel):
                    del self.lists[channel]

    def disconnect(self, reason):
        pass


class Chat(RuleBasedStateMachine):
    sessions = Bundle("sessions")

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.server = ChatServer("lab", self.clock, quiet_joins=3, turn=Turn(self.clock))
        self.expected: dict[Session, list[str]] = {}
        self.count = 0

    @rule(target=sessions)
    def log_in(self):
        self.count += 1
        session = Session(f"u{self.count}", self.server)
        self.server.arrive(session)
        self.server.handle(session, c.LogIn(session.name))
        self.expected[session] = []
        return session

    @rule(session=sessions, channel=st.sampled_from(CHANNELS))
    def join(self, session, channel):
        self.server.handle(session, c.Join(channel))

    @rule(session=sessions, channel=st.sampled_from([None, *CHANNELS]))
    def part(self, session, channel):
        self.server.handle(session, c.Part(channel))

    @rule(session=sessions, channel=st.sampled_from([None, *CHANNELS]))
    def say(self, session, channel):
        self.count += 1
        text = f"m{self.count}"
        name = current_channel(self.server, session) if channel is None else channel
        members = [] if name is None else sessions_in(self.server, name)
        if session in members and self.server.nick_of(session) is not None:
            for member in members:
                if member is not session:
                    self.expected[member].append(text)
        self.server.handle(session, c.Say(text, channel))

    @rule(session=sessions)
    def rename(self, session):
        self.count += 1
        self.clock.advance(30)  # stay inside the rename limit
        self.server.handle(session, c.Nick(f"r{self.count}"))

    @rule(session=consumes(sessions))
    def quit(self, session):
        self.server.handle(session, c.Quit())

    @rule(session=consumes(sessions))
    def connection_lost(self, session):
        self.server.depart(session, "Connection lost")

    @rule(session=sessions)
    def connection_breaks(self, session):
        session.broken = True

    @precondition(lambda self: self.server.turn.held)
    @rule()
    def the_turn_ends(self):
        self.clock.advance(0)

    @rule()
    def time_passes(self):
        self.clock.advance(5)  # crowd summaries, if any

    @precondition(lambda self: not self.server.turn.held)
    @rule()
    def member_lists_agree_once_summed_up(self):
        # A summary's delivery can find a broken connection, whose leaving the next summary tells.
        for _ in range(len(self.expected) + 1):
            self.clock.advance(5)
        for session in self.expected:
            nick = self.server.nick_of(session)
            if session.dropped or nick is None:
                continue
            for name, shown in session.lists.items():
                assert shown == set(self.server.channel(name).nicks), (session.name, name)

    @invariant()
    def each_got_their_channels_messages_once_in_order(self):
        if self.server.turn.held:
            return
        for session, expected in self.expected.items():
            if session.dropped:
                # Its last delivery failed: what it got is what came before.
                assert session.said_to_me == expected[:len(session.said_to_me)]
            else:
                assert session.said_to_me == expected, session.name


Chat.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_chat_delivers_each_message_exactly_once_in_order = Chat.TestCase
