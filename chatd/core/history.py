"""
The room's recent public messages, shown to a user who joins.  Pure.

    *** Recent messages:
    [14:02] <alice> hi
    [14:03] * bob waves
    *** End of recent messages

Only messages and actions are kept, never joins, leaves, renames or private
messages.  Times are the server's local time.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable

from chatd.telnet import render
from chatd.telnet.render import Acted, Event, Said


class History:
    """The last `size` public messages and actions, with the unix time of each."""

    def __init__(self, size: int, recent: Iterable[tuple[float, Event]] = ()) -> None:
        self.size = size
        self._kept: deque[tuple[float, Event]] = deque(maxlen=size or None)
        for when, event in recent:
            self.record(when, event)

    def record(self, when: float, event: Event) -> None:
        if self.size and isinstance(event, (Said, Acted)):
            self._kept.append((when, event))

    def lines(self) -> list[str]:
        """What a joining user sees; nothing at all when there is no history."""
        if not self._kept:
            return []
        shown = [f"[{time.strftime('%H:%M', time.localtime(when))}] {render.event(event)}" for when, event in self._kept]
        return ["*** Recent messages:", *shown, "*** End of recent messages"]
