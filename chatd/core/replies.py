"""
Replies: what the core answers one session, as values.  Pure.

Each front door renders them its own way (a `*** ...` line on telnet, a
numeric on IRC, a JSON object on the web), from what the reply carries: a
door never reads a core object.  `Error.code` names the kind of refusal
for front doors that have a code of their own for it (IRC's numerics),
`Error.subject` what it is about, and `Error.reason` is the sentence a
person reads, in no door's syntax.
"""

from __future__ import annotations

from attrs import field, frozen

from chatd.core.events import Event
from chatd.core.store import Note


@frozen
class LoggedIn:
    """The session has its nickname and is in `channel` (the default one): its members, topic and history."""

    nick: str
    channel: str
    history: tuple[Event, ...] = ()
    nicks: tuple[str, ...] = ()  # for a session that lists_members (see ISession)
    topic: str = ""
    topic_by: str = ""  # who set it, and when (unix time)
    topic_at: float = 0.0
    account: str = ""  # the registered nickname the session identified for ("": none)


@frozen
class ChannelJoined:
    """The session joined `channel`: how many are in it now, its topic and history, and its members."""

    channel: str
    count: int
    topic: str
    history: tuple[Event, ...] = ()
    nicks: tuple[str, ...] = ()  # for a session that lists_members (see ISession)
    topic_by: str = ""
    topic_at: float = 0.0
    secret: bool = False  # +s


@frozen
class NowTalkingIn:
    """A /join of a channel the user is in: it is now their current one."""

    channel: str


@frozen
class ChannelParted:
    channel: str
    current: str | None  # the user's current channel now; None: in no channel
    reason: str = ""  # as the user gave it (IRC clients show it in their own PART)


@frozen
class UserList:
    """Everyone online."""

    nicks: tuple[str, ...]


@frozen
class ChannelMembers:
    channel: str
    nicks: tuple[str, ...]  # each after its rank ("@alice")
    secret: bool = False  # +s


@frozen
class ChannelInfo:
    name: str
    count: int
    topic: str


@frozen
class ChannelList:
    channels: tuple[ChannelInfo, ...]


@frozen
class TopicShown:
    channel: str
    topic: str  # "": none set
    by: str = ""  # who set it, and when (unix time)
    at: float = 0.0


@frozen
class ModesShown:
    """A channel's modes ("+klnt"), their arguments (a key only to its members), and when it was made."""

    channel: str
    modes: str
    arguments: tuple[str, ...]
    created_at: float


@frozen
class MaskList:
    """A channel's bans (`kind` "b") or exceptions ("e"): (mask, set by, at)."""

    channel: str
    kind: str
    entries: tuple[tuple[str, str, float], ...]


@frozen
class Inviting:
    """To whoever invited `nick` into `channel`."""

    nick: str
    channel: str


@frozen
class InvitedTo:
    """`by` invited the session into `channel`."""

    by: str
    channel: str


@frozen
class AwayChanged:
    """The session is marked away now (or back)."""

    away: bool


@frozen
class UserCounts:
    """How many are online (IRC's LUSERS): everywhere (every node), here, the channels, and the most so far."""

    everyone: int
    here: int
    channels: int
    most_everyone: int
    most_here: int


@frozen
class ChatHistoryFound:
    """What commands.ChatHistory found of `target`'s history (oldest first)."""

    target: str
    events: tuple[Event, ...]


@frozen
class ChatHistoryTargetsFound:
    """commands.ChatHistoryTargets' answer: (channel, when its latest message was said), the latest first."""

    targets: tuple[tuple[str, float], ...]


@frozen
class ReadMarker:
    """How far the session has read `target` (unix time), or None: not known (commands.MarkRead)."""

    target: str
    at: float | None


@frozen
class BotMarked:
    """The session is marked a bot now (or not): what it says carries IRCv3's `bot` tag (commands.SetBot)."""

    bot: bool


@frozen
class IsAway:
    """To the sender of a private message: its recipient is marked away, and why."""

    nick: str
    text: str


@frozen
class UserInfo:
    """
    What there is to know of a user online (WHOIS): of one on another node
    of a cluster, its nickname, channels and node only.
    """

    nick: str
    username: str  # the door's (IRC's USER), else the nickname
    realname: str
    channels: tuple[str, ...]  # each after the user's rank in it ("@#lab"); secret ones only to who shares them
    away: str = ""
    signon: float = 0.0  # 0: not known (another node's user)
    idle_seconds: float = 0.0
    account: str = ""
    operator: bool = False  # of the server
    node: str = ""  # "": this one
    bot: bool = False  # marked a bot (commands.SetBot)


@frozen
class WatchedOnline:
    """Nicknames the session watches that are online (now, or that just came)."""

    nicks: tuple[str, ...]


@frozen
class WatchedOffline:
    nicks: tuple[str, ...]


@frozen
class WatchListFull:
    """These nicknames were not added: the session watches the most it may (chatd.core.watchers.MAX_WATCHED)."""

    nicks: tuple[str, ...]


@frozen
class PrivateSent:
    """To the sender of a private message (or notice)."""

    to: str
    text: str
    notice: bool = False
    msgid: str = field(default="", kw_only=True, eq=False)  # as chatd.core.events' messages have them
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class PrivateReceived:
    """To the recipient of a private message."""

    sender: str
    text: str
    notice: bool = False
    msgid: str = field(default="", kw_only=True, eq=False)  # as chatd.core.events' messages have them
    tags: str = field(default="", kw_only=True, eq=False)


@frozen
class Tagged:
    """Client tags without a message (commands.Tag), to a session that hears tags: `target` is a channel or them."""

    target: str
    nick: str
    tags: str
    msgid: str


@frozen
class Bye:
    pass


@frozen
class OperatorNow:
    pass


@frozen
class KickedOut:
    """To a user an operator kicked, before the connection closes."""

    by: str
    reason: str


@frozen
class BanAdded:
    address: str
    minutes: float  # 0: until restart


@frozen
class BanLifted:
    address: str


@frozen
class BanList:
    bans: tuple[str, ...]  # "ADDRESS (until HH:MM)" or "ADDRESS (until restart)"


@frozen
class PasswordWanted:
    """`nick` is registered: the next thing the session sends is its password (a door hides it as it is typed)."""

    nick: str
    tries_left: int


@frozen
class GuestNickname:
    """`wanted` is registered and no password came (IRC): the session is `nick` until it identifies."""

    wanted: str
    nick: str


@frozen
class Identified:
    """The session proved it owns account `nick`."""

    nick: str


@frozen
class Registered:
    """`nick` is kept for the session from now on."""

    nick: str


@frozen
class PasswordChanged:
    nick: str


@frozen
class Unregistered:
    nick: str


@frozen
class NoteKept:
    """A private message to registered `to`, who is away: kept for when they come back."""

    to: str
    text: str


@frozen
class NotesWhileAway:
    """The private messages left for the session while it was away, oldest first (each is shown once)."""

    notes: tuple[Note, ...]


@frozen
class MentionsWhileAway:
    """How many lines named the user in each channel since they left: (channel, count), busiest first."""

    counts: tuple[tuple[str, int], ...]


@frozen
class MentionList:
    """The lines that named the user since they last left, oldest first."""

    events: tuple[Event, ...]


@frozen
class Unread:
    """At login, for an identified user: the lines said in each channel since they last read it there."""

    counts: tuple[tuple[str, int], ...]


@frozen
class HistoryShown:
    """Older lines of `channel`, from the store, oldest first."""

    channel: str
    events: tuple[Event, ...]


@frozen
class HistoryNotKept:
    """The store cannot write: what is said now reaches who is online, and is not kept (until it can be again)."""


@frozen
class HistoryKeptAgain:
    """The store writes again."""


@frozen
class Error:
    """A refusal: the sentence a person reads, its kind, and what it is about (a nickname, a channel), if anything."""

    reason: str
    code: str = "refused"
    subject: str = ""
    # What else it is about, that IRC's numerics name after the subject: the channel a user is (not) in, a
    # mode's letter and the argument refused.
    more: tuple[str, ...] = ()


Reply = (
    LoggedIn | ChannelJoined | NowTalkingIn | ChannelParted | UserList | ChannelMembers | ChannelList
    | TopicShown | ModesShown | MaskList | Inviting | InvitedTo | AwayChanged | BotMarked | ReadMarker | ChatHistoryFound | ChatHistoryTargetsFound | IsAway | UserInfo | WatchedOnline | WatchedOffline
    | WatchListFull | PrivateSent | PrivateReceived | Bye | OperatorNow | KickedOut | BanAdded | BanLifted
    | BanList | PasswordWanted | GuestNickname | Identified | Registered | PasswordChanged | Unregistered
    | NoteKept | NotesWhileAway | MentionsWhileAway | MentionList | Unread | HistoryShown | HistoryNotKept | HistoryKeptAgain
    | Error
)


@frozen
class ContactLost:
    """This node lost contact with the rest of its cluster; it serves its own users and retries."""


@frozen
class ContactRestored:
    """Back in contact with the rest of the cluster; `gap`: some of what was said elsewhere meanwhile is lost."""

    gap: bool = False
