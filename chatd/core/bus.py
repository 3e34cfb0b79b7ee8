"""
The bus: where each turn's events go beyond this process.

The core hands every turn's events to its bus once the turn's local
deliveries are done.  The only bus now is `LocalBus`, for a single process:
there is nowhere further to go.  A cluster bus (Redis) will implement the
same interface, and also deliver other nodes' events into the core.
"""

from __future__ import annotations

from collections.abc import Sequence

from zope.interface import Interface, implementer

from chatd.core.events import BusEvent


class IBus(Interface):
    def publish(events: Sequence[BusEvent]) -> None:
        """This turn's events, in the order they happened here."""


@implementer(IBus)
class LocalBus:
    """One process, no cluster: published events go nowhere further."""

    def publish(self, events: Sequence[BusEvent]) -> None:
        pass
