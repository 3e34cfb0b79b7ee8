"""
The chat server: what a door drives.  Protocol-neutral: it reaches users
only through `ISession`, speaks `commands` in and `events` and `replies`
out, and never sees a transport, a wire format or a charset.

A door drives it with `arrive(session)`, `handle(session, command)` and
`depart(session, reason)`, and may `tell` a session replies of its own.
The bus drives it with `receive`, `adopt` and `lose_node`.

The chat's rules are here (who may take a nickname, join, part, set a
topic, whisper); each other job is an object of its own that owns its
state:

    roster.py     who is where: sessions, members, other nodes' users, nicknames, channels
    channels.py   joining, parting, topics, names and the channel list
    fanout.py     each event to the members it is for, once per turn, in order (the hot path)
    crowd.py      big channels' joins and leaves, and storms of logins and departures in the log, summed up
    mirror.py     the other nodes of a cluster: their events and states, this node's state
    moderator.py  /oper, /kick, /ban, /unban, /bans
    operators.py  channel operators: modes, kicks from a channel, invitations, and what modes let through
    accounts.py   registered nicknames, passwords, notes and mentions for those away

The server owns its turn (chatd.core.turn): each entry point begins one,
and until it ends events wait; then they go out together, one delivery
per member.  A server without a turn (unit tests) delivers each event at
once.  Order is kept by construction: before anything else reaches a
member (a reply, a private message, a change of their channels, their
departure) what waits for them is delivered first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping

from attrs import define, field
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.core import commands, replies
from chatd.core.accounts import Accounts, Hooks
from chatd.core.batch import Batch, Share
from chatd.core.bus import IBus, LocalBus
from chatd.core.store import MAX_HISTORY, IStore, KeptAccount, NoStore
from chatd.core.channels import MAX_CHANNELS_PER_USER, Channels, members_for
from chatd.core.channel import Channel, Member, Remote, comings_of
from chatd.core.crowd import CROWD_SUMMARY_SECONDS, DEFAULT_QUIET_JOINS, LOGIN_LINES_PER_PERIOD, Crowd
from chatd.core.events import (
    AccountChanged,
    Acted,
    AwayChanged,
    BusEvent,
    Event,
    Left,
    Noticed,
    RealNameChanged,
    Renamed,
    Said,
    Whispered,
)
from chatd.core.fanout import FanOut
from chatd.core.history import Reference, chosen
from chatd.core.mirror import Mirror
from chatd.core.moderation import Moderation
from chatd.core.moderator import Moderator
from chatd.core.modes import channel_state, matches
from chatd.core.operators import Operators
from chatd.core.nicknames import MAX_REALNAME_CHARS, check_channel_name, name_key
from chatd.core.remote import NodeState
from chatd.core.roster import ChannelView, Roster
from chatd.core.session import ISession
from chatd.core.tags import MessageIds, with_server_tags
from chatd.core.text import clean
from chatd.core.turn import Turn
from chatd.core.watchers import Watchers

__all__ = ["CROWD_SUMMARY_SECONDS", "DEFAULT_CHANNEL", "DEFAULT_MAX_CHANNELS", "DEFAULT_QUIET_JOINS",
           "LOGIN_LINES_PER_PERIOD", "MAX_CHANNELS_PER_USER", "ChatServer"]

log = Logger()

DEFAULT_CHANNEL = "#lobby"
WHOWAS_KEPT = 1000
# How far one has read: at most this many channels and conversations a member (MARKREAD), in memory.
MAX_READ_MARKS = 200
DEFAULT_MAX_CHANNELS = 1000


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
    # Where this node's channels' history and topics are kept beyond the process (chatd.core.store).
    store: IStore = field(factory=NoStore)
    # This node's name in a cluster (it settles a nickname two nodes gave at once).
    node: str = ""
    # Called with every event: the transcript.
    observers: list[Callable[[Event], None]] = field(factory=list)
    # The reactor turn, which this server begins whenever something happens
    # to it; None: every event goes out at once.
    turn: Turn | None = None

    _roster: Roster = field(init=False)
    _fan_out: FanOut = field(init=False)
    _crowd: Crowd = field(init=False)
    _mirror: Mirror = field(init=False)
    _moderator: Moderator = field(init=False)
    _operators: Operators = field(init=False)
    _channels: Channels = field(init=False)
    _accounts: Accounts = field(init=False)
    _watchers: Watchers = field(init=False)
    # Messages said (public and private), for /metrics.
    messages: int = field(init=False, default=0)
    # Who was online, most recent last (WHOWAS): each nickname as its user left it, or renamed from it.
    _was: deque[replies.UserInfo] = field(init=False, factory=lambda: deque(maxlen=WHOWAS_KEPT))
    _msgids: MessageIds = field(init=False, factory=MessageIds)
    # The most users online so far, here and everywhere (LUSERS).
    _most_here: int = field(init=False, default=0)
    _most_everyone: int = field(init=False, default=0)

    def __attrs_post_init__(self) -> None:
        self.default_channel = check_channel_name(self.default_channel)
        roster = self._roster = Roster(self.history_size, self.max_channels, self.recent, self.store.kept_channels())
        fan_out = self._fan_out = FanOut(roster, self.turn, lambda: self.bus, self.observers,
                                         lambda session: self.depart(session, "Connection lost"),
                                         lambda: self.store)
        crowd = self._crowd = Crowd(self.clock, roster, fan_out, self.quiet_joins, self.default_channel)
        watchers = self._watchers = Watchers(self.tell, self._share_with_watcher)
        operators = self._operators = Operators(self.clock, roster, fan_out, self.moderation, crowd, self.tell,
                                                self._keep_modes)
        self._mirror = Mirror(self.clock, roster, fan_out, crowd, self.moderation, operators, watchers,
                              lambda: self.node, self._remove, self._change_nick)
        self._moderator = Moderator(self.clock, roster, fan_out, self.moderation, self.tell, self._remove)
        self._accounts = Accounts(self.clock, roster, lambda: self.store, Hooks(
            self._begin_turn, self.tell, self._remove, self._log_in, self._enter, self._change_nick,
            roster.members.get, self._account_changed))
        self._channels = Channels(self.clock, roster, fan_out, crowd, operators, self.max_channels, self.tell,
                                  self._accounts.account_of, self._keep_modes)
        self._accounts.load(self.store.accounts())
        self.store.watch(self._store_health)
        # Nobody made the default channel, so nobody is its operator: its topic is anyone's.
        lobby = roster.create_channel(self.default_channel)
        roster.make_lobby(lobby)
        lobby.modes.flags.discard("t")
        lobby.modes.created_at = self.clock.seconds()
        if self.turn is not None:
            self.turn.fan_out(fan_out.publish)

    # -- questions (values only: no door reads a core object)

    @property
    def count(self) -> int:
        """How many users of this node have chosen a nickname."""
        return len(self._roster.members)

    @property
    def everyone(self) -> int:
        """How many users are online, on this node and (in a cluster) the others."""
        return len(self._roster.members) + len(self._roster.remote)

    @property
    def channel_count(self) -> int:
        return len(self._roster.channels)

    def counts(self) -> replies.UserCounts:
        """How many are online, here and everywhere, and the most there have been since this node started."""
        everyone, here = self.everyone, self.count
        self._most_everyone = max(self._most_everyone, everyone)  # other nodes' logins are counted when asked
        return replies.UserCounts(everyone, here, self.channel_count, self._most_everyone, self._most_here)

    @property
    def deliveries(self) -> int:
        """Deliveries of a turn's share to a member, for /metrics."""
        return self._fan_out.deliveries

    def nicks(self) -> list[str]:
        """Everyone online: this node's users, then other nodes'."""
        return self._roster.nicks()

    def nick_of(self, session: ISession) -> str | None:
        member = self._roster.members.get(session)
        return None if member is None else member.nick

    def channels_of(self, session: ISession) -> list[str]:
        """The names of the channels `session` is in, in the order joined."""
        member = self._roster.members.get(session)
        return [] if member is None else [channel.name for channel in member.channels.values()]

    def channel_list(self, session: ISession | None) -> replies.ChannelList:
        """The channels `session` may see listed (a secret one only by its members)."""
        return self._channels.listing(session)

    def invitations(self, session: ISession) -> list[str]:
        """The names of the channels `session` is invited into (and has not joined since)."""
        member = self._roster.members.get(session)
        if member is None:
            return []
        key = name_key(member.nick)
        return [channel.name for channel in self._roster.channels.values() if key in channel.modes.invited]

    def online(self, nick: str) -> str | None:
        """The nickname, as its user has it, of whoever is online as `nick` (in any case); None if nobody is."""
        return self._roster.online(nick)

    @property
    def keeps_accounts(self) -> bool:
        """Whether nicknames can be registered here."""
        return bool(self.store.keeps_accounts)

    @property
    def accounts(self) -> int:
        """Registered nicknames."""
        return len(self._accounts.registered)

    @property
    def wrong_passwords(self) -> int:
        """Wrong passwords tried for registered nicknames, for /metrics."""
        return self._accounts.wrong_passwords

    def registered(self, nick: str) -> str | None:
        """The registered nickname `nick` is (in any case), if it is one."""
        account = self._accounts.registered.holder(nick)
        return None if account is None else account.nick

    def user_info(self, nick: str, asker: ISession | None = None) -> replies.UserInfo | None:
        """
        What there is to know of whoever is online as `nick` (None: nobody);
        their secret channels only if `asker` shares them, and not the lobby
        to an asker whose door keeps it quiet (see ISession.quiet_lobby):
        everyone is in it.
        """
        roster = self._roster
        holder = roster.nicknames.holder(nick)
        if holder is None:
            return None
        joined = holder.channels.values() if isinstance(holder, Remote) else roster.members[holder].channels.values()
        quiet = asker is not None and asker.quiet_lobby
        channels = tuple(channel.rank_of(holder)[:1] + channel.name for channel in joined
                         if self._channels.visible(channel, asker) and not (quiet and channel.comings != channel.key))
        if isinstance(holder, Remote):
            return replies.UserInfo(holder.nick, holder.nick, "", channels, node=holder.node)
        found = roster.members[holder]
        return replies.UserInfo(
            found.nick, holder.username or found.nick, found.realname, channels, found.away, found.signon,
            self.clock.seconds() - found.active_at, self._accounts.account_of(holder),
            self.moderation is not None and self.moderation.is_operator(holder), bot=found.bot)

    def whowas(self, mask: str, count: int = 0) -> list[replies.UserInfo]:
        """Who was online as nicknames `mask` matches (`*`, `?`), most recent first; at most `count` (0: all)."""
        found = [was for was in reversed(self._was) if matches(mask, [was.nick])]
        return found[:count] if count > 0 else found

    def _remember(self, member: Member) -> None:
        """`member` is leaving, or leaving their nickname: for WHOWAS."""
        session = member.session
        self._was.append(replies.UserInfo(member.nick, session.username or member.nick, member.realname, (),
                                          signon=self.clock.seconds()))

    def channel(self, name: str) -> ChannelView | None:
        """The channel called `name` ("#" optional, any case) as it is now, if there is one."""
        channel = self._roster.channel(name)
        return None if channel is None else ChannelView.of(channel)

    # -- from a door

    def arrive(self, session: ISession) -> None:
        """A new session, not logged in yet."""
        self._roster.present.add(session)

    def handle(self, session: ISession, command: commands.Command) -> None:
        """Carry out one command from `session`."""
        turn = self.turn
        if turn is not None and not turn.held:
            turn.begin()
        member = self._roster.members.get(session)
        if member is None:
            self._handle_before_login(session, command)
        else:
            self._handle(member, command)

    def tell(self, session: ISession, *answers: object) -> None:
        """Send `session` replies (the core's or a door's own), after what waits for it."""
        turn = self.turn
        if turn is not None and not turn.held:  # _begin_turn, inline: every reply comes here
            turn.begin()
        self._fan_out.catch_up(session)
        session.send(answers)

    def depart(self, session: ISession, reason: str) -> None:
        """The session is gone (or going); it may never have logged in."""
        self._begin_turn()
        self._fan_out.catch_up(session)
        roster = self._roster
        roster.present.discard(session)
        self._watchers.remove(session)
        if self.moderation is not None:
            self.moderation.forget(session)
        self._accounts.departed(session, session in roster.members)
        member = roster.members.get(session)
        if member is None:
            return
        self._remember(member)
        del roster.members[session]
        roster.nicknames.release(member.nick, session)
        self._watchers.offline(member.nick)
        roster.renames.forget(session)
        self._crowd.departed(member.nick, reason)
        told: set[str] = set()
        for channel in member.channels.values():
            if self._channels.leave(member, channel):
                told.add(channel.comings)
        self._fan_out.broadcast(Left(member.nick, reason, at=self.clock.seconds()), frozenset(told))

    def accounts_changed(self, kept: Iterable[KeptAccount]) -> None:
        """The registered nicknames as the cluster's store has them now (see Accounts.sync)."""
        self._begin_turn()
        self._accounts.sync(kept)

    def expire_accounts(self, unused_since: float) -> None:
        """Free the registered nicknames nobody has used since `unused_since` (unix time)."""
        def expired(nicks: list[str]) -> None:
            for nick in nicks:
                self._accounts.forget(nick)
                log.info("{nick} was not used for a long time, and is not registered any more", nick=nick)

        self.store.expire_accounts(unused_since, self._accounts.identified_nicks()).addCallbacks(
            expired, lambda failure: log.failure("expiring accounts failed", failure))

    def stop(self) -> None:
        """The server is shutting down: no summary is left waiting, and the log counts every login and departure."""
        self._crowd.stop()

    # -- from the bus: the other nodes of a cluster

    def receive(self, events: Iterable[BusEvent]) -> None:
        """Other nodes' events, in the order they happened there: this node's users see them in one turn."""
        self._begin_turn()
        self._mirror.receive(events)

    def recall(self, events: Iterable[BusEvent]) -> None:
        """Messages said before this node joined its cluster, oldest first: kept in their channels' history."""
        self._mirror.recall(events)

    def state(self) -> NodeState:
        """What this node has: its users and their channels, the topics and the bans."""
        return self._mirror.state()

    def adopt(self, node: str, state: NodeState, reason: str = "Left the chat") -> None:
        """What `node` has now, as it says (see Mirror.adopt)."""
        self._begin_turn()
        self._mirror.adopt(node, state, reason)

    def lose_node(self, node: str, reason: str = "Server lost") -> None:
        """`node` is gone: its users leave every channel, and their nicknames are free."""
        self._begin_turn()
        self._mirror.lose_node(node, reason)

    def nodes(self) -> set[str]:
        """The other nodes this node knows users of."""
        return self._roster.nodes()

    def tell_everyone(self, *answers: object) -> None:
        """Send every user of this node these replies."""
        self._begin_turn()
        fan_out = self._fan_out
        for member in list(self._roster.members.values()):
            if fan_out.caught_up_with(member):
                fan_out.send(member, *answers)

    # -- the rules

    def _begin_turn(self) -> None:
        turn = self.turn
        if turn is not None and not turn.held:
            turn.begin()

    def _handle_before_login(self, session: ISession, command: commands.Command) -> None:
        match command:
            case commands.LogIn(nick, password, as_guest):
                self._log_in(session, nick, password, as_guest)
            case commands.Nick(nick):
                self._log_in(session, nick)
            case commands.Identify(password, nick):
                self._accounts.identify(session, password, nick)
            case commands.Quit():
                self._bye(session)
            case commands.Names(None):
                self.tell(session, replies.UserList(tuple(self.nicks())))
            case commands.Channels():
                self.tell(session, self._channels.listing(None))
            case _:
                self.tell(session, replies.Error("choose a nickname first", "not-logged-in"))

    def _handle(self, member: Member, command: commands.Command) -> None:
        session = member.session
        if type(command) is commands.Say:  # most lines: the hot path skips the match's walk through its cases
            self._speak(member, Said, command.text, command.channel, command.tags, command.msgid)
            return
        match command:
            case commands.Act(text, channel):
                self._speak(member, Acted, text, channel, command.tags, command.msgid)
            case commands.Notice(text, channel):
                self._speak(member, Noticed, text, channel, command.tags, command.msgid)
            case commands.Msg(to_nick, text, notice):
                self._private(member, to_nick, text, notice, command.tags, command.msgid)
            case commands.Tag(target, tags, msgid):
                self._tag(member, target, tags, msgid)
            case commands.Join(channel, key):
                self._channels.join(member, channel, key)
            case commands.Part(channel, reason):
                self._channels.part(member, channel, reason)
            case commands.Topic(channel, text):
                self._channels.topic(member, channel, text)
            case commands.Mode(name, words):
                if (found := self._channels.find(member, name)) is not None:
                    self._operators.mode(member, found, words)
            case commands.KickFrom(name, nick, reason):
                if (found := self._channels.find(member, name)) is not None:
                    self._operators.kick(member, found, nick, reason)
            case commands.Invite(nick, name):
                if (found := self._channels.target(member, name)) is not None:
                    self._operators.invite(member, found, nick)
            case commands.Away(text):
                self._away(member, text)
            case commands.ChatHistory(kind, target, first, second, limit):
                self._chat_history(member, kind, target, first, second, limit)
            case commands.ChatHistoryTargets(start, end, limit):
                self._chat_history_targets(member, start, end, limit)
            case commands.MarkRead(target, at):
                self._mark_read(member, target, at)
            case commands.SetBot(bot):
                member.bot = bot
                self.tell(session, replies.BotMarked(bot))
            case commands.SetRealName(realname):
                self._set_realname(member, realname)
            case commands.Whois(nick):
                self._whois(member, nick)
            case commands.Watch(nicks):
                self._watch(session, nicks)
            case commands.Unwatch(nicks):
                self._watchers.remove(session, nicks)
            case commands.Channels():
                self.tell(session, self._channels.listing(session))
            case commands.Names(None):
                self.tell(session, replies.UserList(tuple(self.nicks())))
            case commands.Names(str(name)):
                self._channels.names(member, name)
            case commands.Nick(nick) | commands.LogIn(nick):
                self._rename(member, nick)
            case commands.Quit(reason):
                self.depart(session, reason)
                self._bye(session)
            case commands.Oper() | commands.Kick() | commands.Ban() | commands.Unban() | commands.Bans():
                self._moderator.carry_out(member, command)
            case commands.Identify(password, nick):
                self._accounts.identify(session, password, nick)
            case commands.Register(password):
                self._accounts.register(member, password)
            case commands.ChangePassword(old, new):
                self._accounts.change_password(member, old, new)
            case commands.Unregister(password):
                self._accounts.unregister(member, password)
            case commands.Mentions():
                self._accounts.mentions(member)
            case commands.Read(channel):
                self._accounts.read(member, channel)
            case commands.History(count, channel, before):
                self._history(member, count, channel, before)
            case _:
                raise TypeError(f"the server does not handle {command!r}")

    def new_msgid(self) -> str:
        """A message id no other message has (IRCv3's msgid), for a door that must know it before it is said."""
        return self._msgids.next()

    def _speak(self, member: Member, kind: type[Said] | type[Acted] | type[Noticed], text: str,
               channel: str | None, tags: str = "", msgid: str = "") -> None:
        """A line in a channel, past its modes; history keeps messages and actions, not notices."""
        target = self._channels.speech_target(member, channel)
        if target is None:
            return
        modes = target.modes
        if "m" in modes.flags or modes.masks["b"]:  # rarely: the hot path asks no more
            refusal = self._operators.speech_refusal(member, target)
            if refusal is not None:
                self.tell(member.session, refusal)
                return
        self.messages += 1
        now = member.active_at = self.clock.seconds()
        if member.account or member.bot:
            tags = with_server_tags(tags, member.account, member.bot)
        said = kind(target.name, member.nick, text, at=now, msgid=msgid or self._msgids.next(), tags=tags)
        self._fan_out.broadcast(said, target.key, member.session, None if kind is Noticed else target)

    def _tag(self, member: Member, to: str, tags: str, msgid: str) -> None:
        """Client tags alone (TAGMSG) to a channel's members or to a user, whose doors hear tags, on this node."""
        msgid = msgid or self._msgids.next()
        if member.account or member.bot:
            tags = with_server_tags(tags, member.account, member.bot)
        if to.startswith("#"):
            target = self._channels.speech_target(member, to)
            if target is None:
                return
            if "m" in target.modes.flags or target.modes.masks["b"]:
                refusal = self._operators.speech_refusal(member, target)
                if refusal is not None:
                    self.tell(member.session, refusal)
                    return
            tagged = replies.Tagged(target.name, member.nick, tags, msgid)
            for other in list(target.members.values()):
                if other is not member and other.session.hears_tags and self._fan_out.caught_up_with(other):
                    self._fan_out.send(other, tagged)
            return
        recipient = self._roster.local_member(to)
        if recipient is None and self._roster.remote_holder(to) is None:
            self.tell(member.session, replies.Error(f"no such nick: {to}", "no-such-nick", to))
        elif recipient is not None and recipient.session.hears_tags and self._fan_out.caught_up_with(recipient):
            self._fan_out.send(recipient, replies.Tagged(recipient.nick, member.nick, tags, msgid))

    def _log_in(self, session: ISession, wanted: str, password: str | None = None, as_guest: bool = False) -> None:
        nick = self._available_nickname(session, wanted)
        if nick is None or self._accounts.holds_back(session, nick, password, as_guest):
            return
        self._enter(session, nick)

    def _enter(self, session: ISession, nick: str) -> None:
        """`session` logs in as `nick`, which it may have."""
        roster = self._roster
        member = roster.members[session] = Member(session, nick, realname=session.realname,
                                                  account=self._accounts.account_of(session))
        member.signon = member.active_at = self.clock.seconds()
        roster.nicknames.claim(nick, session)
        lobby = roster.channels[name_key(self.default_channel)]
        self._fan_out.joined_mid_turn(session)  # what was said before they came is not for them
        roster.add_member(member, lobby)
        self._most_here = max(self._most_here, len(roster.members))
        self._most_everyone = max(self._most_everyone, self.everyone)
        self._crowd.logged_in(nick, session.address)
        self.tell(session, replies.LoggedIn(nick, lobby.name, lobby.history.recent(), members_for(session, lobby),
                                            lobby.topic, lobby.topic_by, lobby.topic_at,
                                            self._accounts.account_of(session)))
        if not self.store.healthy:
            self.tell(session, replies.HistoryNotKept())
        self._crowd.announce_join(member, lobby, member.account)
        self._accounts.welcome(member)
        self._watchers.online(nick)

    def _rename(self, member: Member, wanted: str) -> None:
        session, old = member.session, member.nick
        new = self._available_nickname(session, wanted)
        if new is None:
            return
        if new == old:
            self.tell(session, replies.Error(f"you are already {old}", "same-nickname", new))
            return
        if self._accounts.keeps_from(session, new):
            return
        now = self.clock.seconds()
        wait = self._roster.renames.wait(session, now)
        if wait:
            self.tell(session, replies.Error(f"too many nickname changes, wait {math.ceil(wait)} s",
                                             "rename-too-soon", new))
            return
        self._roster.renames.happened(session, now)
        self._change_nick(member, new)

    def _change_nick(self, member: Member, new: str) -> None:
        self._remember(member)
        old, session, nicknames = member.nick, member.session, self._roster.nicknames
        nicknames.release(old, session)
        nicknames.claim(new, session)
        member.nick = new
        log.info("{old} is now {new}", old=old, new=new)
        self._watchers.renamed(old, new)
        renamed = Renamed(old, new, at=self.clock.seconds())
        audience = comings_of(member.channels.values())
        self._fan_out.broadcast(renamed, audience)
        if audience.isdisjoint(member.view[0]) and self._fan_out.caught_up_with(member):
            # In no channel, or only in one whose comings and goings it does not hear: it alone is told.
            self._fan_out.deliver(member, Share(Batch([renamed]), [(0, 1)], None))

    def _available_nickname(self, session: ISession, wanted: str) -> str | None:
        """`wanted` as a valid nickname no one else holds or resembles; else None, and `session` is told why."""
        nick, refusal = self._roster.nickname_refusal(session, wanted)
        if refusal is not None:
            self.tell(session, refusal)
            return None
        return nick

    def _private(self, member: Member, to_nick: str, text: str, notice: bool = False, tags: str = "",
                 msgid: str = "") -> None:
        fan_out = self._fan_out
        member.active_at = self.clock.seconds()
        msgid = msgid or self._msgids.next()
        if member.account or member.bot:
            tags = with_server_tags(tags, member.account, member.bot)
        remote = self._roster.remote_holder(to_nick)
        if remote is not None:  # their node delivers it
            self.messages += 1
            fan_out.send_on(Whispered(member.nick, remote, text, notice, at=self.clock.seconds(), msgid=msgid,
                                      tags=tags))
            self.tell(member.session, replies.PrivateSent(remote, text, notice, msgid=msgid, tags=tags))
            return
        recipient = self._roster.local_member(to_nick)
        if recipient is None:
            if not notice and self._accounts.leave_note(member, to_nick, text):
                self.messages += 1
            else:
                self.tell(member.session, replies.Error(f"no such nick: {to_nick}", "no-such-nick", to_nick))
            return
        self.messages += 1
        if fan_out.caught_up_with(recipient):
            fan_out.send(recipient, replies.PrivateReceived(member.nick, text, notice, msgid=msgid, tags=tags))
        self.tell(member.session, replies.PrivateSent(recipient.nick, text, notice, msgid=msgid, tags=tags))
        if recipient.away and not notice:
            self.tell(member.session, replies.IsAway(recipient.nick, recipient.away))

    def _away(self, member: Member, text: str) -> None:
        """`member` is away (or back): they are told, and whoever shares a channel with them (IRC's away-notify)."""
        if text == member.away:
            self.tell(member.session, replies.AwayChanged(bool(text)))
            return
        member.away = text
        self.tell(member.session, replies.AwayChanged(bool(text)))
        changed, audience = AwayChanged(member.nick, text, at=self.clock.seconds()), comings_of(member.channels.values())
        self._fan_out.broadcast(changed, audience, member.session)
        self._watchers.changed(member.nick, changed, audience)

    def _mark_read(self, member: Member, target: str, at: float | None) -> None:
        """
        How far `member` has read `target`: moved on to `at` (never back),
        and, where they are identified, kept as the web page's read marks
        are; they are told how far it is now.
        """
        key = name_key(target)
        if member.read_marks is None:
            member.read_marks = {}
        marks = member.read_marks
        if at is not None and at > marks.get(key, 0.0):
            if key not in marks and len(marks) >= MAX_READ_MARKS:  # a bound: the one moved on longest ago goes
                del marks[min(marks, key=marks.__getitem__)]
            marks[key] = at
            self._accounts.read_up_to(member, target, at)
        self.tell(member.session, replies.ReadMarker(target, marks.get(key)))

    def read_mark(self, session: ISession, target: str) -> float | None:
        """How far `session` has read `target` (None: not known)."""
        member = self._roster.members.get(session)
        return None if member is None or member.read_marks is None else member.read_marks.get(name_key(target))

    def _set_realname(self, member: Member, wanted: str) -> None:
        """`member`'s real name is now `wanted`: they are told, and whoever shares a channel with them (IRC's SETNAME)."""
        realname = clean(wanted, keep_formatting=True).strip()
        if not realname or len(realname) > MAX_REALNAME_CHARS:
            self.tell(member.session, replies.Error(
                f"a real name is 1 to {MAX_REALNAME_CHARS} characters", "bad-realname", wanted))
            return
        member.realname = realname
        changed = RealNameChanged(member.nick, realname, at=self.clock.seconds())
        audience = comings_of(member.channels.values())
        self._fan_out.broadcast(changed, audience)
        if audience.isdisjoint(member.view[0]) and self._fan_out.caught_up_with(member):
            self._fan_out.deliver(member, Share(Batch([changed]), [(0, 1)], None))
        self._watchers.changed(member.nick, changed, audience)

    def _account_changed(self, member: Member) -> None:
        """`member` identified for an account now, or has none any more: whoever shares a channel is told."""
        member.account = self._accounts.account_of(member.session)
        changed = AccountChanged(member.nick, member.account, at=self.clock.seconds())
        audience = comings_of(member.channels.values())
        self._fan_out.broadcast(changed, audience, member.session)
        self._watchers.changed(member.nick, changed, audience)

    def _share_with_watcher(self, session: ISession, event: Event, audience: frozenset[str]) -> None:
        """`event` of a user `session` watches, to `session` if no channel they share brings it (extended-monitor)."""
        watcher = self._roster.members.get(session)
        if watcher is not None and audience.isdisjoint(watcher.view[0]) and self._fan_out.caught_up_with(watcher):
            self._fan_out.deliver(watcher, Share(Batch([event]), [(0, 1)], None))

    def _watch(self, session: ISession, nicks: tuple[str, ...]) -> None:
        added, refused = self._watchers.add(session, nicks)
        self.tell(session, *self.watch_status(added), *([replies.WatchListFull(tuple(refused))] if refused else []))

    def watch_status(self, nicks: Iterable[str]) -> list[replies.WatchedOnline | replies.WatchedOffline]:
        """Which of `nicks` are online (as their users have them) and which are not: a reply for each, if any."""
        online: list[str] = []
        offline: list[str] = []
        for nick in nicks:
            found = self.online(nick)
            (online if found is not None else offline).append(found or nick)
        return ([replies.WatchedOnline(tuple(online))] if online else []) + (
            [replies.WatchedOffline(tuple(offline))] if offline else [])

    def watched(self, session: ISession) -> list[str]:
        """The nicknames `session` watches."""
        return self._watchers.watched(session)

    def _whois(self, member: Member, nick: str) -> None:
        found = self.user_info(nick, member.session)
        self.tell(member.session, found if found is not None
                  else replies.Error(f"no such nick: {nick}", "no-such-nick", nick))

    def _history(self, member: Member, count: int, channel: str | None, before: float | None) -> None:
        target = self._channels.target(member, channel)
        if target is None:
            return
        session, name = member.session, target.name

        def found(events: object) -> None:
            self._begin_turn()
            if session in self._roster.members:
                self.tell(session, replies.HistoryShown(name, tuple(events)))  # type: ignore[arg-type]

        def failed(failure: Failure) -> None:
            log.failure("reading history failed", failure)
            self._begin_turn()
            if session in self._roster.members:
                self.tell(session, replies.Error("the history cannot be read now: try again later",
                                                 "store-unavailable"))

        self.store.history(name, max(1, min(count, MAX_HISTORY)), before).addCallbacks(found, failed)

    def _chat_history(self, member: Member, kind: str, target: str, first: Reference, second: Reference | None,
                      limit: int) -> None:
        """
        IRCv3 chathistory: what `kind` chooses of a channel's last
        MAX_HISTORY lines, from the store (or, with none, from memory).
        Private messages are not kept, so a nickname's history is empty.
        """
        session = member.session
        if not target.startswith("#"):
            self.tell(session, replies.ChatHistoryFound(target, ()))
            return
        channel = self._channels.target(member, target)
        if channel is None:
            return
        name, recent = channel.name, channel.history.recent()

        def found(events: list[Event]) -> None:
            self._begin_turn()
            if session in self._roster.members:
                lines = chosen(events or recent, kind, first, second, min(limit, MAX_HISTORY))
                self.tell(session, replies.ChatHistoryFound(name, tuple(lines)))

        def failed(failure: Failure) -> None:
            log.failure("reading history failed", failure)
            found([])  # what memory holds

        self.store.history(name, MAX_HISTORY).addCallbacks(found, failed)

    def _chat_history_targets(self, member: Member, start: float, end: float, limit: int) -> None:
        """IRCv3 chathistory's TARGETS: `member`'s channels whose latest message was said between `start` and `end`."""
        low, high = min(start, end), max(start, end)
        latest = [(channel.name, recent[-1].at) for channel in member.channels.values()
                  if (recent := channel.history.recent()) and low <= recent[-1].at <= high]
        latest.sort(key=lambda target: target[1], reverse=True)
        self.tell(member.session, replies.ChatHistoryTargetsFound(tuple(latest[:max(0, limit)])))

    def _keep_modes(self, channel: Channel) -> None:
        """A founder's channel: its modes, kept by the store across restarts."""
        self.store.keep_channel(channel_state(channel.name, channel.modes))

    def _store_health(self, healthy: bool) -> None:
        """The store started (or stopped) failing to write: everyone online hears it once."""
        self.tell_everyone(replies.HistoryKeptAgain() if healthy else replies.HistoryNotKept())

    def _bye(self, session: ISession) -> None:
        self.tell(session, replies.Bye())
        session.disconnect("quit")

    def _remove(self, session: ISession, notice: object, reason: str) -> None:
        """Take `session` out: the others see `reason`; it gets `notice` and is disconnected."""
        self.depart(session, reason)
        try:
            session.send((notice,))
            session.disconnect(reason)
        except Exception:
            log.failure("removing a session failed")
