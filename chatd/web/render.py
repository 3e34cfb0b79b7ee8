"""
The web front door's every message to the browser, as JSON.  Pure.

Each message is one JSON object with a "type" (see chatd.web.protocol for
the whole protocol).  The page shows what it gets as text, never as HTML,
and IRC users' bold and colours are left out (chatd.core.text.plain).
The sentences a person reads (errors) are here, as the telnet door's are
in chatd.telnet.render.
"""

from __future__ import annotations

import json
from json.encoder import encode_basestring as _quote  # a JSON string, non-ASCII kept
from typing import Any

from chatd.core import replies
from chatd.core.events import KIND_NAMES, SHOWN_FIELDS, Event
from chatd.core.text import plain


def utf8(text: str) -> bytes:
    """`text` as UTF-8; a lone surrogate (which no valid text holds) becomes "?"."""
    return text.encode("utf-8", "replace")


def message(kind: str, **fields: Any) -> bytes:
    """One message: {"type": KIND, FIELD: VALUE, ...} as UTF-8."""
    return utf8(json.dumps({"type": kind, **fields}, ensure_ascii=False, separators=(",", ":")))


def event(happened: Event) -> str:
    """
    One event as the browser gets it: a JSON array of its kind, its unix
    time in seconds, then its fields in the order the transcript has them,

        ["said", 1795000000, "#lab", "alice", "hi"]

    An array, not the transcript's object: fan-out sends every event to
    every member, and with chat-sized lines the objects' keys made the web's
    bytes per delivery (and the time to send them) over twice telnet's.
    """
    kind = type(happened)
    values = [_quote(plain(value)) if type(value) is str else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
              for value in map(happened.__getattribute__, SHOWN_FIELDS[kind])]
    return f'["{KIND_NAMES[kind]}",{int(happened.at)},{",".join(values)}]'


def _events(recent: tuple[Event, ...]) -> list[Any]:
    return [json.loads(event(item)) for item in recent]


def _oldest(recent: tuple[Event, ...]) -> float | None:
    """
    The exact time of the first of these lines: what the page asks for
    older lines "before" (an event's own time is in whole seconds, and a
    busy channel says many lines in one).
    """
    return recent[0].at if recent else None


def welcome(server_name: str, count: int, https: tuple[int, str] | None = None, accounts: bool = False) -> bytes:
    """
    The first word to a browser; `https`: where the page is over TLS, and
    its certificate's fingerprint; `accounts`: whether nicknames can be
    registered here.
    """
    if https is None:
        return message("welcome", server=server_name, users=count, accounts=accounts)
    port, fingerprint = https
    return message("welcome", server=server_name, users=count, accounts=accounts,
                   https={"port": port, "fingerprint": fingerprint})


def error(reason: str, code: str = "refused") -> bytes:
    return message("error", reason=reason, code=code)


def line_too_long(max_bytes: int) -> bytes:
    return error(f"line too long (max {max_bytes} bytes)", "line-too-long")


def closing(reason: str, code: str) -> bytes:
    """The server is about to close this connection, and why."""
    return message("closing", reason=reason, code=code)


def shutting_down() -> bytes:
    return closing("server shutting down", "shutting-down")


def login_timeout(seconds: float) -> bytes:
    return closing(f"no nickname chosen within {seconds:g} s", "login-timeout")


def idle_timeout(seconds: float) -> bytes:
    return closing(f"no input for {seconds:g} s", "idle-timeout")


def ping_timeout() -> bytes:
    return closing("no answer to pings", "ping-timeout")


def bad_message(reason: str) -> bytes:
    """A message the server cannot read: the connection closes."""
    return closing(reason, "bad-message")


def reply(answer: object) -> bytes:
    """One of the core's replies (or a message of this door's own, already bytes)."""
    if isinstance(answer, bytes):
        return answer
    match answer:
        case replies.LoggedIn(nick, channel, recent, account=account):
            return message("logged-in", nick=nick, channel=channel, history=_events(recent), oldest=_oldest(recent),
                           account=account)
        case replies.ChannelJoined(channel, count, topic, recent):
            return message("channel-joined", channel=channel, count=count, topic=plain(topic), history=_events(recent),
                           oldest=_oldest(recent))
        case replies.NowTalkingIn(channel):
            return message("now-talking-in", channel=channel)
        case replies.ChannelParted(channel, current):
            return message("channel-parted", channel=channel, current=current)
        case replies.UserList(nicks):
            return message("users", nicks=list(nicks))
        case replies.ChannelMembers(channel, nicks):
            return message("members", channel=channel, nicks=list(nicks))
        case replies.ChannelList(channels):
            return message("channels", channels=[{"name": info.name, "count": info.count, "topic": plain(info.topic)}
                                                 for info in channels])
        case replies.TopicShown(channel, topic):
            return message("topic", channel=channel, topic=plain(topic))
        case replies.ModesShown(channel, modes, arguments, created_at):
            return message("modes", channel=channel, modes=modes, arguments=list(arguments), created=int(created_at))
        case replies.MaskList(channel, kind, entries):
            return message("masks", channel=channel, list=kind,
                           entries=[{"mask": mask, "by": by, "at": int(at)} for mask, by, at in entries])
        case replies.AwayChanged(away):
            return message("away", away=away)
        case replies.IsAway(nick, text):
            return message("is-away", nick=nick, text=plain(text))
        case replies.UserInfo() as user:
            return message("whois", nick=user.nick, realname=plain(user.realname), channels=list(user.channels),
                           away=plain(user.away), signon=int(user.signon), idle=int(user.idle_seconds),
                           account=user.account, operator=user.operator, node=user.node)
        case replies.Inviting(nick, channel):
            return message("inviting", nick=nick, channel=channel)
        case replies.InvitedTo(by, channel):
            return message("invited", by=by, channel=channel)
        case replies.PrivateSent(to, text):
            return message("private-sent", to=to, text=plain(text))
        case replies.PrivateReceived(sender, text, notice):
            return message("private", sender=sender, text=plain(text), notice=notice)
        case replies.Bye():
            return message("bye")
        case replies.OperatorNow():
            return message("operator")
        case replies.KickedOut(by, reason):
            return message("kicked", by=by, reason=reason)
        case replies.BanAdded(address, minutes):
            return message("ban-added", address=address, minutes=minutes)
        case replies.BanLifted(address):
            return message("ban-lifted", address=address)
        case replies.BanList(shown):
            return message("bans", bans=list(shown))
        case replies.Error(reason, code, subject):
            return message("error", reason=reason, code=code, subject=subject) if subject else error(reason, code)
        case replies.ContactLost():
            return message("contact", contact=False, gap=False)
        case replies.ContactRestored(gap):
            return message("contact", contact=True, gap=gap)
        case replies.PasswordWanted(nick, tries_left):
            return message("password-wanted", nick=nick, tries=tries_left)
        case replies.GuestNickname(wanted, nick):
            return message("guest", wanted=wanted, nick=nick)
        case replies.Identified(nick):
            return message("identified", nick=nick)
        case replies.Registered(nick):
            return message("registered", nick=nick)
        case replies.PasswordChanged(nick):
            return message("password-changed", nick=nick)
        case replies.Unregistered(nick):
            return message("unregistered", nick=nick)
        case replies.NoteKept(to, text):
            return message("note-kept", to=to, text=plain(text))
        case replies.NotesWhileAway(notes):
            return message("notes", notes=[{"sender": note.sender, "text": plain(note.text), "at": int(note.at)}
                                           for note in notes])
        case replies.MentionsWhileAway(counts):
            return message("mentions-while-away", counts=[[channel, count] for channel, count in counts])
        case replies.MentionList(events):
            return message("mentions", events=_events(events))
        case replies.Unread(counts):
            return message("unread", counts={channel: count for channel, count in counts})
        case replies.HistoryShown(channel, events):
            return message("history", channel=channel, events=_events(events), oldest=_oldest(events))
        case replies.HistoryNotKept():
            return message("history-kept", kept=False)
        case replies.HistoryKeptAgain():
            return message("history-kept", kept=True)
    raise TypeError(f"not a reply: {answer!r}")
