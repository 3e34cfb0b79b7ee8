"""
Per-connection flow control, in both directions.

Out: `SendQueue`.  A slow reader (a phone on bad Wi-Fi, a client that never
reads) must not slow anyone else nor grow memory without bound.  While the
transport's own buffer is full, Twisted pauses us (we are its streaming
producer); what is delivered meanwhile waits in our queue, up to a limit.
A recipient that falls further behind is dropped.

In: `FloodGate`.  A user may send `rate` lines a second, in bursts of
`burst`.  Lines beyond that wait in a queue and are let through at the
allowed rate, so nothing is lost.  While that queue is full, the connection
stops reading its socket, and TCP itself slows the flooder down.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from chatd.limits import TokenBucket


@implementer(IPushProducer)
class SendQueue:
    """What is on its way to one connection, bounded."""

    def __init__(self, transport: Any, max_bytes: int, overflowed: Callable[[], None]) -> None:
        self._transport = transport
        self.max_bytes = max_bytes
        self._overflowed = overflowed
        self._waiting: list[bytes] = []
        self.waiting_bytes = 0
        self._paused = False
        self._closed = False
        transport.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._paused:
            self._transport.write(data)
            return
        self._waiting.append(data)
        self.waiting_bytes += len(data)
        if self.waiting_bytes > self.max_bytes:
            self._closed = True
            self._waiting.clear()
            self._overflowed()

    def close(self) -> None:
        """Hand everything still waiting to the transport and stop producing."""
        if not self._closed:
            self._closed = True
            self._flush()
            self._transport.unregisterProducer()

    # -- IPushProducer, from the transport

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self._flush()

    def stopProducing(self) -> None:
        self._closed = True
        self._waiting.clear()

    def _flush(self) -> None:
        if self._waiting:
            waiting, self._waiting, self.waiting_bytes = self._waiting, [], 0
            self._transport.writeSequence(waiting)


class FloodGate:
    """Lets a user's lines through at `rate` a second (bursts of `burst`), queueing the rest."""

    def __init__(
        self,
        clock: IReactorTime,
        rate: float,
        burst: float,
        max_queued: int,
        handle: Callable[[str], None],
        pause_reading: Callable[[], None],
        resume_reading: Callable[[], None],
    ) -> None:
        self._clock = clock
        self._bucket = TokenBucket(rate, burst, burst, clock.seconds())
        self.max_queued = max_queued
        self._handle = handle
        self._pause_reading = pause_reading
        self._resume_reading = resume_reading
        self.queued: deque[str] = deque()
        self._release: IDelayedCall | None = None
        self.reading_paused = False
        self._drained: Callable[[], None] | None = None

    def line(self, text: str) -> None:
        if not self.queued and self._bucket.take(self._clock.seconds()):
            self._handle(text)
            return
        self.queued.append(text)
        if len(self.queued) >= self.max_queued and not self.reading_paused:
            self.reading_paused = True
            self._pause_reading()
        self._schedule()

    def when_drained(self, then: Callable[[], None]) -> None:
        """Call `then` once every queued line has been let through (at once if none is queued)."""
        if self.queued:
            self._drained = then
        else:
            then()

    def stop(self) -> None:
        """The connection is gone: nothing more is let through."""
        self.queued.clear()
        self._drained = None
        if self._release is not None and self._release.active():
            self._release.cancel()

    def _schedule(self) -> None:
        if self._release is None or not self._release.active():
            self._release = self._clock.callLater(self._bucket.seconds_until_token(self._clock.seconds()), self._let_through)

    def _let_through(self) -> None:
        self._release = None
        now = self._clock.seconds()
        while self.queued and self._bucket.take(now):
            self._handle(self.queued.popleft())
        if self.reading_paused and len(self.queued) < self.max_queued:
            self.reading_paused = False
            self._resume_reading()
        if self.queued:
            self._schedule()
        elif self._drained is not None:
            drained, self._drained = self._drained, None
            drained()
