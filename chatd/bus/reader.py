"""
The other nodes' entries, read from the stream:

    XREAD BLOCK (a connection of its own) -> entries -> events, less what was
    seen before -> checked (Redis is shared: input like any other) -> the core

The next XREAD goes to Redis before the entries just read are applied, so
what arrives meanwhile waits there for no one.  An error reply (-WRONGTYPE
when the stream's key holds something else, -NOPERM ...) or a reply the
reader cannot make sense of is logged once per kind and counted; the read
is tried again after READ_RETRY_SECONDS from where it stopped, so nothing
written meanwhile is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from chatd.bus.errors import ErrorReplies
from chatd.bus.keys import stream_id
from chatd.core.events import BusEvent, from_json
from chatd.core.remote import checked

READ_BLOCK_SECONDS = 1.0
READ_COUNT = 1000
READ_RETRY_SECONDS = 1.0
# Sequence numbers of a node not seen yet below the highest seen (an entry
# sent again after Redis refused it, while a later one was taken) are
# remembered up to this many a node; a wider gap is entries that were lost.
MAX_GAP_ENTRIES = 1000


class Seen:
    """Which entries of each node this node has applied or adopted a state holding: each is applied once."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}
        self._missing: dict[str, set[int]] = {}

    def last(self, node: str) -> int:
        return self._last.get(node, 0)

    def first_time(self, node: str, seq: int) -> bool:
        """Whether entry `seq` of `node` is new here (and note it as seen)."""
        last = self._last.get(node, 0)
        if seq > last:
            if seq - last - 1 <= MAX_GAP_ENTRIES and seq - last > 1:
                missing = self._missing.setdefault(node, set())
                missing.update(range(last + 1, seq))
                while len(missing) > MAX_GAP_ENTRIES:
                    missing.remove(min(missing))
            self._last[node] = seq
            return True
        gaps = self._missing.get(node)
        if gaps and seq in gaps:
            gaps.remove(seq)
            return True
        return False

    def adopted(self, node: str, seq: int) -> None:
        """A state of `node` holding everything up to `seq` was adopted."""
        if seq >= self._last.get(node, 0):
            self._last[node] = seq
        missing = self._missing.get(node)
        if missing:
            missing.difference_update([number for number in missing if number <= seq])

    def forget(self, node: str) -> None:
        self._last.pop(node, None)
        self._missing.pop(node, None)


def events_of(entries: Iterable[Any], me: str, default_channel: str, seen: Seen | None) -> list[BusEvent]:
    """
    The other nodes' events in these stream entries, checked, less what
    `seen` says was seen before (all of them without `seen`).
    """
    events: list[BusEvent] = []
    for _, flat in entries:
        fields = dict(zip(flat[::2], flat[1::2]))
        node = fields.get("node")
        if node == me or not isinstance(node, str):
            continue
        try:
            seq = int(fields["seq"])
        except (KeyError, ValueError, TypeError):
            continue
        if seen is not None and not seen.first_time(node, seq):
            continue
        text = fields.get("events", "")
        for line in text.split("\n") if isinstance(text, str) else ():
            event = from_json(line, default_channel, node)
            if event is not None:
                event = checked(event)  # Redis is shared: what comes from it is input like any other
            if event is not None:
                events.append(event)
    return events


class StreamReader:
    """Reads the stream on from `position` while in contact, and hands the core what is new."""

    def __init__(self, clock: IReactorTime, errors: ErrorReplies, stream: str, me: str, default_channel: str,
                 seen: Seen, command: Callable[..., "Deferred[Any]"], sent: Callable[[], None],
                 apply: Callable[[list[BusEvent]], None], failing: Callable[[bool], None]) -> None:
        self._clock = clock
        self._errors = errors
        self._stream = stream
        self._me = me
        self._default_channel = default_channel
        self._seen = seen
        self._command = command  # XREAD on the reader's own connection
        self._sent = sent  # hands that connection's command to the kernel now
        self._apply = apply
        self._failing = failing  # told True when reads start failing, False when they work again
        self.position: str | None = None  # the last entry read; None: not read yet
        self._reading = 0  # a new number each start; a read of an earlier one stops
        self._retry: IDelayedCall | None = None
        self.received = 0  # events applied, for /metrics
        self.lag_seconds = 0.0

    def start(self) -> None:
        self._reading += 1
        self._read(self._reading)

    def stop(self) -> None:
        self._reading += 1
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _read(self, reading: int) -> None:
        if reading != self._reading:
            return
        try:
            result = self._command("XREAD", "COUNT", READ_COUNT, "BLOCK", int(READ_BLOCK_SECONDS * 1000),
                                   "STREAMS", self._stream, self.position)
        except txredisapi.ConnectionError:
            return  # the connection is gone: read again once in contact
        result.addCallbacks(self._got, self._failed, callbackArgs=(reading,), errbackArgs=(reading,))
        self._sent()  # waiting in Redis before this turn's fan-out, not after it

    def _got(self, reply: Any, reading: int) -> None:
        if reading != self._reading:
            return
        try:
            entries = reply[0][1] if reply else []
            position = entries[-1][0] if entries else self.position or "0-0"
            newest = stream_id(position)
        except (IndexError, KeyError, TypeError, ValueError):
            self._failed(Failure(), reading)
            return
        if self._errors.failing("XREAD"):
            self._errors.succeeded("XREAD", "reading on from where it stopped")
            self._failing(False)
        self.position = position
        self._read(reading)  # the next read waits in Redis while these are applied
        if entries:
            events = events_of(entries, self._me, self._default_channel, self._seen)
            if events:
                self.received += len(events)
                self._apply(events)
            self.lag_seconds = max(0.0, self._clock.seconds() - newest[0] / 1000)

    def _failed(self, failure: Failure, reading: int) -> None:
        if reading != self._reading or failure.check(txredisapi.ConnectionError):
            return  # the connection is gone: read again once in contact
        first = not self._errors.failing("XREAD")
        self._errors.note("XREAD", failure, f"reading again in {READ_RETRY_SECONDS:g} s from where it stopped")
        if first:
            self._failing(True)
        self._retry = self._clock.callLater(READ_RETRY_SECONDS, self._read, reading)
