"""
Channels' rules: joining (made on the first join, whose maker is its
operator; at most --max-channels on a server and MAX_CHANNELS_PER_USER
for a user, look-alike names refused; past the channel's modes), parting
(a channel emptied goes, but the default one), topics, a channel's names
and the channel list (secret channels only to their members).  Pure.

The state is the roster's (chatd.core.roster); what is announced goes
through the fan-out (chatd.core.fanout) and, in big channels, the crowd
(chatd.core.crowd).
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatd.core import replies
from chatd.core.channel import Channel, Member
from chatd.core.crowd import Crowd
from chatd.core.events import Parted, TopicChanged
from chatd.core.fanout import FanOut
from chatd.core.nicknames import ChannelNameError, check_channel_name, name_key
from chatd.core.operators import Operators
from chatd.core.roster import Roster
from chatd.core.session import ISession

log = Logger()

MAX_CHANNELS_PER_USER = 20


def members_for(session: ISession, channel: Channel) -> tuple[str, ...]:
    """A channel's members, for a session whose door shows them on joining (see ISession.lists_members)."""
    return tuple(channel.listed_for(session)) if session.lists_members else ()


class Channels:
    """Carries out a member's channel commands."""

    def __init__(self, clock: IReactorTime, roster: Roster, fan_out: FanOut, crowd: Crowd, operators: Operators,
                 max_channels: int, tell: Callable[..., None], account_of: Callable[[ISession], str],
                 keep: Callable[[Channel], None]) -> None:
        self._clock = clock
        self._roster = roster
        self._fan_out = fan_out
        self._crowd = crowd
        self._operators = operators
        self._max_channels = max_channels
        self._tell = tell  # replies to the member whose command this is
        self._account_of = account_of  # the account a session identified for ("": none)
        self._keep = keep  # a founder's channel's modes, to the store

    def find(self, member: Member, name: str | None) -> Channel | None:
        """The channel named (the member need not be in it), or their current one; None, and they are told why."""
        if name is None:
            return self.target(member, None)
        channel = self._roster.channel(name)
        if channel is None:
            shown = name if name.startswith("#") else f"#{name}"
            self._tell(member.session, replies.Error(f"no such channel: {shown}", "no-such-channel", shown))
        return channel

    def speech_target(self, member: Member, name: str | None) -> Channel | None:
        """The channel a message goes to: as `target`, or a -n one the member is not in (external messages)."""
        if name is not None:
            channel = self._roster.channel(name)
            if channel is not None and (member.session in channel.members or "n" not in channel.modes.flags):
                return channel
        return self.target(member, name)  # the current one; or None, and they are told why

    def target(self, member: Member, name: str | None) -> Channel | None:
        """The channel a message goes to: the named one (which the member must be in), or their current one."""
        if name is None:
            if member.current is None:
                self._tell(member.session, replies.Error("you are in no channel; join one first", "no-channel"))
            return member.current
        channel = self._roster.channel(name)
        shown = name if name.startswith("#") else f"#{name}"
        if channel is None:
            self._tell(member.session, replies.Error(f"no such channel: {shown}", "no-such-channel", shown))
            return None
        if member.session not in channel.members:
            self._tell(member.session, replies.Error(f"you are not in {shown}", "not-in-channel", shown))
            return None
        return channel

    def join(self, member: Member, wanted: str, key: str = "") -> None:
        session, roster = member.session, self._roster
        try:
            name = check_channel_name(wanted)
        except ChannelNameError as bad_name:
            self._tell(session, replies.Error(str(bad_name), "bad-channel-name", wanted))
            return
        channel = roster.channels.get(name_key(name))
        if channel is not None and session in channel.members:
            if not self._fan_out.caught_up_with(member):  # what waits for them reads as from where they were
                return
            member.current = channel
            member.update_view()
            self._tell(session, replies.NowTalkingIn(channel.name))
            return
        if len(member.channels) >= MAX_CHANNELS_PER_USER:
            self._tell(session, replies.Error(
                f"you are in {MAX_CHANNELS_PER_USER} channels, the most one user may be in; part one first",
                "too-many-joined", name))
            return
        if channel is None:
            clash = roster.channel_names.clash(name, None)
            if clash is not None:
                self._tell(session, replies.Error(f"channel name is taken: {name} (it looks like {clash})",
                                                 "channel-taken", name))
                return
            if len(roster.channels) >= self._max_channels:
                self._tell(session, replies.Error(
                    f"this server has {self._max_channels} channels, its most; join one of them", "too-many-channels",
                    name))
                return
            if name_key(name) in roster.kept_modes:  # a founder's channel, made again: its modes apply at once
                channel = roster.create_channel(name)
        if channel is not None:
            refusal = self._operators.join_refusal(member, channel, key)
            if refusal is not None:
                self._crowd.close_if_empty(channel)
                self._tell(session, refusal)
                return
        if not self._fan_out.caught_up_with(member):
            return
        account = self._account_of(session)
        if channel is None:
            channel = roster.create_channel(name)
            modes = channel.modes
            if not modes.founder:  # new: who makes it is its operator, and, identified, its founder (kept)
                modes.created_at, modes.founder = self._clock.seconds(), account
                channel.ranks[session] = "@"
                if account:
                    self._keep(channel)
        if channel.modes.founder and channel.modes.founder == account:
            channel.ranks[session] = "@"
        channel.modes.invited.discard(name_key(member.nick))
        roster.add_member(member, channel)
        log.info("{nick} joined {channel} ({count} in it)", nick=member.nick, channel=channel.name,
                 count=channel.count)
        self._tell(session, replies.ChannelJoined(channel.name, channel.count, channel.topic, channel.history.recent(),
                                                 members_for(session, channel), channel.topic_by, channel.topic_at,
                                                 "s" in channel.modes.flags))
        self._crowd.announce_join(member, channel, account)

    def part(self, member: Member, name: str | None, reason: str) -> None:
        channel = self.target(member, name)
        if channel is None or not self._fan_out.caught_up_with(member):
            return
        del member.channels[channel.key]
        if member.current is channel:
            member.current = next(reversed(member.channels.values()), None)
        member.update_view()
        log.info("{nick} left {channel}{reason}", nick=member.nick, channel=channel.name,
                 reason=f" ({reason})" if reason else "")
        self._tell(member.session, replies.ChannelParted(
            channel.name, None if member.current is None else member.current.name, reason))
        parted = Parted(channel.name, member.nick, reason, channel.count - 1, at=self._clock.seconds())
        self._fan_out.broadcast(parted, channel.comings if self.leave(member, channel) else frozenset())

    def leave(self, member: Member, channel: Channel) -> bool:
        """Take `member` out of `channel` (the member keeps its own record); True if its members are told."""
        loud = self._crowd.is_loud(channel)
        del channel.members[member.session]
        channel.ranks.pop(member.session, None)
        return self._crowd.left(channel, member.session, member.nick, loud)

    def topic(self, member: Member, name: str | None, text: str | None) -> None:
        channel = self.target(member, name)
        if channel is None:
            return
        if text is None or (not text and not channel.topic):
            self._tell(member.session, replies.TopicShown(channel.name, channel.topic, channel.topic_by,
                                                         channel.topic_at))
            return
        refusal = self._operators.topic_refusal(member, channel)
        if refusal is not None:
            self._tell(member.session, refusal)
            return
        channel.topic, channel.topic_by, channel.topic_at = text, member.nick, self._clock.seconds()
        log.info("{nick} set the topic of {channel}", nick=member.nick, channel=channel.name)
        self._fan_out.broadcast(TopicChanged(channel.name, member.nick, text, at=self._clock.seconds()), channel.key)

    def names(self, member: Member, name: str) -> None:
        """A channel's members, with their ranks; a secret one's only to its members."""
        channel = self._roster.channel(name)
        if channel is None or not self.visible(channel, member.session):
            self._tell(member.session, replies.Error(f"no such channel: {name}", "no-such-channel", name))
            return
        self._tell(member.session, replies.ChannelMembers(channel.name, tuple(channel.listed_for(member.session)),
                                                          "s" in channel.modes.flags))

    def listing(self, session: ISession | None) -> replies.ChannelList:
        """The channels (a secret one only to its members)."""
        return replies.ChannelList(tuple(replies.ChannelInfo(channel.name, channel.count, channel.topic)
                                         for channel in self._roster.channels.values()
                                         if self.visible(channel, session)))

    @staticmethod
    def visible(channel: Channel, session: ISession | None) -> bool:
        """Whether `session` (None: someone not logged in) may see `channel` listed: +s hides it from outsiders."""
        return "s" not in channel.modes.flags or (session is not None and session in channel.members)
