"""
The rest of the cluster, as one node knows it.  Pure.

With a cluster bus (Redis), every node learns of the users of the others
from their events and from the state each node publishes of itself (a
`NodeState`).  A `Remote` is such a user: a member of channels here, a
holder of a nickname here, but reached only through its own node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from attrs import define, field, frozen

if TYPE_CHECKING:
    from chatd.core.channel import Channel


@define(eq=False)
class Remote:
    """A user on another node."""

    node: str
    nick: str
    # By key, in the order this node learnt of them.
    channels: dict[str, Channel] = field(factory=dict)


@frozen
class Topic:
    channel: str
    text: str
    by: str
    at: float


@frozen
class NodeState:
    """
    What a node says of itself for others to start from: its users, each
    with the names of their channels (in the order joined), and the topics
    it knows (of every channel, so a channel's topic outlives its setter's
    node).
    """

    users: tuple[tuple[str, tuple[str, ...]], ...] = ()
    topics: tuple[Topic, ...] = ()
