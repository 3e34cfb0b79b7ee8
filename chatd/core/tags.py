"""
Client tags (IRCv3 message-tags) and message ids, as the core carries
them.  Pure.

A door that reads client tags (IRC's `@+typing=active;+draft/reply=x
PRIVMSG ...`) hands them to the core as one wire string, their values
already escaped as the specification says; the core keeps it with the
message and gives it back, unread, to the doors that show tags.  What
comes from elsewhere (the bus: Redis is shared) is checked with
`checked_tags` first, so no tag can carry a space, a line end or a
control byte onto another user's line.
"""

from __future__ import annotations

import re
import secrets
from itertools import count

# The most bytes of client tags on one message, as the specification
# bounds them (4094, less the "@" and the space around them).
MAX_TAG_BYTES = 4094
# One client tag: "+", a name (an optional vendor "example.com/" before it),
# and an escaped value without spaces, semicolons, line ends or NUL.
_TAG = r"\+[A-Za-z0-9.\-/]+(?:=[^\x00-\x20;\x7f]*)?"
# The server tags the core puts before them: the sender's account (IRCv3
# account-tag) and "bot" for a user marked a bot (IRCv3 bot mode).
ACCOUNT = "account="
BOT = "bot"
_SERVER_TAG = f"(?:{ACCOUNT}[^\\x00-\\x20;\\x7f]+|{BOT})"
_TAGS = re.compile(f"(?:{_SERVER_TAG}|{_TAG})(?:;(?:{_SERVER_TAG}|{_TAG}))*")
# A tag value's escapes (IRCv3 message-tags).
_ESCAPES = str.maketrans({";": "\\:", " ": "\\s", "\\": "\\\\", "\r": "\\r", "\n": "\\n"})
_MSGID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def checked_tags(wire: str) -> str:
    """`wire` if it is client tags as a door would give them, else "" (what is not is dropped whole)."""
    if not wire or (len(wire.encode()) <= MAX_TAG_BYTES and _TAGS.fullmatch(wire)):
        return wire
    return ""


def escaped(value: str) -> str:
    """A tag's value as the wire carries it (`;`, space, `\\`, CR and LF escaped)."""
    return value.translate(_ESCAPES)


def with_server_tags(tags: str, account: str, bot: bool) -> str:
    """A message's tags: its sender's `account=` (if identified) and `bot` (if a bot), then its client tags."""
    server = ([f"{ACCOUNT}{escaped(account)}"] if account else []) + ([BOT] if bot else [])
    return ";".join([*server, tags]) if tags else ";".join(server)


def checked_msgid(msgid: str) -> str:
    """`msgid` if it is one as chatd makes them (letters, digits, "-" and "_"), else ""."""
    return msgid if not msgid or _MSGID.fullmatch(msgid) else ""


class MessageIds:
    """Message ids unique to this process (and so across a cluster's nodes): a random prefix and a count."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4) + "-"
        self._count = count(1)

    def next(self) -> str:
        return self._prefix + str(next(self._count))  # one per message: the quickest way there is
