"""
Who is where: a channel (its members, its topic and its recent history),
a `Member` (a session of this node that has chosen a nickname) and a
`Remote` (a user of another node of the cluster).  Pure.

The server (chatd.core.server) decides who may join and what is announced;
these only keep their state.
"""

from __future__ import annotations

from collections.abc import Iterable

from attrs import Factory, define, field

from chatd.core.history import History
from chatd.core.modes import ChannelModes
from chatd.core.nicknames import name_key
from chatd.core.session import ISession


@define(eq=False)
class Member:
    """A session of this node that has chosen a nickname, as the server keeps it."""

    session: ISession
    nick: str
    # By key, in the order joined (the most recent last).
    channels: dict[str, Channel] = field(factory=dict)
    current: Channel | None = None
    # The channels and the current one, as one hashable value: members with
    # the same view get the same share of a turn.
    view: tuple[frozenset[str], str | None] = (frozenset(), None)
    away: str = ""  # why they are away ("": here)
    # How far they have read each channel or private conversation (by key), as their client said (MarkRead);
    # None until they say it (most never do: an empty dict for each would be 64 bytes a user).
    read_marks: dict[str, float] | None = None
    account: str = ""  # the account they identified for ("": none), as the accounts have it
    bot: bool = False  # marked a bot: what it says carries the `bot` tag (chatd.core.tags)
    realname: str = ""  # as the door gave it (IRC's USER), or as they changed it since (SETNAME)
    signon: float = 0.0  # when they logged in (unix time)
    active_at: float = 0.0  # when they last said something (for idle times)

    def update_view(self) -> None:
        keys = frozenset(self.channels)
        if not self.session.quiet_lobby:  # it hears every channel's comings and goings
            keys |= {channel.comings for channel in self.channels.values()}
        view = (keys, None if self.current is None else self.current.name)
        # Members in the same channels share one view value: in a lobby of thousands, one frozenset, not thousands.
        if len(_shared_views) >= MAX_SHARED_VIEWS:
            _shared_views.clear()
        self.view = _shared_views.setdefault(view, view)


# The views in use, each value kept once (Member.update_view); cleared when full, which only ends some sharing.
MAX_SHARED_VIEWS = 4096
_shared_views: dict[tuple[frozenset[str], str | None], tuple[frozenset[str], str | None]] = {}


@define(eq=False)
class Remote:
    """A user on another node: a member of channels here, a holder of a nickname here, reached through its node."""

    node: str
    nick: str
    # By key, in the order this node learnt of them.
    channels: dict[str, Channel] = field(factory=dict)


def comings_of(channels: Iterable[Channel]) -> frozenset[str]:
    """The audience of the comings and goings of a user in these channels (see Channel.comings)."""
    return frozenset(channel.comings for channel in channels)


@define(eq=False)
class Channel:
    name: str  # as first created: "#Lab"
    history: History
    # The members on this node (whom the fan-out reaches), in the order they joined.
    members: dict[ISession, Member] = field(factory=dict)
    # The members on other nodes of the cluster, in the order this node learnt of them.
    elsewhere: dict[Remote, None] = field(factory=dict)
    topic: str = ""
    topic_by: str = ""  # who set it, and when (unix time)
    topic_at: float = 0.0
    modes: ChannelModes = field(factory=ChannelModes)
    # Members with a rank ("@" operator, "+" voiced, "@+" both), on any node.
    ranks: dict[ISession | Remote, str] = field(factory=dict)
    # Joins and leaves not announced one by one (see --quiet-joins), since
    # the last summary: how many, the nickname each session that came or
    # went had when it last did (by session here, by `Remote` elsewhere),
    # and the other names they came or went by (rare: someone who left,
    # renamed and came back).
    quiet_joins: int = 0
    quiet_leaves: int = 0
    turnover: dict[ISession | Remote, str] = field(factory=dict)
    turnover_names: set[str] = field(factory=set)
    key: str = field(init=False, default=Factory(lambda self: name_key(self.name), takes_self=True))
    # Who hears of its comings and goings (joins, parts, quits, renames, away,
    # crowd summaries), as an audience of the fan-out: its members, by its
    # key; in the default channel, only those whose door does not keep it
    # quiet (see ISession.quiet_lobby), by a key of their own (see make_lobby).
    comings: str = field(init=False, default=Factory(lambda self: self.key, takes_self=True))

    def make_lobby(self) -> None:
        """This is the default channel, where everyone is: its comings and goings have their own audience."""
        self.comings = f"{self.key} comings and goings"  # a space: never a channel's key

    def note_turnover(self, who: ISession | Remote, nick: str) -> None:
        """`who`, as `nick`, came or went without being announced."""
        earlier = self.turnover.get(who)
        if earlier is not None and earlier != nick:
            self.turnover_names.add(earlier)
        self.turnover[who] = nick

    @property
    def count(self) -> int:
        """Members on every node."""
        return len(self.members) + len(self.elsewhere)

    def nicks(self) -> list[str]:
        """Every member's nickname: this node's first, then other nodes'."""
        return [member.nick for member in self.members.values()] + [remote.nick for remote in self.elsewhere]

    def listed(self) -> list[str]:
        """Every member's nickname after their rank ("@alice", "+bob", "carol"), as member lists show them."""
        ranks = self.ranks
        if not ranks:
            return self.nicks()
        return ([ranks.get(member.session, "") + member.nick for member in self.members.values()]
                + [ranks.get(remote, "") + remote.nick for remote in self.elsewhere])

    def listed_for(self, session: ISession) -> list[str]:
        """
        The member list `session` is shown: everyone's (see `listed`), or in
        the lobby of a door that keeps it quiet, the session's own name, as
        an auditorium shows it (no JOIN or QUIT would keep a longer one right).
        """
        if self.comings == self.key or not session.quiet_lobby:
            return self.listed()
        member = self.members.get(session)
        return [] if member is None else [self.ranks.get(session, "") + member.nick]

    def rank_of(self, who: ISession | Remote) -> str:
        return self.ranks.get(who, "")

    def set_rank(self, who: ISession | Remote, rank: str, on: bool) -> bool:
        """Give (`on`) or take `who`'s "@" or "+"; True if that changed it."""
        had = self.ranks.get(who, "")
        now = ("@" if "@" in had or (on and rank == "@") else "") + ("+" if "+" in had or (on and rank == "+") else "")
        if not on:
            now = now.replace(rank, "")
        if now == had:
            return False
        if now:
            self.ranks[who] = now
        else:
            del self.ranks[who]
        return True

    def nick_of(self, who: ISession | Remote) -> str | None:
        """The nickname of `who` if they are a member."""
        if isinstance(who, Remote):
            return who.nick if who in self.elsewhere else None
        member = self.members.get(who)
        return None if member is None else member.nick
