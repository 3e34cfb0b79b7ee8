"""
A turn's events on their way to many sessions, encoded once per dialect.

Fan-out is the hot path: in one turn many events go to many members.  A
`Batch` holds the turn's events; a dialect (telnet in some charset, IRC,
JSON) encodes all of them once into one buffer, and each member's `Share`
(the events meant for them) is cut from that buffer.  Members whose shares
are the same get the same `Share` object.  A share's `parts` are views into
the one buffer, not copies, so a connection can hand them to the kernel as
they are (scatter-gather); a member whose share is every event gets the
buffer itself.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, Union

Buffer = Union[bytes, memoryview]

from chatd.core.events import Event

Runs = list[tuple[int, int]]  # [start, end) ranges of event indices, ascending


class IDialect(Protocol, Hashable):
    # True when an event reads differently in the member's current channel
    # (telnet prefixes other channels' lines); the batch then encodes once
    # per current channel in use.
    uses_current: bool

    def encode_events(self, events: Sequence[Event], current: str | None) -> tuple[bytes, list[int]]:
        """All `events` as one buffer, and where each starts in it (with the end last)."""

    def frame(self, parts: list[Buffer]) -> list[Buffer]:
        """One delivery holding these encoded events, in order: usually the parts themselves."""


class Batch:
    """One turn's events, encoded once per dialect (and current channel, where the dialect cares)."""

    __slots__ = ("events", "_encoded")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self._encoded: dict[tuple[IDialect, str | None], tuple[bytes, list[int], memoryview]] = {}

    def encoded(self, dialect: IDialect, current: str | None) -> tuple[bytes, list[int], memoryview]:
        """Every event in `dialect` as seen from `current`: the bytes, where each event starts, and a view of them."""
        if not dialect.uses_current:
            current = None
        found = self._encoded.get((dialect, current))
        if found is None:
            data, offsets = dialect.encode_events(self.events, current)
            found = self._encoded[dialect, current] = (data, offsets, memoryview(data))
        return found


class Share:
    """Some runs of a `Batch`'s events as seen from one current channel: one delivery to one or more members."""

    __slots__ = ("batch", "runs", "current", "_parts")

    def __init__(self, batch: Batch, runs: Runs, current: str | None) -> None:
        self.batch = batch
        self.runs = runs
        self.current = current
        self._parts: dict[IDialect, list[Buffer]] = {}

    @property
    def events(self) -> list[Event]:
        return [event for start, end in self.runs for event in self.batch.events[start:end]]

    def parts(self, dialect: IDialect) -> list[Buffer]:
        """This share in `dialect`: views into the batch's bytes, to be sent one after another."""
        found = self._parts.get(dialect)
        if found is None:
            data, offsets, view = self.batch.encoded(dialect, self.current)
            runs = self.runs
            if len(runs) == 1 and runs[0][0] == 0 and runs[0][1] == len(offsets) - 1:  # every event: the buffer itself
                cut: list[Buffer] = [data]
            else:
                cut = [view[offsets[start]:offsets[end]] for start, end in runs]
            found = self._parts[dialect] = dialect.frame(cut)
        return found

    def encoded(self, dialect: IDialect) -> bytes:
        """This share in `dialect`, as one bytes object (a copy, unless it is the whole batch)."""
        parts = self.parts(dialect)
        return parts[0] if len(parts) == 1 and isinstance(parts[0], bytes) else b"".join(parts)

    def __repr__(self) -> str:
        return f"Share({self.events!r})"


class PlainFrames:
    """For dialects whose delivery is just the events' bytes one after another (telnet, IRC)."""

    def frame(self, parts: list[Buffer]) -> list[Buffer]:
        return parts


def without(runs: Runs, skipped: list[int]) -> Runs:
    """`runs` with the (ascending) event indices in `skipped` left out."""
    if not skipped:
        return runs
    if len(runs) == 1:  # the usual case: the whole turn, less what the member said
        start, end = runs[0]
        cut: Runs = []
        for index in skipped:
            if index >= end:
                break
            if index > start:
                cut.append((start, index))
            start = max(start, index + 1)
        if start < end:
            cut.append((start, end))
        return cut
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
