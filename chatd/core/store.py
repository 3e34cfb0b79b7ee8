"""
The store: what the chat keeps beyond its process.

The core hands its store each turn's events once (`record`); the store
keeps the ones worth keeping (a channel's messages, actions and topic
changes) and answers what was kept (`history`, `channels`).  `NoStore`, for
a chat that remembers nothing, keeps nothing.  The SQLite store of one
machine is chatd.store.sqlite; what a store reads back comes from disk and
is checked before it is handed over.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen
from twisted.internet.defer import Deferred, succeed
from zope.interface import Interface, implementer

from chatd.core.events import Acted, Event, Said, TopicChanged

# The events a store keeps: a channel's public history.
KEPT = (Said, Acted, TopicChanged)
KeptEvent = Said | Acted | TopicChanged


@frozen
class KeptChannel:
    """A channel as the store remembers it: its topic, and when it was last used."""

    name: str
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    used_at: float = 0.0


class IStore(Interface):
    def record(events: Sequence[Event]) -> None:
        """One turn's events, in order: those of KEPT are kept (in one write, off the reactor's thread)."""

    def history(channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        """
        The last `count` kept events of `channel` (before the time `before`,
        if given), oldest first.
        """

    def channels() -> Deferred[list[KeptChannel]]:
        """Every channel with something kept, the most recently used first."""

    def forget_before(when: float) -> Deferred[int]:
        """Forget the events from before the unix time `when` (--history-days); how many were forgotten."""

    def close() -> Deferred[None]:
        """Write what is still waiting, then let go of the store."""


@implementer(IStore)
class NoStore:
    """A chat that remembers nothing beyond its process."""

    def record(self, events: Sequence[Event]) -> None:
        pass

    def history(self, channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        return succeed([])

    def channels(self) -> Deferred[list[KeptChannel]]:
        return succeed([])

    def forget_before(self, when: float) -> Deferred[int]:
        return succeed(0)

    def close(self) -> Deferred[None]:
        return succeed(None)
