"""
The store: what the chat keeps beyond its process.  Pure.

- **History.**  The core hands its store this node's events once per turn
  (`record`), as it hands them to its bus; the store keeps the ones worth
  keeping (KEPT: a channel's messages, actions and topic changes), off the
  reactor's thread.  What was kept comes back at the next start, before
  the chat begins, as the server's `recent` events (chatd.service.tap),
  and older lines on request (`history`).
- **Accounts.**  Registered nicknames and their password hashes; the store
  hashes and checks passwords off the reactor's thread.  The core knows
  which nicknames are registered (`accounts`, read at its start) and asks
  the store only what takes a password or the disk.
- **Notes and mentions.**  Private messages left for a registered user who
  is away (`leave_note`, `take_notes`), and the lines that named them
  while they were away (`mentions`, found in the kept history).

Everything but `record` and `left` answers with a Deferred, which fails
with `StoreUnavailable` (a line a user may read) when the store cannot
answer.  `NoStore`, for a chat that remembers nothing (`--no-store`, or
unit tests), keeps nothing and refuses accounts; the SQLite store of one
machine is chatd.store.sqlite.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from attrs import frozen
from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import Attribute, Interface, implementer

from chatd.core.events import Acted, BusEvent, Event, Said, TopicChanged, from_json
from chatd.core.modes import ChannelState
from chatd.core.nicknames import ChannelNameError, check_channel_name
from chatd.core.text import clean
from chatd.core.tags import checked_msgid, checked_tags

# The events a store keeps: a channel's public history.
KEPT = (Said, Acted, TopicChanged)
KeptEvent = Said | Acted | TopicChanged

# Notes kept for one recipient, at most, and for how long.
MAX_NOTES = 100
NOTE_DAYS = 30
# Mentions found for one user, at most (the most recent).
MAX_MENTIONS = 500
# Lines of history one request gets, at most.
MAX_HISTORY = 1000


@frozen
class Note:
    """A private message left for a registered user who was away."""

    sender: str
    text: str
    at: float


@frozen
class KeptAccount:
    """A registered nickname as the store keeps it (its hash stays in the store)."""

    nick: str
    left_at: float | None  # when its owner last left the chat; None: never yet


# Who signs the notes chatd itself leaves (a reserved nickname: nobody can pose as it).
CHATD = "chatd"


def undelivered(recipient: str, note: Note, now: float) -> Note:
    """The note that tells `note`'s sender it was never taken: `recipient` did not log in within NOTE_DAYS."""
    when = time.strftime("%b %d %H:%M", time.localtime(note.at))
    return Note(CHATD, f"your message to {recipient} of {when} was not delivered: they did not log in within "
                       f"{NOTE_DAYS} days", now)


class StoreUnavailable(Exception):
    """The store cannot answer now; str() is the line a user reads."""


class Taken(Exception):
    """The nickname was registered by someone else meanwhile (another node, at the same moment)."""


class IStore(Interface):
    healthy = Attribute("Whether the store is writing what it is given (False: a full disk, a failing Redis...).")
    keeps_accounts = Attribute("Whether accounts can be registered (False: a chat that remembers nothing).")

    def watch(changed: Callable[[bool], None]) -> None:
        """Call `changed(healthy)` each time the store starts or stops failing to write."""

    def record(events: Sequence[BusEvent]) -> None:
        """This node's events of one turn, in order: those of KEPT are kept (in one write, off the reactor's thread)."""

    def history(channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        """The last `count` kept events of `channel` (said before `before`, if given), oldest first."""

    def accounts() -> list[KeptAccount]:
        """Every registered nickname (read before the chat starts; synchronous)."""

    def register(nick: str, password: str, at: float) -> Deferred[None]:
        """Keep `nick` with (the hash of) `password`; fails with Taken if it is registered already."""

    def check_password(nick: str, password: str) -> Deferred[bool]:
        """Whether `password` is `nick`'s (False for a nickname not registered)."""

    def change_password(nick: str, password: str) -> Deferred[None]:
        """`nick`'s password is `password` from now on."""

    def unregister(nick: str) -> Deferred[None]:
        """Forget `nick`'s account, and the notes waiting for it."""

    def left(nick: str, at: float) -> None:
        """The owner of registered `nick` left the chat at `at` (kept with the next write)."""

    def expire_accounts(unused_since: float, online: Sequence[str]) -> Deferred[list[str]]:
        """Forget the accounts (but those `online`) nobody logged in to or left since `unused_since`; their nicks."""

    def leave_note(recipient: str, note: Note) -> Deferred[bool]:
        """Keep `note` for registered `recipient`; False (not kept) if MAX_NOTES wait for them already."""

    def take_notes(recipient: str) -> Deferred[list[Note]]:
        """The notes waiting for `recipient`, oldest first, which are then forgotten: each is taken once."""

    def mentions(nick: str, since: float) -> Deferred[list[Event]]:
        """The kept messages since `since` that name `nick` (see `mentioning`), oldest first, at most MAX_MENTIONS."""

    def mark_read(nick: str, channel: str, at: float) -> None:
        """Registered `nick` has read `channel` up to `at` (kept with the next write)."""

    def unread(nick: str) -> Deferred[list[tuple[str, int]]]:
        """For each channel `nick` marked read: the messages said there since (the channels with any)."""

    def kept_channels() -> list[ChannelState]:
        """The modes of every channel a founder registered (read before the chat starts; synchronous; checked)."""

    def keep_channel(state: ChannelState) -> None:
        """Keep a founder's channel's modes as they are now (with the next write)."""


def checked_event(text: str, default_channel: str) -> KeptEvent | None:
    """
    An event a store read back (from disk, from Redis: another program may
    have written anything there), if it is one of a channel's kept events,
    with a valid channel name and its texts cleaned as a line typed is.
    """
    event = from_json(text, default_channel)
    if not isinstance(event, KEPT):
        return None
    try:
        channel = check_channel_name(event.channel)
    except ChannelNameError:
        return None
    if isinstance(event, TopicChanged):
        return TopicChanged(channel, clean(event.nick), clean(event.topic), at=event.at)
    return type(event)(channel, clean(event.nick), clean(event.text), at=event.at, msgid=checked_msgid(event.msgid),
                       tags=checked_tags(event.tags))


def mentioning(events: Sequence[Event], nick: str) -> list[Event]:
    """
    Those of `events` (messages and actions) that name `nick`, said by
    someone else: as a word of its own, in any case ("alice:", "@Alice",
    not "malice").
    """
    found: list[Event] = []
    pattern = re.compile(rf"(?<![\w\-\[\]{{}}|^]){re.escape(nick)}(?![\w\-\[\]{{}}|^])", re.IGNORECASE)
    for event in events:
        if isinstance(event, (Said, Acted)) and event.nick.casefold() != nick.casefold() \
                and pattern.search(event.text):
            found.append(event)
    return found


_OFF = "accounts need a store, and this chat keeps none (--no-store)"


@implementer(IStore)
class NoStore:
    """A chat that remembers nothing beyond its process: no history, no accounts."""

    healthy = True
    keeps_accounts = False

    def watch(self, changed: Callable[[bool], None]) -> None:
        pass

    def record(self, events: Sequence[BusEvent]) -> None:
        pass

    def history(self, channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        return succeed([])

    def accounts(self) -> list[KeptAccount]:
        return []

    def register(self, nick: str, password: str, at: float) -> Deferred[None]:
        return fail(StoreUnavailable(_OFF))

    def check_password(self, nick: str, password: str) -> Deferred[bool]:
        return succeed(False)

    def change_password(self, nick: str, password: str) -> Deferred[None]:
        return fail(StoreUnavailable(_OFF))

    def unregister(self, nick: str) -> Deferred[None]:
        return fail(StoreUnavailable(_OFF))

    def left(self, nick: str, at: float) -> None:
        pass

    def expire_accounts(self, unused_since: float, online: Sequence[str]) -> Deferred[list[str]]:
        return succeed([])

    def leave_note(self, recipient: str, note: Note) -> Deferred[bool]:
        return fail(StoreUnavailable(_OFF))

    def take_notes(self, recipient: str) -> Deferred[list[Note]]:
        return succeed([])

    def mentions(self, nick: str, since: float) -> Deferred[list[Event]]:
        return succeed([])

    def mark_read(self, nick: str, channel: str, at: float) -> None:
        pass

    def unread(self, nick: str) -> Deferred[list[tuple[str, int]]]:
        return succeed([])

    def kept_channels(self) -> list[ChannelState]:
        return []

    def keep_channel(self, state: ChannelState) -> None:
        pass
