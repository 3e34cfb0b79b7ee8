"""
The chat server: one object that owns the channels, the sessions, the
nicknames, moderation and the turn.  Protocol-neutral: it reaches users
only through `ISession`, speaks `commands` in and `events` and `replies`
out, and never sees a transport, a wire format or a charset.

A front door drives it with `arrive(session)`, `handle(session, command)`
and `depart(session, reason)`, and may `tell` a session replies of its own.

Fan-out is the hot path.  The server owns its turn (chatd.core.turn): each
entry point begins one, and until it ends events wait; then they go out
together: the turn's events form one `Batch`, each dialect in use encodes
it once, and each member gets one `Share` (the events of their channels,
minus what they said themselves) in one delivery.  Members who see the
same channels from the same current channel get the same share object.
A server without a turn (unit tests) delivers each event at once.

In a cluster (chatd.core.bus) the server also knows the other nodes' users
(`remote.Remote`): they are members of channels and hold nicknames here,
and their events, arriving through `receive`, reach this node's members
like local ones.  This node's own events go to its bus once per turn.

Order is the server's job: before anything else reaches a member (a reply,
a private message, a change of their channels, their departure), the
server first delivers what waits for them (`_catch_up`), and a member who
joins a channel mid-turn gets only what comes after, so each member sees
everything in the order it happened.  No front door has to think about it.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping

from attrs import define, field
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from chatd.core import commands, replies
from chatd.core.batch import Batch, Runs, Share, from_index, without
from chatd.core.bus import IBus, LocalBus
from chatd.core.channel import Channel, Member, Remote
from chatd.core.events import (
    Acted,
    Banned,
    BusEvent,
    Crowd,
    Event,
    Joined,
    KickOrdered,
    Left,
    Parted,
    Renamed,
    Said,
    TopicChanged,
    Unbanned,
    Whispered,
)
from chatd.core.history import History
from chatd.core.moderation import Moderation
from chatd.core.nicknames import (
    ChannelNameError,
    MAX_NICK_CHARS,
    NicknameError,
    Registry,
    RenameWindow,
    check_channel_name,
    check_nickname,
    name_key,
)
from chatd.core.remote import NodeState, Topic
from chatd.core.session import ISession
from chatd.core.turn import Turn

log = Logger()

DEFAULT_CHANNEL = "#lobby"
DEFAULT_MAX_CHANNELS = 1000
MAX_CHANNELS_PER_USER = 20
# Above this many members a channel summarises joins and leaves instead of
# announcing each (see README, "Big channels").
DEFAULT_QUIET_JOINS = 50
CROWD_SUMMARY_SECONDS = 5.0
# Logins logged one line each per summary period; past that, the period's
# summary counts the rest (a login storm of thousands is a few lines).
LOGIN_LINES_PER_PERIOD = 50

# Who an event is for: the members of one channel (its key), or of any of
# several (a user's leaving or renaming reaches everyone who shares a
# channel with them).
Audience = str | frozenset[str]


@define(eq=False)
class ChatServer:
    name: str
    clock: IReactorTime
    default_channel: str = DEFAULT_CHANNEL
    history_size: int = 0
    # Recent messages of each channel (by key), from before a restart.
    recent: Mapping[str, Iterable[Event]] = field(factory=dict)
    moderation: Moderation | None = None  # None: no --oper-password-file
    max_channels: int = DEFAULT_MAX_CHANNELS
    quiet_joins: int = DEFAULT_QUIET_JOINS
    bus: IBus = field(factory=LocalBus)
    # This node's name in a cluster (it settles a nickname two nodes gave at once).
    node: str = ""
    # Called with every event: the transcript.
    observers: list[Callable[[Event], None]] = field(factory=list)
    # The reactor turn, which this server begins whenever something happens
    # to it; None: every event goes out at once.
    turn: Turn | None = None

    # Every session that arrived and has not departed, logged in or not.
    _present: set[ISession] = field(init=False, factory=set)
    # Sessions that have chosen a nickname, in the order they did.
    _members: dict[ISession, Member] = field(init=False, factory=dict)
    # Users on other nodes of the cluster, by (node, nickname key).
    _remote: dict[tuple[str, str], Remote] = field(init=False, factory=dict)
    _nicknames: Registry[ISession | Remote] = field(init=False, factory=Registry)
    _renames: RenameWindow = field(init=False, factory=RenameWindow)
    _channels: dict[str, Channel] = field(init=False, factory=dict)
    _channel_names: Registry[Channel] = field(init=False, factory=Registry)
    # The history of channels that emptied (and of those in the transcript),
    # for when they are created again; the most recent max_channels kept.
    _dormant: OrderedDict[str, tuple[Event, ...]] = field(init=False, factory=OrderedDict)
    # Events waiting to be delivered: (event, audience, the member it is not for).
    _pending: list[tuple[Event, Audience, ISession | None]] = field(init=False, factory=list)
    # Members whose share of _pending starts later than its start: caught up or joined since.
    _caught_up: dict[ISession, int] = field(init=False, factory=dict)
    # This node's events for the bus, in the order they happened: every one
    # but the summaries (each node makes its own), quiet joins included.
    _outgoing: list[BusEvent] = field(init=False, factory=list)
    _publishing: bool = field(init=False, default=False)
    _crowd_call: IDelayedCall | None = field(init=False, default=None)
    _drops: int = field(init=False, default=0)  # sessions dropped for a failed delivery, ever
    # Counts for /metrics: messages said (public and private), and deliveries of a turn's share to a member.
    messages: int = field(init=False, default=0)
    deliveries: int = field(init=False, default=0)
    # Logins this summary period, logged one by one and not.
    _logins_logged: int = field(init=False, default=0)
    _logins_unlogged: int = field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        for key, events in self.recent.items():
            self._dormant[key] = tuple(events)
        self.default_channel = check_channel_name(self.default_channel)
        self._create_channel(self.default_channel)
        if self.turn is not None:
            self.turn.fan_out(self._publish)

    # -- queries

    @property
    def count(self) -> int:
        """How many users of this node have chosen a nickname."""
        return len(self._members)

    @property
    def everyone(self) -> int:
        """How many users are online, on this node and (in a cluster) the others."""
        return len(self._members) + len(self._remote)

    @property
    def channel_count(self) -> int:
        return len(self._channels)

    def nicks(self) -> list[str]:
        """Everyone online: this node's users, then other nodes'."""
        return [member.nick for member in self._members.values()] + [remote.nick for remote in self._remote.values()]

    def nick_of(self, session: ISession) -> str | None:
        member = self._members.get(session)
        return None if member is None else member.nick

    def current_channel(self, session: ISession) -> str | None:
        member = self._members.get(session)
        return None if member is None or member.current is None else member.current.name

    def channels_of(self, session: ISession) -> list[str]:
        """The names of the channels `session` is in, in the order joined."""
        member = self._members.get(session)
        return [] if member is None else [channel.name for channel in member.channels.values()]

    def online(self, nick: str) -> str | None:
        """The nickname, as its user has it, of whoever is online as `nick` (in any case); None if nobody is."""
        holder = self._nicknames.holder(nick)
        if isinstance(holder, Remote):
            return holder.nick
        member = self._members.get(holder) if holder is not None else None
        return None if member is None else member.nick

    def channel(self, name: str) -> Channel | None:
        """The channel called `name` ("#" optional, any case), if there is one."""
        return self._channels.get(name_key(name if name.startswith("#") else f"#{name}"))

    # -- from a front door

    def arrive(self, session: ISession) -> None:
        """A new session, not logged in yet."""
        self._present.add(session)

    def handle(self, session: ISession, command: commands.Command) -> None:
        """Carry out one command from `session`."""
        turn = self.turn
        if turn is not None and not turn.held:
            turn.begin()
        member = self._members.get(session)
        if member is None:
            self._handle_before_login(session, command)
        else:
            self._handle(member, command)

    def tell(self, session: ISession, *answers: object) -> None:
        """Send `session` replies (the core's or a front door's own), after what waits for it."""
        self._begin_turn()
        self._catch_up(session)
        session.send(answers)

    def depart(self, session: ISession, reason: str) -> None:
        """The session is gone (or going); it may never have logged in."""
        self._begin_turn()
        self._catch_up(session)
        self._present.discard(session)
        if self.moderation is not None:
            self.moderation.forget(session)
        member = self._members.pop(session, None)
        if member is None:
            return
        self._nicknames.release(member.nick, session)
        self._renames.forget(session)
        log.info("{nick} left ({reason})", nick=member.nick, reason=reason)
        told: set[str] = set()
        for channel in member.channels.values():
            if self._leave_channel(member, channel):
                told.add(channel.key)
        self._broadcast(Left(member.nick, reason, at=self.clock.seconds()), frozenset(told))

    # -- the rules

    def _handle_before_login(self, session: ISession, command: commands.Command) -> None:
        match command:
            case commands.LogIn(nick) | commands.Nick(nick):
                self._log_in(session, nick)
            case commands.Quit():
                self._bye(session)
            case commands.Names(None):
                self.tell(session, replies.UserList(tuple(self.nicks())))
            case commands.Channels():
                self.tell(session, self._channel_list())
            case _:
                self.tell(session, replies.Error("choose a nickname first", "not-logged-in"))

    def _handle(self, member: Member, command: commands.Command) -> None:
        session = member.session
        if type(command) is commands.Say:  # most lines: the hot path skips the match's walk through its cases
            self._speak(member, Said, command.text, command.channel)
            return
        match command:
            case commands.Act(text, channel):
                self._speak(member, Acted, text, channel)
            case commands.Msg(to_nick, text):
                self._private(member, to_nick, text)
            case commands.Join(channel):
                self._join(member, channel)
            case commands.Part(channel, reason):
                self._part(member, channel, reason)
            case commands.Topic(channel, text):
                self._topic(member, channel, text)
            case commands.Channels():
                self.tell(session, self._channel_list())
            case commands.Names(None):
                self.tell(session, replies.UserList(tuple(self.nicks())))
            case commands.Names(str(name)):
                self._names(member, name)
            case commands.Nick(nick) | commands.LogIn(nick):
                self._rename(member, nick)
            case commands.Quit(reason):
                self.depart(session, reason)
                self._bye(session)
            case commands.Oper() | commands.Kick() | commands.Ban() | commands.Unban() | commands.Bans():
                self._moderate(member, command)
            case _:
                raise TypeError(f"the server does not handle {command!r}")

    def _speak(self, member: Member, kind: type[Said] | type[Acted], text: str, channel: str | None) -> None:
        target = self._target(member, channel)
        if target is not None:
            self.messages += 1
            self._broadcast(kind(target.name, member.nick, text, at=self.clock.seconds()), target.key, member.session,
                            target)

    def _log_in(self, session: ISession, wanted: str) -> None:
        nick = self._available_nickname(session, wanted)
        if nick is None:
            return
        member = self._members[session] = Member(session, nick)
        self._nicknames.claim(nick, session)
        lobby = self._channels[name_key(self.default_channel)]
        self._caught_up[session] = len(self._pending)  # what was said before they came is not for them
        self._add_member(member, lobby)
        if self._logins_logged < LOGIN_LINES_PER_PERIOD:
            self._logins_logged += 1
            log.info("{nick} joined ({count} online) from {address}", nick=nick, count=self.count,
                     address=session.address)
        else:
            self._logins_unlogged += 1
        self._summarise_later()
        self.tell(session, replies.LoggedIn(nick, lobby.name, lobby.history.recent()))
        self._announce_join(member, lobby)

    def _target(self, member: Member, name: str | None) -> Channel | None:
        """The channel a message goes to: the named one (which the member must be in), or their current one."""
        if name is None:
            if member.current is None:
                self.tell(member.session, replies.Error("you are in no channel; /join a channel first", "no-channel"))
            return member.current
        channel = self.channel(name)
        if channel is None or member.session not in channel.members:
            shown = name if name.startswith("#") else f"#{name}"
            self.tell(member.session, replies.Error(f"you are not in {shown}", "not-in-channel"))
            return None
        return channel

    def _join(self, member: Member, wanted: str) -> None:
        session = member.session
        try:
            name = check_channel_name(wanted)
        except ChannelNameError as refusal:
            self.tell(session, replies.Error(str(refusal), "bad-channel-name"))
            return
        channel = self._channels.get(name_key(name))
        if channel is not None and session in channel.members:
            if not self._caught_up_with(member):  # what waits for them reads as from where they were
                return
            member.current = channel
            member.update_view()
            self.tell(session, replies.NowTalkingIn(channel.name))
            return
        if len(member.channels) >= MAX_CHANNELS_PER_USER:
            self.tell(session, replies.Error(
                f"you are in {MAX_CHANNELS_PER_USER} channels, the most one user may be in; /part one first",
                "too-many-joined"))
            return
        if channel is None:
            clash = self._channel_names.clash(name, None)
            if clash is not None:
                self.tell(session, replies.Error(f"channel name is taken: {name} (it looks like {clash})",
                                                 "channel-taken"))
                return
            if len(self._channels) >= self.max_channels:
                self.tell(session, replies.Error(
                    f"this server has {self.max_channels} channels, its most; join one of them", "too-many-channels"))
                return
        if not self._caught_up_with(member):
            return
        if channel is None:
            channel = self._create_channel(name)
        self._add_member(member, channel)
        log.info("{nick} joined {channel} ({count} in it)", nick=member.nick, channel=channel.name,
                 count=channel.count)
        self.tell(session, replies.ChannelJoined(channel.name, channel.count, channel.topic, channel.history.recent()))
        self._announce_join(member, channel)

    def _part(self, member: Member, name: str | None, reason: str) -> None:
        channel = self._target(member, name)
        if channel is None:
            return
        session = member.session
        if not self._caught_up_with(member):
            return
        del member.channels[channel.key]
        if member.current is channel:
            member.current = next(reversed(member.channels.values()), None)
        member.update_view()
        log.info("{nick} left {channel}{reason}", nick=member.nick, channel=channel.name,
                 reason=f" ({reason})" if reason else "")
        self.tell(session, replies.ChannelParted(channel.name, None if member.current is None else member.current.name))
        parted = Parted(channel.name, member.nick, reason, channel.count - 1, at=self.clock.seconds())
        self._broadcast(parted, channel.key if self._leave_channel(member, channel) else frozenset())

    def _topic(self, member: Member, name: str | None, text: str | None) -> None:
        channel = self._target(member, name)
        if channel is None:
            return
        if text is None or (not text and not channel.topic):
            self.tell(member.session, replies.TopicShown(channel.name, channel.topic, channel.topic_by, channel.topic_at))
            return
        channel.topic, channel.topic_by, channel.topic_at = text, member.nick, self.clock.seconds()
        log.info("{nick} set the topic of {channel}", nick=member.nick, channel=channel.name)
        self._broadcast(TopicChanged(channel.name, member.nick, text, at=self.clock.seconds()), channel.key)

    def _names(self, member: Member, name: str) -> None:
        channel = self.channel(name)
        if channel is None:
            self.tell(member.session, replies.Error(f"no such channel: {name}", "no-such-channel"))
            return
        self.tell(member.session, replies.ChannelMembers(channel.name, tuple(channel.nicks())))

    def _channel_list(self) -> replies.ChannelList:
        return replies.ChannelList(tuple(
            replies.ChannelInfo(channel.name, channel.count, channel.topic) for channel in self._channels.values()))

    def _rename(self, member: Member, wanted: str) -> None:
        session, old = member.session, member.nick
        new = self._available_nickname(session, wanted)
        if new is None:
            return
        if new == old:
            self.tell(session, replies.Error(f"you are already {old}", "same-nickname"))
            return
        now = self.clock.seconds()
        wait = self._renames.wait(session, now)
        if wait:
            self.tell(session, replies.Error(f"too many nickname changes, wait {math.ceil(wait)} s", "rename-too-soon"))
            return
        self._renames.renamed(session, now)
        self._change_nick(member, new)

    def _change_nick(self, member: Member, new: str) -> None:
        old, session = member.nick, member.session
        self._nicknames.release(old, session)
        self._nicknames.claim(new, session)
        member.nick = new
        log.info("{old} is now {new}", old=old, new=new)
        renamed = Renamed(old, new, at=self.clock.seconds())
        if member.channels:
            self._broadcast(renamed, member.view[0])
        else:  # in no channel: only they hear of it
            self._broadcast(renamed, frozenset())
            if self._caught_up_with(member):
                self._deliver_isolated(member, Share(Batch([renamed]), [(0, 1)], None))

    def _available_nickname(self, session: ISession, wanted: str) -> str | None:
        """`wanted` as a valid nickname no one else holds or resembles; else None, and `session` is told why."""
        try:
            nick = check_nickname(wanted)
        except NicknameError as refusal:
            self.tell(session, replies.Error(str(refusal), "bad-nickname"))
            return None
        clash = self._nicknames.clash(nick, session)
        if clash is None:
            return nick
        looks_like = "" if name_key(clash) == name_key(nick) else f" (it looks like {clash})"
        self.tell(session, replies.Error(f"nickname is taken: {nick}{looks_like}", "nickname-taken"))
        return None

    def _private(self, member: Member, to_nick: str, text: str) -> None:
        holder = self._nicknames.holder(to_nick)
        if isinstance(holder, Remote):  # their node delivers it
            self.messages += 1
            self._send_on(Whispered(member.nick, holder.nick, text, at=self.clock.seconds()))
            self.tell(member.session, replies.PrivateSent(holder.nick, text))
            return
        recipient = self._members.get(holder) if holder is not None else None
        if recipient is None:
            self.tell(member.session, replies.Error(f"no such nick: {to_nick}", "no-such-nick"))
            return
        self.messages += 1
        if self._caught_up_with(recipient):
            self._send_isolated(recipient, replies.PrivateReceived(member.nick, text))
        self.tell(member.session, replies.PrivateSent(recipient.nick, text))

    def _bye(self, session: ISession) -> None:
        self.tell(session, replies.Bye())
        session.disconnect("quit")

    # -- channels

    def _create_channel(self, name: str) -> Channel:
        key = name_key(name)
        recent = self._dormant.pop(key, ())
        channel = self._channels[key] = Channel(name, History(self.history_size, recent))
        self._channel_names.claim(name, channel)
        return channel

    def _add_member(self, member: Member, channel: Channel) -> None:
        channel.members[member.session] = member
        member.channels[channel.key] = channel
        member.current = channel
        member.update_view()

    def _announce_join(self, member: Member, channel: Channel) -> None:
        if channel.count > self.quiet_joins:
            channel.quiet_joins += 1
            channel.note_turnover(member.session, member.nick)
            self._summarise_later()
            self._broadcast(Joined(channel.name, member.nick, channel.count, at=self.clock.seconds()), frozenset())
        else:
            self._broadcast(Joined(channel.name, member.nick, channel.count, at=self.clock.seconds()),
                            channel.key, member.session)

    def _leave_channel(self, member: Member, channel: Channel) -> bool:
        """
        Take `member` out of `channel` (the member keeps its own record);
        True if the channel's members are to be told one by one.
        """
        loud = channel.count <= self.quiet_joins
        del channel.members[member.session]
        return self._after_leaving(channel, member.session, member.nick, loud)

    def _after_leaving(self, channel: Channel, who: ISession | Remote, nick: str, loud: bool) -> bool:
        """`who` (as `nick`) has left `channel`: count them if that is not announced; `loud` if the channel lives on."""
        if not loud:
            channel.quiet_leaves += 1
            channel.note_turnover(who, nick)
            self._summarise_later()
        if not channel.count and channel.name != self.default_channel:
            del self._channels[channel.key]
            self._channel_names.release(channel.name, channel)
            self._dormant[channel.key] = channel.history.recent()
            while len(self._dormant) > self.max_channels:
                self._dormant.popitem(last=False)
            return False
        return loud

    def _summarise_later(self) -> None:
        if self._crowd_call is None:
            self._crowd_call = self.clock.callLater(CROWD_SUMMARY_SECONDS, self._summarise)

    def _summarise(self) -> None:
        """One line per busy channel for the joins and leaves not announced one by one; the same for the log."""
        self._crowd_call = None
        self._log_uncounted_logins()
        for channel in list(self._channels.values()):
            if channel.quiet_joins or channel.quiet_leaves:
                joined, left = channel.quiet_joins, channel.quiet_leaves
                # Of those who came or went: who is in now (by their nickname
                # now), and every name they came or went by that no member has now.
                joiners = tuple(nick for who in channel.turnover if (nick := channel.nick_of(who)) is not None)
                present = set(channel.nicks())
                leavers = tuple(sorted((set(channel.turnover.values()) | channel.turnover_names) - present))
                channel.quiet_joins = channel.quiet_leaves = 0
                channel.turnover, channel.turnover_names = {}, set()
                self._broadcast(Crowd(channel.name, joined, left, channel.count, joiners, leavers,
                                      at=self.clock.seconds()), channel.key)

    def _log_uncounted_logins(self) -> None:
        if self._logins_unlogged:
            count = self._logins_unlogged
            log.info("{more} joined ({online} online)", more=f"{count} more user{'' if count == 1 else 's'}",
                     online=self.count)
        self._logins_logged = self._logins_unlogged = 0

    def stop(self) -> None:
        """The server is shutting down: no summary is left waiting, and the log counts every login."""
        if self._crowd_call is not None and self._crowd_call.active():
            self._crowd_call.cancel()
        self._crowd_call = None
        self._log_uncounted_logins()

    # -- the cluster: other nodes' events and states, from the bus

    def receive(self, events: Iterable[BusEvent]) -> None:
        """
        Other nodes' events (each with its `origin`), in the order they
        happened there: this node's users see them as they see their own,
        in one turn.
        """
        self._begin_turn()
        for event in events:
            try:
                self._apply(event)
            except Exception:
                log.failure("applying {event} from {node} failed", event=event, node=event.origin)

    def recall(self, events: Iterable[BusEvent]) -> None:
        """Messages said before this node joined its cluster, oldest first: kept in their channels' history."""
        for event in events:
            if isinstance(event, (Said, Acted)):
                channel = self.channel(event.channel)
                if channel is not None:
                    channel.history.record(event)
                else:
                    key = name_key(event.channel)
                    self._dormant[key] = History(self.history_size, (*self._dormant.get(key, ()), event)).recent()
        while len(self._dormant) > self.max_channels:
            self._dormant.popitem(last=False)

    def state(self) -> NodeState:
        """What this node has: its users and their channels, and the topics."""
        return NodeState(
            tuple((member.nick, tuple(channel.name for channel in member.channels.values()))
                  for member in self._members.values()),
            tuple(Topic(channel.name, channel.topic, channel.topic_by, channel.topic_at)
                  for channel in self._channels.values() if channel.topic),
            () if self.moderation is None else tuple(self.moderation.in_force()))

    def adopt(self, node: str, state: NodeState, reason: str = "Left the chat") -> None:
        """
        What `node` has now, as it says: this node's users are told what
        changed since it last knew (users gone, with `reason`; users come,
        channels joined and left); its topics and bans are taken too.
        """
        self._begin_turn()
        now = self.clock.seconds()
        wanted = {name_key(nick): (nick, names) for nick, names in state.users}
        gone = [remote for (owner, key), remote in self._remote.items() if owner == node and key not in wanted]
        for remote in gone:
            self._apply(Left(remote.nick, reason, at=now, origin=node))
        for nick, names in wanted.values():
            remote = self._remote_user(node, nick)
            keys = {name_key(name) for name in names}
            for channel in [channel for key, channel in remote.channels.items() if key not in keys]:
                self._apply(Parted(channel.name, nick, "", channel.count - 1, at=now, origin=node))
            for name in names:
                if name_key(name) not in remote.channels:
                    known = self.channel(name)
                    self._apply(Joined(name, nick, 1 if known is None else known.count + 1, at=now, origin=node))
        moderation = self.moderation
        for address, until in state.bans:
            if moderation is not None and not moderation.is_banned(address):
                moderation.ban_until(address, until)
                for present in [present for present in self._present if present.address == address]:
                    self._remove(present, replies.Error("you are banned from this server", "banned"), "Banned")
        for topic in state.topics:
            where = self.channel(topic.channel)
            if where is not None and topic.at >= where.topic_at:
                where.topic, where.topic_by, where.topic_at = topic.text, topic.by, topic.at

    def lose_node(self, node: str, reason: str = "Server lost") -> None:
        """`node` is gone: its users leave every channel, and their nicknames are free."""
        self._begin_turn()
        now = self.clock.seconds()
        for key in [key for key in self._remote if key[0] == node]:
            self._apply(Left(self._remote[key].nick, reason, at=now, origin=node))

    def nodes(self) -> set[str]:
        """The other nodes this node knows users of."""
        return {node for node, _ in self._remote}

    def tell_everyone(self, *answers: object) -> None:
        """Send every user of this node these replies."""
        self._begin_turn()
        for member in list(self._members.values()):
            if self._caught_up_with(member):
                self._send_isolated(member, *answers)

    def _apply(self, event: BusEvent) -> None:
        if type(event) is Said or type(event) is Acted:  # most events: the hot path skips the match
            channel = self._known_channel(event.channel)
            self._broadcast(event, channel.key, None, channel)
            return
        match event:
            case Joined():
                self._remote_joined(event)
            case Parted():
                self._remote_parted(event)
            case Left():
                self._remote_left(event)
            case Renamed():
                self._remote_renamed(event)
            case TopicChanged(name, nick, topic):
                channel = self._known_channel(name)
                channel.topic, channel.topic_by, channel.topic_at = topic, nick, event.at
                self._broadcast(event, channel.key)
            case Whispered(nick, to, text):
                recipient = self._local_member(to)
                if recipient is not None and self._caught_up_with(recipient):
                    self._send_isolated(recipient, replies.PrivateReceived(nick, text))
            case Banned():
                self._remote_banned(event)
            case Unbanned(address) if self.moderation is not None:
                self.moderation.unban(address)
            case KickOrdered(nick, by, reason):
                target = self._local_member(nick)
                if target is not None:
                    log.info("{by} on {node} kicked {target}", by=by, node=event.origin, target=target.nick)
                    self._remove(target.session, replies.KickedOut(by, reason),
                                 f"Kicked by {by}" + (f": {reason}" if reason else ""))

    def _remote_joined(self, event: Joined) -> None:
        remote = self._remote_user(event.origin, event.nick)
        channel = self._known_channel(event.channel)
        if channel.key in remote.channels:
            return
        remote.channels[channel.key] = channel
        channel.elsewhere[remote] = None
        if channel.count > self.quiet_joins:
            channel.quiet_joins += 1
            channel.note_turnover(remote, remote.nick)
            self._summarise_later()
            self._record(event, None)
        else:
            self._broadcast(event, channel.key)

    def _remote_parted(self, event: Parted) -> None:
        remote = self._remote.get((event.origin, name_key(event.nick)))
        channel = None if remote is None else remote.channels.pop(name_key(event.channel), None)
        if remote is None or channel is None:
            return
        loud = channel.count <= self.quiet_joins
        del channel.elsewhere[remote]
        self._broadcast(event, channel.key if self._after_leaving(channel, remote, remote.nick, loud) else frozenset())

    def _remote_left(self, event: Left) -> None:
        remote = self._remote.pop((event.origin, name_key(event.nick)), None)
        if remote is None:
            return
        self._nicknames.release(remote.nick, remote)
        told: set[str] = set()
        for channel in remote.channels.values():
            loud = channel.count <= self.quiet_joins
            del channel.elsewhere[remote]
            if self._after_leaving(channel, remote, remote.nick, loud):
                told.add(channel.key)
        self._broadcast(event, frozenset(told))

    def _remote_renamed(self, event: Renamed) -> None:
        remote = self._remote.pop((event.origin, name_key(event.old)), None)
        if remote is None:
            return
        self._nicknames.release(event.old, remote)
        remote.nick = event.new
        self._remote[event.origin, name_key(event.new)] = remote
        self._claim(remote)
        self._broadcast(event, frozenset(remote.channels))

    def _remote_banned(self, event: Banned) -> None:
        if self.moderation is None:
            return
        holder = self._nicknames.holder(event.target)
        if isinstance(holder, Remote):
            return  # their node bans their address and says which
        if holder is not None:
            address = holder.address
            self._send_on(Banned(address, event.minutes, event.by, at=event.at))
        else:
            try:
                address = str(ipaddress.ip_address(event.target))
            except ValueError:
                return
        log.info("{by} on {node} banned {address} ({minutes:g} minutes)", by=event.by, node=event.origin,
                 address=address, minutes=event.minutes)
        self._ban_address(address, event.minutes, event.by, self.moderation)

    def _local_member(self, nick: str) -> Member | None:
        holder = self._nicknames.holder(nick)
        return None if holder is None or isinstance(holder, Remote) else self._members.get(holder)

    def _known_channel(self, name: str) -> Channel:
        """The channel called `name`, made if this node has not had it (another node has)."""
        return self._channels.get(name_key(name)) or self._create_channel(name)

    def _remote_user(self, node: str, nick: str) -> Remote:
        remote = self._remote.get((node, name_key(nick)))
        if remote is None:
            remote = self._remote[node, name_key(nick)] = Remote(node, nick)
            self._claim(remote)
        return remote

    def _claim(self, remote: Remote) -> None:
        """
        Hold `remote`'s nickname here.  Two nodes may give the same (or a
        look-alike) nickname at the same moment, or while apart: the user
        of the node whose name sorts last then takes another, on every node.
        """
        clash = self._nicknames.clash(remote.nick, remote)
        holder = None if clash is None else self._nicknames.holder(clash)
        if isinstance(holder, Remote):
            if holder.node < remote.node:
                return  # theirs is renamed by their node
        elif holder is not None:
            member = self._members.get(holder)
            if member is not None:
                if self.node < remote.node:
                    return  # theirs is renamed by their node
                self._give_way(member)
        self._nicknames.claim(remote.nick, remote)

    def _give_way(self, member: Member) -> None:
        """`member`'s nickname went to a user of another node at the same moment: they take the next free one."""
        old = member.nick
        for number in range(2, 1000):
            suffix = str(number)
            wanted = old[:MAX_NICK_CHARS - len(suffix)] + suffix
            if self._nicknames.clash(wanted, member.session) is None:
                break
        self.tell(member.session, replies.Error(
            f"{old} was given to a user of another server at the same moment; you are now {wanted}", "nickname-taken"))
        self._change_nick(member, wanted)

    # -- moderation

    def _moderate(self, member: Member, command: commands.Command) -> None:
        session, nick = member.session, member.nick
        moderation = self.moderation
        if moderation is None:
            self.tell(session, replies.Error("moderation is off on this server", "no-moderation"))
            return
        if isinstance(command, commands.Oper):
            refusal = moderation.try_password(session, session.address, command.password)
            if refusal is None:
                log.info("{nick} from {address} is now an operator", nick=nick, address=session.address)
                self.tell(session, replies.OperatorNow())
            else:
                log.warn("failed /oper by {nick} from {address}", nick=nick, address=session.address)
                self.tell(session, replies.Error(refusal, "wrong-password"))
            return
        if not moderation.is_operator(session):
            self.tell(session, replies.Error("you are not an operator", "not-operator"))
            return
        match command:
            case commands.Kick(target_nick, reason):
                holder = self._nicknames.holder(target_nick)
                if isinstance(holder, Remote):  # their node kicks them
                    log.info("{nick} kicked {target}", nick=nick, target=holder.nick)
                    self._send_on(KickOrdered(holder.nick, nick, reason, at=self.clock.seconds()))
                    return
                target = self._members.get(holder) if holder is not None else None
                if target is None:
                    self.tell(session, replies.Error(f"no such nick: {target_nick}", "no-such-nick"))
                    return
                log.info("{nick} kicked {target}", nick=nick, target=target.nick)
                left_reason = f"Kicked by {nick}" + (f": {reason}" if reason else "")
                self._remove(target.session, replies.KickedOut(nick, reason), left_reason)
            case commands.Ban(target, minutes):
                self._ban(member, target, minutes, moderation)
            case commands.Unban(address):
                if moderation.unban(address):
                    self._send_on(Unbanned(address, at=self.clock.seconds()))
                    self.tell(session, replies.BanLifted(address))
                else:
                    self.tell(session, replies.Error(f"not banned: {address}", "not-banned"))
            case commands.Bans():
                self.tell(session, replies.BanList(tuple(moderation.bans())))

    def _ban(self, member: Member, target: str, minutes: float, moderation: Moderation) -> None:
        session = member.session
        holder = self._nicknames.holder(target)
        if isinstance(holder, Remote):  # their node knows the address, bans it and tells the others
            log.info("{nick} banned {target} ({minutes:g} minutes)", nick=member.nick, target=holder.nick,
                     minutes=minutes)
            self._send_on(Banned(holder.nick, minutes, member.nick, at=self.clock.seconds()))
            self.tell(session, replies.BanAdded(holder.nick, minutes))
            return
        if holder is not None:
            address = holder.address
        else:
            try:
                address = str(ipaddress.ip_address(target))
            except ValueError:
                self.tell(session, replies.Error(f"no such nick or address: {target}", "no-such-nick"))
                return
        if address == session.address:
            self.tell(session, replies.Error("that is your own address", "own-address"))
            return
        log.info("{nick} banned {address} ({minutes:g} minutes)", nick=member.nick, address=address, minutes=minutes)
        self._send_on(Banned(address, minutes, member.nick, at=self.clock.seconds()))
        self.tell(session, replies.BanAdded(address, minutes))
        self._ban_address(address, minutes, member.nick, moderation)

    def _ban_address(self, address: str, minutes: float, by: str, moderation: Moderation) -> None:
        moderation.ban(address, minutes)
        for present in [present for present in self._present if present.address == address]:
            self._remove(present, replies.Error("you are banned from this server", "banned"), f"Banned by {by}")

    def _remove(self, session: ISession, notice: object, reason: str) -> None:
        """Take `session` out: the others see `reason`; it gets `notice` and is disconnected."""
        self.depart(session, reason)
        try:
            session.send((notice,))
            session.disconnect(reason)
        except Exception:
            log.failure("removing a session failed")

    # -- fan-out

    def _begin_turn(self) -> None:
        turn = self.turn
        if turn is not None and not turn.held:
            turn.begin()

    def _waits(self) -> bool:
        """Whether events wait for the end of the turn (or go out at once)."""
        turn = self.turn
        return turn is not None and turn.held

    def _catch_up(self, session: ISession) -> None:
        """Deliver to `session` now what waits for it, so what comes next reaches it in order."""
        member = self._members.get(session)
        if member is None:
            return
        pending = self._pending
        start, end = self._caught_up.get(session, 0), len(pending)
        if start < end:
            self._caught_up[session] = end  # first: a failing delivery drops the member, who is then caught up
            own = [index for index in range(start, end) if pending[index][2] is session]
            runs = without(_runs_for(pending, member.view[0], start), own)
            if runs:
                self._deliver_isolated(member, Share(Batch([event for event, _, _ in pending]), runs, member.view[1]))

    def _caught_up_with(self, member: Member) -> bool:
        """Catch `member` up; False if that failed and the member is gone."""
        self._catch_up(member.session)
        return self._members.get(member.session) is member

    def _broadcast(self, event: Event, audience: Audience, exclude: ISession | None = None,
                   channel: Channel | None = None) -> None:
        """
        Record `event` (in `channel`'s history, if given) and deliver it to
        the members of `audience` here but `exclude`; an event of this node
        also goes on to the bus.
        """
        self._record(event, channel)
        if audience:
            self._pending.append((event, audience, exclude))
        if not self._waits():
            self._publish()

    def _send_on(self, event: BusEvent) -> None:
        """`event` for the bus only: for other nodes to act on."""
        self._outgoing.append(event)
        if not self._waits():
            self._publish()

    def _publish(self) -> None:
        """
        Hand this node's events to the bus, then deliver the events that
        wait, each member's in one delivery.  The bus first: the other
        nodes' users then get them while this node's are being served.
        """
        if self._publishing:
            return  # the loop below gets to what was added meanwhile
        self._publishing = True
        try:
            while self._pending or self._outgoing:
                if self._outgoing:
                    outgoing, self._outgoing = self._outgoing, []
                    self.bus.publish(outgoing)
                if self._pending:
                    pending, caught_up = self._pending, self._caught_up
                    self._pending, self._caught_up = [], {}
                    self._fan_out(pending, caught_up)
        finally:
            self._publishing = False

    def _fan_out(self, pending: list[tuple[Event, Audience, ISession | None]], caught_up: dict[ISession, int]) -> None:
        batch = Batch([event for event, _, _ in pending])
        touched: set[str] = set()
        sent_by: dict[ISession, list[int]] = {}
        for index, (_, audience, sender) in enumerate(pending):
            if isinstance(audience, str):
                touched.add(audience)
            else:
                touched.update(audience)
            if sender is not None:
                sent_by.setdefault(sender, []).append(index)
        recipients: list[Member] = []
        for key in touched:
            channel = self._channels.get(key)
            if channel is not None:
                recipients.extend(channel.members.values())
        if len(touched) > 1:  # a member of several of them gets one share
            recipients = list({id(member): member for member in recipients}.values())
        # One share per view, for every member with that view who neither
        # sent any of these events nor joined or caught up during the turn.
        shares: dict[tuple[frozenset[str], str | None], Share] = {}
        members, drops = self._members, self._drops
        for member in recipients:
            session = member.session
            # A member dropped by a failed delivery earlier in this loop is skipped.
            if self._drops != drops and members.get(session) is not member:
                continue
            view = member.view
            share = shares.get(view)
            if share is None:
                share = shares[view] = Share(batch, _runs_for(pending, view[0], 0), view[1])
            if session in sent_by or (caught_up and session in caught_up):
                runs = without(from_index(share.runs, caught_up.get(session, 0)), sent_by.get(session, []))
                share = Share(batch, runs, view[1])
            if share.runs:
                self._deliver_isolated(member, share)

    def _record(self, event: Event, channel: Channel | None) -> None:
        if channel is not None:
            channel.history.record(event)
        if not event.origin and type(event) is not Crowd:
            self._outgoing.append(event)
        for observer in self.observers:
            try:
                observer(event)
            except Exception:
                log.failure("recording {event} failed", event=event)

    def _deliver_isolated(self, member: Member, share: Share) -> None:
        """
        Deliver to a member other than the one whose command is being
        handled: if that fails, the failure is that member's alone, so it is
        logged and that member dropped, and the caller goes on.
        """
        self.deliveries += 1
        try:
            member.session.deliver(share)
        except Exception:
            log.failure("delivery to {nick} failed; dropping the connection", nick=member.nick)
            self._drop(member.session)

    def _send_isolated(self, member: Member, *answers: object) -> None:
        try:
            member.session.send(answers)
        except Exception:
            log.failure("delivery to {nick} failed; dropping the connection", nick=member.nick)
            self._drop(member.session)

    def _drop(self, session: ISession) -> None:
        self._drops += 1
        try:
            session.disconnect("delivery failed")
        except Exception:
            log.failure("disconnecting a session failed")
        self.depart(session, "Connection lost")


def _runs_for(pending: list[tuple[Event, Audience, ISession | None]], channels: frozenset[str], start: int) -> Runs:
    """The [from, to) runs of pending[start:] whose audience includes a member of `channels`."""
    runs: Runs = []
    run_start = -1
    for index in range(start, len(pending)):
        audience = pending[index][1]
        if audience in channels if isinstance(audience, str) else not audience.isdisjoint(channels):
            if run_start < 0:
                run_start = index
        elif run_start >= 0:
            runs.append((run_start, index))
            run_start = -1
    if run_start >= 0:
        runs.append((run_start, len(pending)))
    return runs
