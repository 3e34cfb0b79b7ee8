"""
Events -> IRC lines, as bytes.  Pure.

An IRC session's dialect: UTF-8, CR LF, the same from every channel (IRC
has no current channel), and the IRCv3 capabilities that change how events
read (`server-time`: each line tagged with when it happened; `away-notify`:
others' AWAY; `message-tags`: each message with its msgid and its sender's
client tags; `setname`: others' SETNAME; `extended-join`: each JOIN with
the joiner's account and real name; `account-notify`: others' ACCOUNT;
`account-tag`: each message with its sender's account; `invite-notify`:
the INVITEs into its channels).  Sessions that negotiated the same of those share one
dialect, so fan-out encodes a turn's events once for each such group (see
chatd.core.batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import accumulate, product

from attrs import frozen

from chatd.core.batch import PlainFrames
from chatd.core.events import Acted, Event, Noticed, Said
from chatd.irc import render

# What a message is: what message-tags gives its msgid and client tags.
_MESSAGES = (Said, Acted, Noticed)


@frozen(eq=False)  # compared and hashed by identity: see of()
class IrcDialect(PlainFrames):
    server_time: bool = False
    away_notify: bool = False
    message_tags: bool = False
    setname: bool = False
    extended_join: bool = False
    account_notify: bool = False
    account_tag: bool = False
    invite_notify: bool = False

    uses_current = False

    @staticmethod
    def of(capabilities: frozenset[str] | set[str]) -> IrcDialect:
        """The one dialect of sessions with these capabilities (of those that change how events read), shared."""
        return DIALECTS[tuple(name in capabilities for name in READING)]

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        reading = self.away_notify, self.setname, self.extended_join, self.account_notify, self.invite_notify
        if not self.server_time and not self.message_tags and not self.account_tag:  # the usual case
            parts = [encode(render.event(event, *reading)) for event in events]
        else:
            parts = [encode(self._tagged(event)) for event in events]
        return b"".join(parts), [0, *accumulate(map(len, parts))]

    def _tagged(self, event: Event) -> list[str]:
        lines = render.event(event, self.away_notify, self.setname, self.extended_join, self.account_notify,
                             self.invite_notify)
        if (self.message_tags or self.account_tag) and isinstance(event, _MESSAGES):
            lines = render.with_message_tags(lines, event.msgid, event.tags, self.message_tags, self.account_tag)
        if self.server_time:
            lines = render.tagged(lines, {"time": render.time_tag(event.at)})
        return lines

    def __repr__(self) -> str:
        return "IRC" + "".join(f"+{name}" for name, on in zip(READING, self._flags()) if on)

    def _flags(self) -> tuple[bool, ...]:
        return (self.server_time, self.away_notify, self.message_tags, self.setname, self.extended_join,
                self.account_notify, self.account_tag, self.invite_notify)


def encode(lines: Sequence[str]) -> bytes:
    """Lines as UTF-8 with CR LF ends (a lone surrogate, which no valid text holds, as "?")."""
    return "".join(text + "\r\n" for text in lines).encode("utf-8", "replace")


# The capabilities that change how events read, in the order of IrcDialect's fields.
READING = ("server-time", "away-notify", "message-tags", "setname", "extended-join", "account-notify", "account-tag",
           "invite-notify")
DIALECTS = {flags: IrcDialect(*flags) for flags in product((False, True), repeat=len(READING))}
IRC = DIALECTS[(False,) * len(READING)]
