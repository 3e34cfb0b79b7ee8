"""
Commands: what a user asks the chat to do, whatever front door they use.
Pure values.

Each front door parses its own syntax into these (`/join #lab` on telnet,
`JOIN #lab` on IRC) and hands them to `ChatServer.handle`.  A channel of
None means the user's current channel.
"""

from __future__ import annotations

from attrs import field, frozen


@frozen
class LogIn:
    """
    Choose a nickname and enter the chat (and its default channel).  A
    registered nickname takes its password: given here (IRC's PASS), else
    asked for (replies.PasswordWanted), or, for a door that cannot ask
    (IRC), the user enters as a guest and may /identify later.
    """

    nick: str
    password: str | None = field(default=None, repr=False)
    as_guest: bool = False


@frozen
class Say:
    text: str
    channel: str | None = None
    tags: str = field(default="", kw_only=True)  # IRCv3 client tags (see chatd.core.tags)
    msgid: str = field(default="", kw_only=True)  # given by a door that echoes it (else the core makes one)


@frozen
class Act:
    text: str
    channel: str | None = None
    tags: str = field(default="", kw_only=True)  # IRCv3 client tags (see chatd.core.tags)
    msgid: str = field(default="", kw_only=True)  # given by a door that echoes it (else the core makes one)


@frozen
class Notice:
    """A notice to a channel (IRC's NOTICE): shown like a message, not kept, never answered with an error."""

    text: str
    channel: str | None = None
    tags: str = field(default="", kw_only=True)  # IRCv3 client tags (see chatd.core.tags)
    msgid: str = field(default="", kw_only=True)  # given by a door that echoes it (else the core makes one)


@frozen
class Msg:
    """A private message to one user (a notice: never kept for them while away)."""

    nick: str
    text: str
    notice: bool = False
    tags: str = field(default="", kw_only=True)  # IRCv3 client tags (see chatd.core.tags)
    msgid: str = field(default="", kw_only=True)  # given by a door that echoes it (else the core makes one)


@frozen
class Tag:
    """
    IRCv3 TAGMSG: client tags without a message (typing notices), to a
    channel or a user; they reach those whose door hears tags (see
    ISession.hears_tags), on this node.
    """

    target: str
    tags: str
    msgid: str = ""


@frozen
class Join:
    channel: str
    key: str = field(default="", repr=False)  # a +k channel's key


@frozen
class Part:
    channel: str | None = None
    reason: str = ""


@frozen
class Topic:
    """Show the topic (text None), set it, or clear it (text "")."""

    channel: str | None = None
    text: str | None = None


@frozen
class Mode:
    """
    Show a channel's modes (no words), list its bans or exceptions (`b`,
    `e`), or change them: `+k secret`, `+o-v bob carol` (chatd.core.modes).
    """

    channel: str | None
    words: tuple[str, ...] = ()


@frozen
class KickFrom:
    """An operator of a channel puts `nick` out of it (the user stays online)."""

    channel: str | None
    nick: str
    reason: str = ""


@frozen
class Invite:
    """Invite `nick` into a channel (past +i, +k, +l and +b, once)."""

    nick: str
    channel: str | None = None


@frozen
class Away:
    """Mark oneself away, with why; text "": back."""

    text: str = ""


@frozen
class ChatHistory:
    """
    A channel's history as IRCv3 chathistory asks for it: `kind` (LATEST,
    BEFORE, AFTER, AROUND, BETWEEN), its references (chatd.core.history's),
    at most `limit` lines.
    """

    kind: str
    target: str
    first: tuple[str, float | str | None]
    second: tuple[str, float | str | None] | None
    limit: int


@frozen
class ChatHistoryTargets:
    """IRCv3 chathistory's TARGETS: one's channels that had a message between two times, the latest first."""

    start: float
    end: float
    limit: int


@frozen
class MarkRead:
    """
    How far one has read a channel or a private conversation (IRCv3
    read-marker): set it to `at` (unix time; it only ever moves on), or,
    with None, ask for it.
    """

    target: str
    at: float | None = None


@frozen
class SetBot:
    """Mark oneself a bot (or not), as IRCv3's bot mode: others see it in WHOIS, WHO and on every message."""

    bot: bool


@frozen
class SetRealName:
    """Change one's real name (IRCv3 SETNAME), as WHOIS shows it."""

    realname: str


@frozen
class Whois:
    """What there is to know of the user online as `nick`."""

    nick: str


@frozen
class Watch:
    """Hear when these nicknames come online and go (IRC's MONITOR +); the session is told which are online now."""

    nicks: tuple[str, ...]


@frozen
class Unwatch:
    """Stop hearing of these nicknames (None: of every one)."""

    nicks: tuple[str, ...] | None = None


@frozen
class Channels:
    """Which channels there are."""


@frozen
class Names:
    """Who is in a channel; channel None: everyone online."""

    channel: str | None = None


@frozen
class Nick:
    """Change nickname."""

    nick: str


@frozen
class Quit:
    reason: str = "Quit"


@frozen
class Oper:
    password: str


@frozen
class Kick:
    nick: str
    reason: str = ""


# How long a ban lasts when its operator does not say.
DEFAULT_BAN_MINUTES = 60.0


@frozen
class Ban:
    target: str  # a nickname or an address
    minutes: float  # 0: until restart


@frozen
class Unban:
    address: str


@frozen
class Bans:
    pass


@frozen
class Identify:
    """
    Prove an account's password.  Before logging in: the answer to
    PasswordWanted (nick None), or an account named up front (IRC's SASL).
    Logged in: take registered `nick` (None: the one wanted at login, or
    the current one).
    """

    password: str = field(repr=False)
    nick: str | None = None


@frozen
class Register:
    """Keep the current nickname for its user, with this password."""

    password: str = field(repr=False)


@frozen
class ChangePassword:
    old: str = field(repr=False)
    new: str = field(repr=False)


@frozen
class Unregister:
    password: str = field(repr=False)


@frozen
class History:
    """Older lines of the current channel (or `channel`), from the store."""

    count: int
    channel: str | None = None
    before: float | None = None  # unix time: lines said before it


@frozen
class Mentions:
    """The lines that named the user while they were away."""


@frozen
class Read:
    """The user has read `channel` up to now (the server's time): kept for an identified user's unread counts."""

    channel: str


Command = (LogIn | Say | Act | Notice | Msg | Tag | Join | Part | Topic | Mode | KickFrom | Invite | Away | ChatHistory | ChatHistoryTargets | MarkRead | SetBot | SetRealName | Whois | Watch | Unwatch | Channels | Names | Nick | Quit | Oper | Kick | Ban | Unban | Bans
           | Identify | Register | ChangePassword | Unregister | History | Mentions | Read)
