"""
Commands: what a user asks the chat to do, whatever front door they use.
Pure values.

Each front door parses its own syntax into these (`/join #lab` on telnet,
`JOIN #lab` on IRC) and hands them to `ChatServer.handle`.  A channel of
None means the user's current channel.
"""

from __future__ import annotations

from attrs import frozen


@frozen
class LogIn:
    """Choose a nickname and enter the chat (and its default channel)."""

    nick: str


@frozen
class Say:
    text: str
    channel: str | None = None


@frozen
class Act:
    text: str
    channel: str | None = None


@frozen
class Msg:
    """A private message to one user."""

    nick: str
    text: str


@frozen
class Join:
    channel: str


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


Command = LogIn | Say | Act | Msg | Join | Part | Topic | Channels | Names | Nick | Quit | Oper | Kick | Ban | Unban | Bans
