"""
A channel's recent messages and actions, shown to a user who joins it, and
what IRCv3 chathistory's queries choose of a channel's history.  Pure.

Only messages and actions are kept, never joins, leaves, renames or private
messages.  Each event carries its own time.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Iterable, Sequence

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


# A place in a channel's history, as IRCv3 chathistory names one: ("timestamp",
# unix time), ("msgid", a message id) or ("*", None): the newest end.
Reference = tuple[str, float | str | None]


def chosen(events: Sequence[Event], kind: str, first: Reference, second: Reference | None,
           limit: int) -> list[Event]:
    """
    What IRCv3's `CHATHISTORY kind` asks of `events` (oldest first), oldest
    first, at most `limit`: LATEST (after `first`, or the newest with "*"),
    BEFORE and AFTER `first` (the nearest to it), AROUND it (half before,
    it and after), BETWEEN `first` and `second` (the nearest to `first`).
    A msgid not among them finds nothing.
    """
    if limit <= 0:
        return []
    if kind == "LATEST" and first[0] == "*":
        return list(events[-limit:])
    start = _place(events, first)
    if start is None:
        return []
    before, after = start
    match kind:
        case "LATEST":
            return list(events[after:][-limit:])
        case "BEFORE":
            return list(events[:before][-limit:])
        case "AFTER":
            return list(events[after:][:limit])
        case "AROUND":
            earlier = list(events[:before][-(limit // 2):]) if limit > 1 else []
            return earlier + list(events[before:][:limit - len(earlier)])
        case "BETWEEN" if second is not None:
            end = _place(events, second)
            if end is None:
                return []
            if before <= end[0]:  # forwards from `first`
                return list(events[after:end[0]][:limit])
            return list(events[end[1]:before][-limit:])
    return []


def _place(events: Sequence[Event], reference: Reference) -> tuple[int, int] | None:
    """Where `reference` falls among `events`: how many are before it, and the index of the first after it."""
    kind, value = reference
    if kind == "timestamp" and isinstance(value, float):
        times = [event.at for event in events]
        return bisect_left(times, value), bisect_right(times, value)
    if kind == "msgid":
        for index, event in enumerate(events):
            if getattr(event, "msgid", None) == value:
                return index, index + 1
    return None
