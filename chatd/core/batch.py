"""
A turn's events on their way to many sessions, encoded once per dialect.

Fan-out is the hot path: in one turn many events go to many members.  A
`Batch` holds the turn's events; a dialect (telnet in some charset, IRC,
JSON) encodes all of them once into one buffer, and each member's `Share`
(the events meant for them) is cut from that buffer.  Members whose shares
are the same get the same `Share` object, so its bytes are joined once for
all of them; a member whose share is every event gets the buffer itself.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol

from chatd.core.events import Event

Runs = list[tuple[int, int]]  # [start, end) ranges of event indices, ascending


class IDialect(Protocol, Hashable):
    # True when an event reads differently in the member's current channel
    # (telnet prefixes other channels' lines); the batch then encodes once
    # per current channel in use.
    uses_current: bool

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        """All `events` as one buffer, and where each starts in it (with the end last)."""

    def frame(self, parts: list[bytes]) -> bytes:
        """The bytes of one delivery holding these encoded events (usually just joined)."""


class Batch:
    """One turn's events, encoded once per dialect (and current channel, where the dialect cares)."""

    __slots__ = ("events", "_encoded")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self._encoded: dict[tuple[IDialect, str | None], tuple[bytes, list[int]]] = {}

    def __len__(self) -> int:
        return len(self.events)

    def encoded(self, dialect: IDialect, current: str | None) -> tuple[bytes, list[int]]:
        key = (dialect, current if dialect.uses_current else None)
        found = self._encoded.get(key)
        if found is None:
            found = self._encoded[key] = dialect.encode_events(self.events, key[1])
        return found


class Share:
    """Some runs of a `Batch`'s events as seen from one current channel: one delivery to one or more members."""

    __slots__ = ("batch", "runs", "current", "_encoded")

    def __init__(self, batch: Batch, runs: Runs, current: str | None) -> None:
        self.batch = batch
        self.runs = runs
        self.current = current
        self._encoded: dict[IDialect, bytes] = {}

    @property
    def events(self) -> list[Event]:
        return [event for start, end in self.runs for event in self.batch.events[start:end]]

    def encoded(self, dialect: IDialect) -> bytes:
        found = self._encoded.get(dialect)
        if found is None:
            data, offsets = self.batch.encoded(dialect, self.current)
            if self.runs == [(0, len(self.batch))]:  # every event: the buffer itself
                parts = [data]
            else:
                parts = [data[offsets[start]:offsets[end]] for start, end in self.runs]
            found = self._encoded[dialect] = dialect.frame(parts)
        return found

    def __repr__(self) -> str:
        return f"Share({self.events!r})"


class PlainFrames:
    """For dialects whose delivery is just the events' bytes one after another (telnet, IRC)."""

    def frame(self, parts: list[bytes]) -> bytes:
        return parts[0] if len(parts) == 1 else b"".join(parts)


def without(runs: Runs, skipped: list[int]) -> Runs:
    """`runs` with the (ascending) event indices in `skipped` left out."""
    if not skipped:
        return runs
    result: Runs = []
    position = 0
    for start, end in runs:
        while position < len(skipped) and skipped[position] < start:
            position += 1
        while position < len(skipped) and skipped[position] < end:
            index = skipped[position]
            if index > start:
                result.append((start, index))
            start = index + 1
            position += 1
        if start < end:
            result.append((start, end))
    return result


def from_index(runs: Runs, first: int) -> Runs:
    """`runs` from event index `first` on."""
    if not first:
        return runs
    return [(max(start, first), end) for start, end in runs if end > first]
