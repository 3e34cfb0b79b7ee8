"""
This node's entries for the stream, from the turn that made them until
Redis acknowledges them: what this node's users said is never lost on the
way to the other nodes, short of the bound.

    publish -> Outbox.add -> XADD (pipelined, in order) -> acknowledged: gone
                                 |-> an error reply (-OOM, -WRONGTYPE ...): kept;
                                 |   sent again, head first, after RETRY_SECONDS
                                 |   (doubling up to MAX_RETRY_SECONDS), then the rest
                                 `-> the connection lost: kept; all sent again, in
                                     order, once in contact again

An entry keeps its sequence number when it is sent again, so a node that
already applied it (the reply was lost, not the entry) skips it.  While
Redis refuses entries, nothing newer is sent before the oldest is taken.

The bound (OUTBOX_EVENTS events) holds always, in contact or not: past it
the oldest entries not on their way are dropped, counted, and said once
each time it happens.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import txredisapi
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.bus.errors import ErrorReplies

log = Logger()

# Events of this node kept until Redis has them; past it the oldest go.
OUTBOX_EVENTS = 100_000
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 5.0


class Entry:
    """One turn of this node, as one stream entry."""

    __slots__ = ("seq", "text", "count", "on_its_way")

    def __init__(self, seq: int, text: str, count: int) -> None:
        self.seq = seq
        self.text = text  # its events, as JSON lines
        self.count = count  # how many events
        self.on_its_way = False  # sent, and not answered yet


Send = Callable[[Entry], "Deferred[object]"]


class Outbox:
    """This node's entries not yet acknowledged by Redis, in order, bounded."""

    def __init__(self, clock: IReactorTime, errors: ErrorReplies, refused: Callable[[], None],
                 accepted_again: Callable[[], None], bound: int = OUTBOX_EVENTS) -> None:
        self._clock = clock
        self._errors = errors
        self._refused_callback = refused
        self._accepted_again = accepted_again
        self._bound = bound
        self._entries: deque[Entry] = deque()
        self.seq = 0  # the last entry's sequence number
        self.events = 0  # events held
        self.published = 0  # events sent (again after a reconnect or a refusal), for /metrics
        self.dropped = 0  # events dropped past the bound, for /metrics
        self._send: Send | None = None  # while in contact
        self.refused = False  # Redis refused the oldest entry, and has taken none since
        self._retry: IDelayedCall | None = None
        self._retry_seconds = RETRY_SECONDS
        self._dropping = False  # said that events are being dropped

    def add(self, text: str, count: int) -> None:
        """One turn's events: kept, and sent at once if Redis is taking entries."""
        self.seq += 1
        entry = Entry(self.seq, text, count)
        self._entries.append(entry)
        self.events += count
        if self.events > self._bound:
            self._drop_oldest()
        if self._send is not None and not self.refused:
            self._transmit(entry)

    def open(self, send: Send) -> None:
        """In contact: everything held goes out, in order, through `send`; later entries as they come."""
        self._send = send
        self.refused = False
        self._retry_seconds = RETRY_SECONDS
        self._cancel_retry()
        self._dropping = False
        for entry in list(self._entries):
            if not entry.on_its_way:
                self._transmit(entry)

    def close(self) -> None:
        """Out of contact: the answers on their way are lost; everything is sent again on `open`."""
        self._send = None
        self._cancel_retry()
        for entry in self._entries:
            entry.on_its_way = False

    def _transmit(self, entry: Entry) -> None:
        assert self._send is not None
        entry.on_its_way = True
        self.published += entry.count
        sent = self._send(entry)
        sent.addCallbacks(self._accepted, self._failed, callbackArgs=(entry,), errbackArgs=(entry,))

    def _accepted(self, _: object, entry: Entry) -> None:
        entry.on_its_way = False
        if self._entries and self._entries[0] is entry:
            self._entries.popleft()
        else:
            try:
                self._entries.remove(entry)
            except ValueError:
                return  # dropped past the bound while on its way (already uncounted)
        self.events -= entry.count
        if self.refused and self._send is not None:
            self.refused, self._dropping = False, False
            self._retry_seconds = RETRY_SECONDS
            self._cancel_retry()
            self._errors.succeeded("XADD", f"{self.events} events held meanwhile are on their way")
            for waiting in list(self._entries):
                if not waiting.on_its_way:
                    self._transmit(waiting)
            self._accepted_again()

    def _failed(self, failure: Failure, entry: Entry) -> None:
        entry.on_its_way = False
        if failure.check(txredisapi.ConnectionError):
            return  # the connection is gone: sent again once in contact (see open)
        self._errors.note("XADD", failure, "this node keeps its users' words and sends them again")
        if self._send is None:
            return
        if not self.refused:
            self.refused = True
            self._refused_callback()
        if self._retry is None:
            self._retry = self._clock.callLater(self._retry_seconds, self._try_again)
            self._retry_seconds = min(self._retry_seconds * 2, MAX_RETRY_SECONDS)

    def _try_again(self) -> None:
        """The oldest entry alone: when Redis takes it, the rest follow (see _accepted)."""
        self._retry = None
        if self._send is None or not self.refused:
            return
        head = next((entry for entry in self._entries if not entry.on_its_way), None)
        if head is not None:
            self._transmit(head)

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None

    def _drop_oldest(self) -> None:
        kept: deque[Entry] = deque()
        while self.events > self._bound and self._entries:
            entry = self._entries.popleft()
            if entry.on_its_way:  # its answer decides
                kept.append(entry)
                continue
            self.events -= entry.count
            self.dropped += entry.count
        self._entries.extendleft(reversed(kept))
        if not self._dropping:
            self._dropping = True
            log.warn("cluster: Redis has not taken this node's events for too long: this node holds its {bound} most "
                     "recent events; older ones will not reach the other nodes", bound=self._bound)
