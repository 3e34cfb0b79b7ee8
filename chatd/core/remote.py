"""
What one node of a cluster says of itself, and what it takes from the
others.  Pure.

With a cluster bus (Redis), every node learns of the users of the others
from their events and from the state each node publishes of itself (a
`NodeState`); both are checked here like any input (`checked`,
`checked_state`) before the core uses them.  Such a user is a
`chatd.core.channel.Remote`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from attrs import evolve, fields, frozen

from chatd.core.events import BusEvent, ModeChanged
from chatd.core.modes import (
    ChannelState,
    channel_state_from_list,
    channel_state_to_list,
    checked_channel_state,
    is_mode_change,
)
from chatd.core.nicknames import ChannelNameError, NicknameError, check_channel_name, check_nickname
from chatd.core.text import clean
from chatd.core.tags import checked_msgid, checked_tags

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
    channels: tuple[ChannelState, ...] = ()


def state_to_json(state: NodeState) -> str:
    """
    A node's state as one JSON object: {"users": [[NICK, [CHANNEL, ...]], ...],
    "topics": [[CHANNEL, TEXT, BY, AT], ...], "bans": [[ADDRESS, UNTIL or null], ...],
    "channels": [[CHANNEL, FLAGS, KEY, LIMIT, [[LIST, MASK, BY, AT], ...], FOUNDER, CREATED, CHANGED,
    [[NICK, RANK], ...]], ...]}.
    """
    return json.dumps({
        "users": [[nick, list(channels)] for nick, channels in state.users],
        "topics": [[topic.channel, topic.text, topic.by, topic.at] for topic in state.topics],
        "bans": [[address, until] for address, until in state.bans],
        "channels": [channel_state_to_list(modes) for modes in state.channels],
    }, ensure_ascii=False)


def state_from_json(text: str) -> NodeState:
    """The state `state_to_json` wrote; ValueError if it is not one."""
    try:
        fields = json.loads(text)
        return NodeState(
            tuple((str(nick), tuple(str(name) for name in channels)) for nick, channels in fields["users"]),
            tuple(Topic(str(channel), str(topic), str(by), float(at)) for channel, topic, by, at in fields["topics"]),
            tuple((str(address), None if until is None else float(until))
                  for address, until in fields.get("bans", ())),
            tuple(channel_state_from_list(fields) for fields in fields.get("channels", ())))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"not a node's state: {error}") from error


# The fields of events that name a user or a channel: what arrives from the
# bus must be a name this node would have accepted itself.
_NICK_FIELDS = frozenset({"nick", "old", "new", "to", "by"})


def checked(event: BusEvent) -> BusEvent | None:
    """
    An event from the bus as this node would have made it: every text
    cleaned (IRC's formatting kept, as the IRC door keeps it), names valid;
    None if a name is not.  Redis is shared, so what is in it is input like
    any other: nothing from it reaches a screen as control bytes.
    """
    changes: dict[str, Any] = {}  # field name -> its checked text (typed Any: evolve checks per event type)
    try:
        for attribute in fields(type(event)):
            value = getattr(event, attribute.name)
            if type(value) is not str or attribute.name == "origin":
                continue
            if attribute.name in _NICK_FIELDS:
                wanted = _nickname(value)
            elif attribute.name == "account":  # a registered nickname, or "": none
                wanted = _nickname(value) if value else ""
            elif attribute.name == "channel":
                wanted = _channel_name(value)
            elif attribute.name == "tags":
                wanted = checked_tags(value)
            elif attribute.name == "msgid":
                wanted = checked_msgid(value)
            else:
                wanted = clean(value, keep_formatting=True)
            if wanted != value:
                changes[attribute.name] = wanted
    except (NicknameError, ChannelNameError):
        return None
    if isinstance(event, ModeChanged):
        kept = tuple((change, argument) for change, argument in event.changes
                     if is_mode_change(change, argument))
        if kept != event.changes:
            changes["changes"] = kept
    return evolve(event, **changes) if changes else event




@lru_cache(maxsize=4096)  # a chat's few names come again and again
def _nickname(name: str) -> str:
    return check_nickname(name)


@lru_cache(maxsize=4096)
def _channel_name(name: str) -> str:
    return check_channel_name(name)


def checked_state(state: NodeState) -> NodeState:
    """A node's state from the bus, as `checked` takes events: users and topics with invalid names left out."""
    users = []
    for nick, channels in state.users:
        try:
            users.append((check_nickname(nick), tuple(check_channel_name(name) for name in channels)))
        except (NicknameError, ChannelNameError):
            continue
    topics = []
    for topic in state.topics:
        try:
            topics.append(Topic(check_channel_name(topic.channel), clean(topic.text, keep_formatting=True),
                                check_nickname(topic.by), topic.at))
        except (NicknameError, ChannelNameError):
            continue
    kept_modes = [checked for modes in state.channels if (checked := checked_channel_state(modes)) is not None]
    return NodeState(tuple(users), tuple(topics), state.bans, tuple(kept_modes))
