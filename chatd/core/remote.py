"""
The rest of the cluster, as one node knows it.  Pure.

With a cluster bus (Redis), every node learns of the users of the others
from their events and from the state each node publishes of itself (a
`NodeState`).  A `Remote` is such a user: a member of channels here, a
holder of a nickname here, but reached only through its own node.
"""

from __future__ import annotations

import json
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
    with the names of their channels (in the order joined), the topics it
    knows (of every channel, so a channel's topic outlives its setter's
    node) and the bans (address, until: unix time, None until restart).
    """

    users: tuple[tuple[str, tuple[str, ...]], ...] = ()
    topics: tuple[Topic, ...] = ()
    bans: tuple[tuple[str, float | None], ...] = ()


def state_to_json(state: NodeState) -> str:
    """
    A node's state as one JSON object: {"users": [[NICK, [CHANNEL, ...]], ...],
    "topics": [[CHANNEL, TEXT, BY, AT], ...], "bans": [[ADDRESS, UNTIL or null], ...]}.
    """
    return json.dumps({
        "users": [[nick, list(channels)] for nick, channels in state.users],
        "topics": [[topic.channel, topic.text, topic.by, topic.at] for topic in state.topics],
        "bans": [[address, until] for address, until in state.bans],
    }, ensure_ascii=False)


def state_from_json(text: str) -> NodeState:
    """The state `state_to_json` wrote; ValueError if it is not one."""
    try:
        fields = json.loads(text)
        return NodeState(
            tuple((str(nick), tuple(str(name) for name in channels)) for nick, channels in fields["users"]),
            tuple(Topic(str(channel), str(topic), str(by), float(at)) for channel, topic, by, at in fields["topics"]),
            tuple((str(address), None if until is None else float(until))
                  for address, until in fields.get("bans", ())))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a node's state: {error}") from error
