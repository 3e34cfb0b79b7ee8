"""
A session: one user on any front door, as the core sees it.

The core reaches connections only through this interface, so it runs the
same for telnet, IRC and web users, and is tested with recording fakes.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Attribute, Interface

from chatd.core.batch import Share


class ISession(Interface):
    address = Attribute("The address the user comes from, as a string (for bans).")
    username = Attribute(
        "The user name the door was given (IRC's USER), or \"\": the nickname stands for it (in ban masks)."
    )
    realname = Attribute("The real name the door was given (IRC's USER), or \"\".")
    dialect = Attribute(
        "A hashable value that encodes events for this session (see chatd.core.batch.IDialect); "
        "sessions with equal dialects share the same bytes."
    )
    lists_members = Attribute(
        "True if this session's door shows a channel's members when it joins (IRC's NAMES): its LoggedIn and "
        "ChannelJoined replies then carry them.  Others ask (Names) when they want them, so a storm of logins "
        "into a big channel does not list it once per login."
    )
    quiet_lobby = Attribute(
        "True if this session's door keeps the default channel quiet, as InspIRCd's auditorium mode does: it "
        "hears what is said there, not who comes and goes, and is shown itself as its members (IRC: a LAN's lobby "
        "is everyone, hundreds at a party, and an IRC client would keep its member list from a JOIN and a QUIT "
        "each).  Every other channel it hears in full."
    )
    hears_tags = Attribute(
        "True if this session's door shows IRCv3 client tags (an IRC client that negotiated message-tags): "
        "TAGMSG's tags (replies.Tagged) are sent to it, and to no other."
    )
    hears_watched = Attribute(
        "True if this session hears of the users it watches (MONITOR) what it would of its channel-mates: their "
        "away and real name changes (IRCv3 extended-monitor), when it shares no channel with them."
    )

    def deliver(share: Share) -> None:
        """Send this share of a turn's events.  Must not block."""

    def send(replies: Sequence[object]) -> None:
        """Send these replies (a sequence of chatd.core.replies values, or the front door's own).  Must not block."""

    def disconnect(reason: str) -> None:
        """Close once what was delivered has been sent."""
