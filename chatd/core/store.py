"""
The store: what the chat keeps beyond its process.  Pure.

The core hands its store this node's events once per turn (`record`), as it
hands them to its bus; the store keeps the ones worth keeping (KEPT: a
channel's messages, actions and topic changes), off the reactor's thread.
What was kept comes back at the next start, before the chat begins, as
the server's `recent` events (chatd.service.tap).  `NoStore`, for a chat
that remembers nothing, keeps nothing; the SQLite store of one machine is
chatd.store.sqlite.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Interface, implementer

from chatd.core.events import Acted, BusEvent, Said, TopicChanged

# The events a store keeps: a channel's public history.
KEPT = (Said, Acted, TopicChanged)
KeptEvent = Said | Acted | TopicChanged


class IStore(Interface):
    def record(events: Sequence[BusEvent]) -> None:
        """This node's events of one turn, in order: those of KEPT are kept (in one write, off the reactor's thread)."""


@implementer(IStore)
class NoStore:
    """A chat that remembers nothing beyond its process."""

    def record(self, events: Sequence[BusEvent]) -> None:
        pass
