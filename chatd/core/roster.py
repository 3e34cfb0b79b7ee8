"""
Who is where: every session present, the members (sessions with a
nickname) and the users of other nodes, the nicknames they hold, and the
channels with their members, topics and history (and the history of
channels that emptied, for when they are made again).  Pure.

The roster keeps this state and answers questions about it; the rules
(who may take a nickname or join a channel, and what is announced) are
the server's (chatd.core.server), the mirror's (chatd.core.mirror) and the
crowd's (chatd.core.crowd).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from attrs import frozen

from chatd.core import replies
from chatd.core.channel import Channel, Member, Remote
from chatd.core.events import Event, TopicChanged
from chatd.core.history import History
from chatd.core.modes import ChannelState, restore
from chatd.core.nicknames import NicknameError, Registry, RateWindow, check_nickname, name_key
from chatd.core.session import ISession


@frozen
class ChannelView:
    """A channel as it is now, as a value (what a door or a test may read; never the channel itself)."""

    name: str
    nicks: tuple[str, ...]
    topic: str
    topic_by: str
    topic_at: float
    history: tuple[Event, ...]
    listed: tuple[str, ...] = ()  # the nicknames, each after its rank ("@alice")
    secret: bool = False  # +s: not for outsiders' lists

    @property
    def count(self) -> int:
        """Members on every node."""
        return len(self.nicks)

    @classmethod
    def of(cls, channel: Channel) -> ChannelView:
        return cls(channel.name, tuple(channel.nicks()), channel.topic, channel.topic_by, channel.topic_at,
                   channel.history.recent(), tuple(channel.listed()), "s" in channel.modes.flags)


class Roster:
    """Who is where, on this node and (in a cluster) the others."""

    def __init__(self, history_size: int, max_channels: int, recent: Mapping[str, Iterable[Event]],
                 kept_modes: Iterable[ChannelState] = ()) -> None:
        self.history_size = history_size
        self.max_channels = max_channels
        # Every session that arrived and has not departed, logged in or not.
        self.present: set[ISession] = set()
        # Sessions that have chosen a nickname, in the order they did.
        self.members: dict[ISession, Member] = {}
        # Users on other nodes of the cluster, by (node, nickname key).
        self.remote: dict[tuple[str, str], Remote] = {}
        self.nicknames: Registry[ISession | Remote] = Registry()
        self.renames = RateWindow()
        # By key.
        self.channels: dict[str, Channel] = {}
        self.channel_names: Registry[Channel] = Registry()
        # The default channel by the audience key of its comings and goings (see Channel.make_lobby).
        self.lobbies: dict[str, Channel] = {}
        # The history of channels that emptied (and of those in the store or the
        # transcript), and their topics (their last TopicChanged), for when they
        # are created again; the most recent max_channels kept.
        self._dormant: OrderedDict[str, tuple[Event, ...]] = OrderedDict(
            (key, tuple(events)) for key, events in recent.items())
        # The modes of channels their founders registered (from the store), for whenever they are made.
        self.kept_modes: dict[str, ChannelState] = {name_key(state.channel): state for state in kept_modes}

    # -- questions

    def nicks(self) -> list[str]:
        """Everyone online: this node's users, then other nodes'."""
        return [member.nick for member in self.members.values()] + [remote.nick for remote in self.remote.values()]

    def online(self, nick: str) -> str | None:
        """The nickname, as its user has it, of whoever is online as `nick` (in any case); None if nobody is."""
        holder = self.nicknames.holder(nick)
        if isinstance(holder, Remote):
            return holder.nick
        member = self.members.get(holder) if holder is not None else None
        return None if member is None else member.nick

    def channel(self, name: str) -> Channel | None:
        """The channel called `name` ("#" optional, any case), if there is one."""
        return self.channels.get(name_key(name if name.startswith("#") else f"#{name}"))

    def remote_holder(self, nick: str) -> str | None:
        """The nickname, as its user has it, of a user of another node online as `nick`; None if there is none."""
        holder = self.nicknames.holder(nick)
        return holder.nick if isinstance(holder, Remote) else None

    def local_member(self, nick: str) -> Member | None:
        holder = self.nicknames.holder(nick)
        return None if holder is None or isinstance(holder, Remote) else self.members.get(holder)

    def nickname_refusal(self, session: ISession | Remote, wanted: str) -> tuple[str, replies.Error | None]:
        """`wanted` as a valid nickname, and why `session` may not have it (None: it may)."""
        try:
            nick = check_nickname(wanted)
        except NicknameError as refusal:
            return wanted, replies.Error(str(refusal), "bad-nickname", wanted)
        clash = self.nicknames.clash(nick, session)
        if clash is None:
            return nick, None
        looks_like = "" if name_key(clash) == name_key(nick) else f" (it looks like {clash})"
        return nick, replies.Error(f"nickname is taken: {nick}{looks_like}", "nickname-taken", nick)

    # -- channels: made, joined, left, emptied

    def create_channel(self, name: str) -> Channel:
        key = name_key(name)
        recent = self._dormant.pop(key, ())
        channel = self.channels[key] = Channel(name, History(self.history_size, recent))
        kept = self.kept_modes.get(key)
        if kept is not None:  # a founder's channel: its modes, masks and founder as they were
            restore(channel.modes, kept)
        for event in reversed(recent):  # the topic it had, if it had one
            if isinstance(event, TopicChanged):
                channel.topic, channel.topic_by, channel.topic_at = event.topic, event.nick, event.at
                break
        self.channel_names.claim(name, channel)
        return channel

    def make_lobby(self, channel: Channel) -> None:
        """`channel` is the default one: its comings and goings have an audience of their own (see Channel.comings)."""
        channel.make_lobby()
        self.lobbies[channel.comings] = channel

    def known_channel(self, name: str) -> Channel:
        """The channel called `name`, made if this node has not had it (another node has)."""
        return self.channels.get(name_key(name)) or self.create_channel(name)

    def add_member(self, member: Member, channel: Channel) -> None:
        channel.members[member.session] = member
        member.channels[channel.key] = channel
        member.current = channel
        member.update_view()

    def close_if_empty(self, channel: Channel, default_channel: str) -> bool:
        """A channel nobody is in any more (but the default one) goes, keeping its history; True if it went."""
        if channel.count or channel.name == default_channel:
            return False
        del self.channels[channel.key]
        self.channel_names.release(channel.name, channel)
        kept = channel.history.recent()
        if channel.topic:  # its topic, for when it is made again
            kept += (TopicChanged(channel.name, channel.topic_by, channel.topic, at=channel.topic_at),)
        self._dormant[channel.key] = kept
        while len(self._dormant) > self.max_channels:
            self._dormant.popitem(last=False)
        return True

    def recall(self, event: Event, channel_name: str) -> None:
        """A message from before this node joined its cluster: in its channel's history, made or dormant."""
        channel = self.channel(channel_name)
        if channel is not None:
            channel.history.record(event)
        else:
            key = name_key(channel_name)
            self._dormant[key] = History(self.history_size, (*self._dormant.get(key, ()), event)).recent()
        while len(self._dormant) > self.max_channels:
            self._dormant.popitem(last=False)

    # -- the users of other nodes

    def remote_user(self, node: str, nick: str) -> tuple[Remote, bool]:
        """The user `nick` of `node`, and whether it is new here."""
        remote = self.remote.get((node, name_key(nick)))
        if remote is not None:
            return remote, False
        remote = self.remote[node, name_key(nick)] = Remote(node, nick)
        return remote, True

    def nodes(self) -> set[str]:
        """The other nodes this node knows users of."""
        return {node for node, _ in self.remote}
