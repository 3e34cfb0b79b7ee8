"""
The cluster mirror: this node's picture of the other nodes' users, kept
from their events (`receive`) and their states (`adopt`, `lose_node`), and
this node's own state for them (`state`).  Pure.

Other nodes' users are `Remote`s here: members of channels and holders of
nicknames, reached through their own node.  Their events reach this node's
members like local ones.  A nickname two nodes gave at the same moment (or
while apart) stays with the user of the node whose name sorts first; the
other is renamed on every node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from chatd.core import replies
from chatd.core.channel import Channel, Member, Remote, comings_of
from chatd.core.crowd import Crowd
from chatd.core.events import (
    Acted,
    AccountChanged,
    AwayChanged,
    Invited,
    RealNameChanged,
    Banned,
    BusEvent,
    InviteSent,
    Joined,
    Kicked,
    KickOrdered,
    Left,
    ModeChanged,
    Noticed,
    Parted,
    Renamed,
    Said,
    TopicChanged,
    Unbanned,
    Whispered,
)
from chatd.core.fanout import FanOut
from chatd.core.moderation import Moderation
from chatd.core.moderator import ban_address, kicked_by
from chatd.core.nicknames import MAX_NICK_CHARS, name_key
from chatd.core.operators import Operators, apply_change, put_out
from chatd.core.modes import ChannelState, channel_state, restore
from chatd.core.remote import NodeState, Topic
from chatd.core.roster import Roster
from chatd.core.session import ISession
from chatd.core.watchers import Watchers

log = Logger()


class Mirror:
    """The rest of the cluster, as this node knows it."""

    def __init__(self, clock: IReactorTime, roster: Roster, fan_out: FanOut, crowd: Crowd,
                 moderation: Moderation | None, operators: Operators, watchers: Watchers, node: Callable[[], str],
                 remove: Callable[[ISession, object, str], None], rename: Callable[[Member, str], None]) -> None:
        self._clock = clock
        self._roster = roster
        self._fan_out = fan_out
        self._crowd = crowd
        self._moderation = moderation
        self._operators = operators
        self._watchers = watchers  # told of other nodes' users coming and going
        self._node = node  # this node's name (given after the server is made)
        self._remove = remove  # a session taken out: it reads a notice, the others a reason
        self._rename = rename  # a member of this node renamed (their nickname went to another node's user)

    # -- from the bus

    def receive(self, events: Iterable[BusEvent]) -> None:
        """Other nodes' events (each with its `origin`), in the order they happened there."""
        for event in events:
            try:
                self._apply(event)
            except Exception:
                log.failure("applying {event} from {node} failed", event=event, node=event.origin)

    def recall(self, events: Iterable[BusEvent]) -> None:
        """Messages said before this node joined its cluster, oldest first: kept in their channels' history."""
        for event in events:
            if isinstance(event, (Said, Acted)):
                self._roster.recall(event, event.channel)

    def state(self) -> NodeState:
        """What this node has: its users and their channels, the topics and the bans."""
        roster = self._roster
        return NodeState(
            tuple((member.nick, tuple(channel.name for channel in member.channels.values()))
                  for member in roster.members.values()),
            tuple(Topic(channel.name, channel.topic, channel.topic_by, channel.topic_at)
                  for channel in roster.channels.values() if channel.topic),
            () if self._moderation is None else tuple(self._moderation.in_force()),
            tuple(kept for channel in roster.channels.values()
                  if (kept := self._channel_state(channel)).ranks or kept.changed_at or kept.founder))

    @staticmethod
    def _channel_state(channel: Channel) -> ChannelState:
        return channel_state(channel.name, channel.modes, tuple(
            (member.nick, channel.ranks[session]) for session, member in channel.members.items()
            if session in channel.ranks))

    def adopt(self, node: str, state: NodeState, reason: str = "Left the chat") -> None:
        """
        What `node` has now, as it says: this node's users are told what
        changed since it last knew (users gone, with `reason`; users come,
        channels joined and left); its topics and bans are taken too.
        """
        now, roster = self._clock.seconds(), self._roster
        wanted = {name_key(nick): (nick, names) for nick, names in state.users}
        gone = [remote for (owner, key), remote in roster.remote.items() if owner == node and key not in wanted]
        for remote in gone:
            self._apply(Left(remote.nick, reason, at=now, origin=node))
        for nick, names in wanted.values():
            remote = self._remote_user(node, nick)
            keys = {name_key(name) for name in names}
            for channel in [channel for key, channel in remote.channels.items() if key not in keys]:
                self._apply(Parted(channel.name, nick, "", channel.count - 1, at=now, origin=node))
            for name in names:
                if name_key(name) not in remote.channels:
                    known = roster.channel(name)
                    self._apply(Joined(name, nick, 1 if known is None else known.count + 1, at=now, origin=node))
        moderation = self._moderation
        for address, until in state.bans:
            if moderation is not None and not moderation.is_banned(address):
                moderation.ban_until(address, until)
                for present in [present for present in roster.present if present.address == address]:
                    self._remove(present, replies.Error("you are banned from this server", "banned"), "Banned")
        for topic in state.topics:
            where = roster.channel(topic.channel)
            if where is not None and topic.at >= where.topic_at:
                where.topic, where.topic_by, where.topic_at = topic.text, topic.by, topic.at
        for modes in state.channels:
            where = roster.channel(modes.channel)
            if where is not None:
                self._adopt_modes(node, where, modes)

    def _adopt_modes(self, node: str, channel: Channel, kept: ChannelState) -> None:
        """A channel's modes as `node` has them: its users' ranks, and the modes if an operator changed them later."""
        for nick, rank in kept.ranks:
            remote = self._roster.remote.get((node, name_key(nick)))
            if remote is not None and remote in channel.elsewhere:
                channel.ranks[remote] = rank
        if kept.changed_at > channel.modes.changed_at:
            restore(channel.modes, kept)

    def lose_node(self, node: str, reason: str = "Server lost") -> None:
        """`node` is gone: its users leave every channel, and their nicknames are free."""
        now, remote = self._clock.seconds(), self._roster.remote
        for key in [key for key in remote if key[0] == node]:
            self._apply(Left(remote[key].nick, reason, at=now, origin=node))

    # -- one event of another node

    def _apply(self, event: BusEvent) -> None:
        if type(event) is Said or type(event) is Acted:  # most events: the hot path skips the match
            channel = self._roster.known_channel(event.channel)
            self._fan_out.broadcast(event, channel.key, None, channel)
            return
        match event:
            case Joined():
                self._joined(event)
            case Parted():
                self._parted(event)
            case Left():
                self._left(event)
            case Renamed():
                self._renamed(event)
            case TopicChanged(name, nick, topic):
                channel = self._roster.known_channel(name)
                channel.topic, channel.topic_by, channel.topic_at = topic, nick, event.at
                self._fan_out.broadcast(event, channel.key)
            case ModeChanged(name, nick, changes):
                channel = self._roster.known_channel(name)
                made = tuple(outcome for change in changes
                             if isinstance(outcome := apply_change(self._roster, channel, change, nick, event.at),
                                           tuple) and outcome[0])
                if made:
                    channel.modes.changed_at = event.at
                    self._fan_out.broadcast(ModeChanged(channel.name, nick, made, at=event.at, origin=event.origin),
                                            channel.key)
            case Kicked(name, nick):
                where = self._roster.channel(name)
                holder = self._roster.nicknames.holder(nick)
                if where is not None and holder is not None and where.nick_of(holder) is not None:
                    put_out(self._roster, self._fan_out, self._crowd, where, holder, event)
            case Invited(name):
                if (invited_into := self._roster.channel(name)) is not None:
                    self._fan_out.broadcast(event, invited_into.key)
            case InviteSent(nick, to, name):
                target, where = self._roster.local_member(to), self._roster.channel(name)
                if target is not None and where is not None:
                    self._operators.invited(target, where, nick)
            case AwayChanged(nick) | RealNameChanged(nick) | AccountChanged(nick):
                remote = self._roster.remote.get((event.origin, name_key(nick)))
                if remote is not None:
                    audience = comings_of(remote.channels.values())
                    self._fan_out.broadcast(event, audience)
                    self._watchers.changed(remote.nick, event, audience)
            case Noticed(name):
                channel = self._roster.known_channel(name)
                self._fan_out.broadcast(event, channel.key)
            case Whispered(nick, to, text, notice):
                recipient = self._roster.local_member(to)
                if recipient is not None and self._fan_out.caught_up_with(recipient):
                    self._fan_out.send(recipient, replies.PrivateReceived(nick, text, notice, msgid=event.msgid,
                                                                          tags=event.tags))
            case Banned():
                self._banned(event)
            case Unbanned(address) if self._moderation is not None:
                self._moderation.unban(address)
            case KickOrdered(nick, by, reason):
                target = self._roster.local_member(nick)
                if target is not None:
                    log.info("{by} on {node} kicked {target}", by=by, node=event.origin, target=target.nick)
                    self._remove(target.session, replies.KickedOut(by, reason), kicked_by(by, reason))

    def _joined(self, event: Joined) -> None:
        remote = self._remote_user(event.origin, event.nick)
        channel = self._roster.known_channel(event.channel)
        if channel.key in remote.channels:
            return
        remote.channels[channel.key] = channel
        channel.elsewhere[remote] = None
        if event.rank:
            channel.ranks[remote] = event.rank
        self._crowd.remote_joined(remote, channel, event)

    def _parted(self, event: Parted) -> None:
        remote = self._roster.remote.get((event.origin, name_key(event.nick)))
        channel = None if remote is None else remote.channels.pop(name_key(event.channel), None)
        if remote is None or channel is None:
            return
        loud = self._crowd.is_loud(channel)
        del channel.elsewhere[remote]
        channel.ranks.pop(remote, None)
        self._fan_out.broadcast(event, channel.comings if self._crowd.left(channel, remote, remote.nick, loud)
                                else frozenset())

    def _left(self, event: Left) -> None:
        remote = self._roster.remote.pop((event.origin, name_key(event.nick)), None)
        if remote is None:
            return
        self._roster.nicknames.release(remote.nick, remote)
        self._watchers.offline(remote.nick)
        told: set[str] = set()
        for channel in remote.channels.values():
            loud = self._crowd.is_loud(channel)
            del channel.elsewhere[remote]
            channel.ranks.pop(remote, None)
            if self._crowd.left(channel, remote, remote.nick, loud):
                told.add(channel.comings)
        self._fan_out.broadcast(event, frozenset(told))

    def _renamed(self, event: Renamed) -> None:
        remote = self._roster.remote.pop((event.origin, name_key(event.old)), None)
        if remote is None:
            return
        self._roster.nicknames.release(event.old, remote)
        remote.nick = event.new
        self._roster.remote[event.origin, name_key(event.new)] = remote
        self._claim(remote)
        self._watchers.renamed(event.old, event.new)
        self._fan_out.broadcast(event, comings_of(remote.channels.values()))

    def _banned(self, event: Banned) -> None:
        moderation = self._moderation
        if moderation is None:
            return
        holder = self._roster.nicknames.holder(event.target)
        if isinstance(holder, Remote):
            return  # their node bans their address and says which
        if holder is not None:
            address = holder.address
            self._fan_out.send_on(Banned(address, event.minutes, event.by, at=event.at))
        else:
            try:
                address = str(ipaddress.ip_address(event.target))
            except ValueError:
                return
        log.info("{by} on {node} banned {address} ({minutes:g} minutes)", by=event.by, node=event.origin,
                 address=address, minutes=event.minutes)
        ban_address(self._roster, moderation, self._remove, address, event.minutes, event.by)

    # -- nicknames across nodes

    def _remote_user(self, node: str, nick: str) -> Remote:
        remote, new = self._roster.remote_user(node, nick)
        if new:
            self._claim(remote)
            self._watchers.online(remote.nick)
        return remote

    def _claim(self, remote: Remote) -> None:
        """
        Hold `remote`'s nickname here.  Two nodes may give the same (or a
        look-alike) nickname at the same moment, or while apart: the user
        of the node whose name sorts last then takes another, on every node.
        """
        nicknames = self._roster.nicknames
        clash = nicknames.clash(remote.nick, remote)
        holder = None if clash is None else nicknames.holder(clash)
        if isinstance(holder, Remote):
            if holder.node < remote.node:
                return  # theirs is renamed by their node
        elif holder is not None:
            member = self._roster.members.get(holder)
            if member is not None:
                if self._node() < remote.node:
                    return  # theirs is renamed by their node
                self._give_way(member)
        nicknames.claim(remote.nick, remote)

    def _give_way(self, member: Member) -> None:
        """`member`'s nickname went to a user of another node at the same moment: they take the next free one."""
        old = member.nick
        for number in range(2, 1000):
            suffix = str(number)
            wanted = old[:MAX_NICK_CHARS - len(suffix)] + suffix
            if self._roster.nicknames.clash(wanted, member.session) is None:
                break
        if self._fan_out.caught_up_with(member):
            self._fan_out.send(member, replies.Error(
                f"{old} was given to a user of another server at the same moment; you are now {wanted}",
                "nickname-taken", old))
        self._rename(member, wanted)

