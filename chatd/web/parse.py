"""
A message from the browser -> a command for the chat.  Pure.

The web front door's syntax: one JSON object per WebSocket message, with a
"type" (the whole protocol is in chatd.web.protocol).  The page turns what
its user types (`/join #lab`, `/me waves`) into these messages itself.
Every text a user wrote is cleaned (chatd.core.text.clean) as it is on
every front door.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from attrs import frozen

from chatd.core import commands
from chatd.core.commands import Command
from chatd.core.store import MAX_HISTORY
from chatd.core.text import clean


@frozen
class Invalid:
    """A message the server understood but cannot carry out as it is: the user is told; nothing closes."""

    reason: str
    code: str = "bad-request"


@frozen
class Unreadable:
    """Not JSON, not an object, or of no known type: the user is told and the connection closes."""

    reason: str


@frozen
class TooLong:
    """A text over --max-line bytes (the same limit as a telnet line)."""


Parsed = Command | Invalid | Unreadable | TooLong | None  # None: nothing to do (an empty message)


def parse_message(data: str, max_text_bytes: int) -> Parsed:
    try:
        fields = json.loads(data)
    except ValueError:
        return Unreadable("not JSON")
    if not isinstance(fields, dict):
        return Unreadable("not a JSON object")
    kind = fields.get("type")
    parse = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parse is None:
        return Unreadable(f"unknown message type: {kind!r}"[:200])
    try:
        return parse(_Fields(fields, max_text_bytes))
    except _TooLong:
        return TooLong()
    except _Missing as missing:
        return Invalid(f"{kind}: {missing}")


class _Missing(Exception):
    pass


class _TooLong(Exception):
    pass


class _Fields:
    """A message's fields, each read as what it must be."""

    def __init__(self, fields: dict[str, Any], max_text_bytes: int) -> None:
        self._fields = fields
        self._max_text_bytes = max_text_bytes

    def text(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise _Missing(f'"{name}" is missing')
        return value

    def optional(self, name: str) -> str | None:
        value = self._fields.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise _Missing(f'"{name}" is not a string')
        encoded = value.encode("utf-8", "replace")  # a lone surrogate (from a \\ud800 escape) is no text
        if len(encoded) > self._max_text_bytes:
            raise _TooLong()
        return clean(encoded.decode("utf-8"))

    def words(self, name: str) -> tuple[str, ...]:
        """A list of at most 21 words (a mode string and its arguments), each as a text."""
        value = self._fields.get(name, [])
        if not isinstance(value, list) or len(value) > 21 or not all(isinstance(word, str) for word in value):
            raise _Missing(f'"{name}" is not a list of at most 21 words')
        return tuple(word for word in (self._word(word) for word in value) if word)

    def _word(self, value: str) -> str:
        encoded = value.encode("utf-8", "replace")
        if len(encoded) > self._max_text_bytes:
            raise _TooLong()
        return clean(encoded.decode("utf-8")).strip()

    def password(self, name: str) -> str:
        """A password: cleaned as a line typed on telnet is, never shown, and required."""
        value = self.text(name)
        if not value:
            raise _Missing(f'"{name}" is empty')
        return value

    def count(self, name: str, default: int, most: int) -> int:
        value = self._fields.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
            raise _Missing(f'"{name}" is not a number from 1 to {most}')
        return value

    def time(self, name: str) -> float | None:
        value = self._fields.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 2 ** 40:
            raise _Missing(f'"{name}" is not a unix time')
        return float(value)

    def number(self, name: str, default: float) -> float:
        value = self._fields.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10_000_000:
            raise _Missing(f'"{name}" is not a number of minutes')
        return float(value)


def _say(fields: _Fields) -> Command | None:
    text = fields.text("text")
    return commands.Say(text, fields.optional("channel")) if text.strip() else None


def _act(fields: _Fields) -> Command | None:
    text = fields.text("text")
    return commands.Act(text, fields.optional("channel")) if text.strip() else None


def _msg(fields: _Fields) -> Command | None:
    to, text = fields.text("to"), fields.text("text")
    return commands.Msg(to.strip(), text) if text.strip() else None


def _part(fields: _Fields) -> Command:
    return commands.Part(fields.optional("channel"), (fields.optional("reason") or "").strip())


def _quit(fields: _Fields) -> Command:
    return commands.Quit((fields.optional("reason") or "").strip() or "Quit")


def _kick(fields: _Fields) -> Command:
    """A channel's operator's kick when it names a channel; else a server operator's."""
    nick, reason, channel = fields.text("nick").strip(), (fields.optional("reason") or "").strip(), fields.optional("channel")
    return commands.KickFrom(channel.strip(), nick, reason) if channel else commands.Kick(nick, reason)


def _mode(fields: _Fields) -> Command:
    words = fields.words("words")
    return commands.Mode(fields.optional("channel"), words)


def _login(fields: _Fields) -> Command:
    password = fields.optional("password")
    return commands.LogIn(fields.text("nick").strip(), password or None)


_PARSERS: dict[str, Callable[[_Fields], Command | None]] = {
    "login": _login,
    "nick": lambda fields: commands.Nick(fields.text("nick").strip()),
    "say": _say,
    "act": _act,
    "msg": _msg,
    "join": lambda fields: commands.Join(fields.text("channel").strip(), (fields.optional("key") or "").strip()),
    "mode": _mode,
    "away": lambda fields: commands.Away((fields.optional("text") or "").strip()),
    "whois": lambda fields: commands.Whois(fields.text("nick").strip()),
    "invite": lambda fields: commands.Invite(fields.text("nick").strip(), fields.optional("channel")),
    "part": _part,
    "topic": lambda fields: commands.Topic(fields.optional("channel"), fields.optional("topic")),
    "names": lambda fields: commands.Names(fields.optional("channel")),
    "channels": lambda fields: commands.Channels(),
    "quit": _quit,
    "oper": lambda fields: commands.Oper(fields.text("password")),
    "kick": _kick,
    "ban": lambda fields: commands.Ban(fields.text("target").strip(),
                                       fields.number("minutes", commands.DEFAULT_BAN_MINUTES)),
    "unban": lambda fields: commands.Unban(fields.text("address").strip()),
    "bans": lambda fields: commands.Bans(),
    "identify": lambda fields: commands.Identify(fields.password("password"), fields.optional("nick")),
    "register": lambda fields: commands.Register(fields.password("password")),
    "password": lambda fields: commands.ChangePassword(fields.password("old"), fields.password("new")),
    "unregister": lambda fields: commands.Unregister(fields.password("password")),
    "history": lambda fields: commands.History(fields.count("count", 50, MAX_HISTORY), fields.optional("channel"),
                                               fields.time("before")),
    "mentions": lambda fields: commands.Mentions(),
    "read": lambda fields: commands.Read(fields.text("channel").strip()),
}
