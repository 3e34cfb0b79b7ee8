"""
Events: what happened in the chat, past tense, as values.  Pure.

The core makes them and fans them out; each front door renders them in its
own dialect; the transcript (and later the bus) stores them with the one
JSON codec below.  A channel event carries its channel; `Left` and
`Renamed` concern a user wherever they are, so they carry none.

Every event carries the unix time it happened (`at`) and the node it
happened on (`origin`, "" for this process), so that stored events say
when, and a cluster can tell its own events from other nodes'.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import lru_cache
from json.encoder import encode_basestring as _quote  # a JSON string, non-ASCII kept (C, where Python has it)
from typing import Any

from attrs import field, fields, frozen


@frozen
class _Happened:
    """What every event carries besides its own fields: when, and on which node ("": this one)."""

    at: float = field(default=0.0, kw_only=True)
    origin: str = field(default="", kw_only=True)


@frozen
class Said(_Happened):
    channel: str
    nick: str
    text: str
    # Its message id (IRCv3's msgid), and the tags its sender's client gave
    # it (IRCv3 client tags, as one wire string: "+typing=active;+draft/reply=x";
    # see chatd.core.tags).  Not compared: the same words are the same saying.
    msgid: str = field(default="", kw_only=True, eq=False)
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class Acted(_Happened):
    channel: str
    nick: str
    text: str
    # Its message id (IRCv3's msgid), and the tags its sender's client gave
    # it (IRCv3 client tags, as one wire string: "+typing=active;+draft/reply=x";
    # see chatd.core.tags).  Not compared: the same words are the same saying.
    msgid: str = field(default="", kw_only=True, eq=False)
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class Noticed(_Happened):
    """A notice (IRC's NOTICE, what bots send): shown like a message, never kept in history, never answered."""

    channel: str
    nick: str
    text: str
    # Its message id (IRCv3's msgid), and the tags its sender's client gave
    # it (IRCv3 client tags, as one wire string: "+typing=active;+draft/reply=x";
    # see chatd.core.tags).  Not compared: the same words are the same saying.
    msgid: str = field(default="", kw_only=True, eq=False)
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class Joined(_Happened):
    channel: str
    nick: str
    count: int  # members of the channel, the joiner included
    rank: str = ""  # "@" for an operator (who made the channel, or its founder), as chatd.core.modes names ranks
    away: str = ""  # why the joiner is away ("": here): IRC's away-notify tells it after the JOIN
    # The account the joiner identified for ("": none), and their real name:
    # IRC's extended-join.  Not compared, as a message's msgid is not.
    account: str = field(default="", eq=False)
    realname: str = field(default="", eq=False)


@frozen
class Parted(_Happened):
    """`nick` left one channel and stays online."""

    channel: str
    nick: str
    reason: str
    count: int  # members left in the channel


@frozen
class TopicChanged(_Happened):
    channel: str
    nick: str
    topic: str  # "": cleared


@frozen
class ModeChanged(_Happened):
    """`nick` changed `channel`'s modes (chatd.core.modes): each change and its argument ("" for none)."""

    channel: str
    nick: str
    changes: tuple[tuple[str, str], ...]


@frozen
class Kicked(_Happened):
    """`by`, an operator of `channel`, put `nick` out of it; `nick` stays online."""

    channel: str
    nick: str
    by: str
    reason: str
    count: int  # members left in the channel


@frozen
class Crowd(_Happened):
    """
    In a channel too big to announce each join and leave (--quiet-joins):
    how many joined and left since the last such summary; and, so that a
    front door that shows member lists keeps them right, the nicknames of
    those who came and are in (`joiners`) and of those gone (`leavers`:
    every name they came or went by that no member has now).
    """

    channel: str
    joined: int
    left: int
    count: int
    joiners: tuple[str, ...] = ()
    leavers: tuple[str, ...] = ()


@frozen
class Renamed(_Happened):
    old: str
    new: str


@frozen
class AwayChanged(_Happened):
    """`nick` is away now, and why (text ""): back; told to whoever shares a channel with them."""

    nick: str
    text: str


@frozen
class Invited(_Happened):
    """`by` invited `nick` into `channel`; its members are told (IRC's invite-notify)."""

    channel: str
    nick: str
    by: str


@frozen
class AccountChanged(_Happened):
    """`nick` identified for `account` ("": no account any more); told to whoever shares a channel (account-notify)."""

    nick: str
    account: str


@frozen
class RealNameChanged(_Happened):
    """`nick` changed their real name (IRCv3 SETNAME); told to whoever shares a channel with them, and them."""

    nick: str
    realname: str


@frozen
class Left(_Happened):
    """`nick` left the chat (quit, lost, kicked, banned ...), and so every channel."""

    nick: str
    reason: str


Event = (Said | Acted | Noticed | Joined | Parted | TopicChanged | ModeChanged | Kicked | Invited | Crowd | Renamed
         | AwayChanged | RealNameChanged | AccountChanged | Left)


# -- what only the cluster's bus carries: requests to the node that has a
# user, and changes every node makes to its own state.  Never fanned out
# as they are, never in the transcript.

@frozen
class Whispered(_Happened):
    """A private message from `nick` to `to`, who is on another node."""

    nick: str
    to: str
    text: str
    notice: bool = False
    # Its message id (IRCv3's msgid), and the tags its sender's client gave
    # it (IRCv3 client tags, as one wire string: "+typing=active;+draft/reply=x";
    # see chatd.core.tags).  Not compared: the same words are the same saying.
    msgid: str = field(default="", kw_only=True, eq=False)
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class InviteSent(_Happened):
    """`nick` invited `to`, a user on another node, into `channel`."""

    nick: str
    to: str
    channel: str


@frozen
class Banned(_Happened):
    """
    An operator (`by`) banned `target` for `minutes` (0: until restart):
    an address, which every node bans, or the nickname of a user, whose
    node bans their address and tells the others that address.
    """

    target: str
    minutes: float
    by: str


@frozen
class Unbanned(_Happened):
    address: str


@frozen
class KickOrdered(_Happened):
    """An operator (`by`) kicked `nick`, a user on another node."""

    nick: str
    by: str
    reason: str


BusEvent = Event | Whispered | InviteSent | Banned | Unbanned | KickOrdered

# Messages and actions: what history keeps and a joiner is shown.
MESSAGES = (Said, Acted)

# -- the JSON codec: one object per event, one line each

_KINDS: dict[str, type[Any]] = {
    "said": Said, "acted": Acted, "noticed": Noticed, "joined": Joined, "parted": Parted, "topic": TopicChanged,
    "mode": ModeChanged, "kicked": Kicked, "invited": Invited, "crowd": Crowd, "renamed": Renamed, "away": AwayChanged,
    "realname": RealNameChanged, "account": AccountChanged, "left": Left,
    "whispered": Whispered, "invite-sent": InviteSent, "banned": Banned, "unbanned": Unbanned, "kick-ordered": KickOrdered,
}
# Each kind's name, as the transcript (and every front door that names events) calls it.
KIND_NAMES: dict[type[Any], str] = {kind: name for name, kind in _KINDS.items()}
# Each kind's own fields, in order (not `at` and `origin`, which every event has).
FIELDS: dict[type[Any], tuple[str, ...]] = {
    kind: tuple(field.name for field in fields(kind) if field.name not in ("at", "origin")) for kind in KIND_NAMES}
# What a message carries for IRC clients (IRCv3's msgid and client tags), apart from what it says.
MESSAGE_META = ("msgid", "tags")
# What a join carries for IRC clients (extended-join), apart from who joined where.
JOIN_META = ("account", "realname")
# Fields the JSON codec leaves out when they are empty (and reads back as empty when left out).
LEFT_OUT_WHEN_EMPTY = (*MESSAGE_META, *JOIN_META, "away")
# Each kind's fields as a reader sees them (the web page): FIELDS without MESSAGE_META and JOIN_META.
SHOWN_FIELDS: dict[type[Any], tuple[str, ...]] = {
    kind: tuple(name for name in names if kind is AccountChanged or name not in (*MESSAGE_META, *JOIN_META))
    for kind, names in FIELDS.items()}
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def to_json(event: BusEvent, exact_time: bool = False) -> str:
    """
    One JSON object (no newline), e.g.
    {"ts": "2026-11-21T14:02:09Z", "event": "said", "channel": "#lobby", "nick": "alice", "text": "hi"}

    With `exact_time` (the cluster's bus), "ts" is the unix time as a
    number, to the microsecond, which is also quicker to read back.

    What json.dumps(..., ensure_ascii=False) makes of the same fields, built
    here from the json module's own string encoder: every event the store,
    the cluster's bus and the transcript keep is encoded with this, and
    json.dumps of a dict costs several times more.
    """
    stamp = repr(event.at) if exact_time else f'"{_stamp(int(event.at))}"'
    if isinstance(event, _MESSAGE_KINDS):
        return _message_json(event, stamp)
    return _fields_json(event, stamp)


# The kinds of most events, with the same fields, in this order: written out in one step.
_MESSAGE_KINDS = (Said, Acted, Noticed)


def _message_json(event: Said | Acted | Noticed, stamp: str) -> str:
    """What `_fields_json` makes of a message, written out: the store and the cluster encode every line said."""
    line = (f'{{"ts": {stamp}, "event": "{KIND_NAMES[type(event)]}", "channel": {_quote(event.channel)}, '
            f'"nick": {_quote(event.nick)}, "text": {_quote(event.text)}')
    if event.msgid:
        line += f', "msgid": {_quote(event.msgid)}'
    if event.tags:
        line += f', "tags": {_quote(event.tags)}'
    if event.origin:
        line += f', "origin": {_quote(event.origin)}'
    return line + "}"


def _fields_json(event: BusEvent, stamp: str) -> str:
    """Any event, field by field, in FIELDS' order (an empty one of LEFT_OUT_WHEN_EMPTY left out)."""
    kind = type(event)
    parts = [f'{{"ts": {stamp}, "event": "{KIND_NAMES[kind]}"']
    for name in FIELDS[kind]:
        value = getattr(event, name)
        if not value and name in LEFT_OUT_WHEN_EMPTY:  # most messages have no tags, most joiners are here
            continue
        parts.append(f', "{name}": {_quote(value) if type(value) is str else json.dumps(value, ensure_ascii=False)}')
    if event.origin:
        parts.append(f', "origin": {_quote(event.origin)}')
    parts.append("}")
    return "".join(parts)


@lru_cache(maxsize=256)
def _stamp(when: int) -> str:
    """The time of an event, to the second (many events share one)."""
    return datetime.fromtimestamp(when, timezone.utc).strftime(_TIME_FORMAT)


def from_json(line: str, default_channel: str, origin: str = "") -> BusEvent | None:
    """
    The event of one JSON line, or None for a line that is not one (a torn
    last line, another program's).  A channel event from before channels
    existed (no "channel") happened in `default_channel`; one that does not
    name its node happened on `origin`.
    """
    try:
        fields = json.loads(line)
        kind = _KINDS[fields.pop("event")]
        stamp = fields.pop("ts")
        try:
            when = float(stamp)
        except (TypeError, ValueError):
            when = datetime.strptime(stamp, _TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        if kind in (Said, Acted, Noticed, Joined, Parted, TopicChanged, Crowd):
            fields.setdefault("channel", default_channel)
        if kind is Crowd:
            for name in ("joiners", "leavers"):
                fields[name] = tuple(fields.get(name, ()))
        if kind is ModeChanged:
            fields["changes"] = tuple((str(change), str(argument)) for change, argument in fields["changes"])
        fields.setdefault("origin", origin)
        event: BusEvent = kind(**fields, at=when)
        return event
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
