"""
A channel: its members, its topic and its recent history.  Pure.

The server (chatd.core.server) decides who may join and what is announced;
a channel only keeps its state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import Factory, define, field

from chatd.core.history import History
from chatd.core.nicknames import name_key

if TYPE_CHECKING:
    from chatd.core.server import Member
    from chatd.core.session import ISession


@define(eq=False)
class Channel:
    name: str  # as first created: "#Lab"
    history: History
    # In the order they joined.
    members: dict[ISession, Member] = field(factory=dict)
    topic: str = ""
    topic_by: str = ""  # who set it, and when (unix time)
    topic_at: float = 0.0
    # Joins and leaves not announced one by one (see --quiet-joins), since
    # the last summary: how many, the nickname each session that came or
    # went had when it last did, and the other names they came or went by
    # (rare: someone who left, renamed and came back).
    quiet_joins: int = 0
    quiet_leaves: int = 0
    turnover: dict[ISession, str] = field(factory=dict)
    turnover_names: set[str] = field(factory=set)

    def note_turnover(self, session: ISession, nick: str) -> None:
        """`session`, as `nick`, came or went without being announced."""
        earlier = self.turnover.get(session)
        if earlier is not None and earlier != nick:
            self.turnover_names.add(earlier)
        self.turnover[session] = nick
    key: str = field(init=False, default=Factory(lambda self: name_key(self.name), takes_self=True))

    @property
    def count(self) -> int:
        return len(self.members)

    def nicks(self) -> list[str]:
        return [member.nick for member in self.members.values()]
