"""
A channel's recent messages and actions, shown to a user who joins it.  Pure.

Only messages and actions are kept, never joins, leaves, renames or private
messages.  Each event carries its own time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from chatd.core.events import MESSAGES, Event


class History:
    """The last `size` messages and actions."""

    def __init__(self, size: int, recent: Iterable[Event] = ()) -> None:
        self.size = size
        self._kept: deque[Event] = deque(maxlen=size or None)
        for event in recent:
            self.record(event)

    def record(self, event: Event) -> None:
        if self.size and isinstance(event, MESSAGES):
            self._kept.append(event)

    def recent(self) -> tuple[Event, ...]:
        return tuple(self._kept)
