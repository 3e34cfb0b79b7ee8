"""
The bus: where each turn's events go beyond this process.

The core hands its bus every event of this node (all but the crowd
summaries, which each node makes for itself) once per turn.  `LocalBus`,
for a single process, sends them nowhere.  The cluster's bus
(chatd.bus.redis) carries them to the other nodes, and brings theirs into
the core through `ChatServer.receive` (and the other nodes' states through
`ChatServer.adopt` and `lose_node`): the core fans them out like its own.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Interface, implementer

from chatd.core.events import BusEvent


class IBus(Interface):
    def publish(events: Sequence[BusEvent]) -> None:
        """This node's events of the turn, in the order they happened here (never another node's)."""


@implementer(IBus)
class LocalBus:
    """One process, no cluster: published events go nowhere further."""

    def publish(self, events: Sequence[BusEvent]) -> None:
        pass
