"""
Per-connection flow control, in both directions.

Out: `SendQueue`, flushed by a `Flusher` at the end of each turn.  A slow reader (a phone on bad Wi-Fi, a client that never
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

import fcntl
import struct
import termios
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from attrs import define
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from zope.interface import implementer

from chatd.core.batch import Buffer
from chatd.core.turn import Turn
from chatd.net.limits import TokenBucket
from chatd.net.twisted_private import send_now, socket_of, write_rest

# More buffers than this in one send are joined first (the kernel takes at
# most IOV_MAX, 1024 on Linux, in one sendmsg).
MAX_PARTS_PER_SEND = 64



@define
class FlowCounts:
    """What flow control did, over every connection of every front door (for /metrics)."""

    flood_delayed_lines: int = 0  # lines that waited in a flood queue
    send_queue_drops: int = 0  # connections dropped for falling too far behind


class Flusher:
    """
    Each connection's output, handed to its transport at the end of the
    turn (chatd.core.turn), after the chat's fan-out: in one turn a
    connection may be sent many messages from many reads, and one transport
    write of all of them costs far less than one each.
    """

    def __init__(self, clock: IReactorTime, turn: Turn | None = None) -> None:
        """The end of `turn` (the chat server's), or of a turn of the Flusher's own on `clock`."""
        # While `turn.ending`, the turn's output goes out: a queue with
        # nothing waiting then sends what it is given at once (SendQueue.write
        # reads it for every write, so it is an attribute, not a property).
        self.turn = Turn(clock) if turn is None else turn
        self.turn.then(self._hand_over)
        self._dirty: list[SendQueue] = []

    def schedule(self, queue: SendQueue) -> None:
        """`queue` has output to hand over at the end of this turn."""
        self._dirty.append(queue)
        self.turn.later()

    def flush(self) -> None:
        """End the turn now: the chat's events, then everyone's output (shutting down)."""
        self.turn.end()

    def _hand_over(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for queue in dirty:
                queue.flush()


class Overflowing(Protocol):
    def send_queue_exceeded(self) -> None:
        """The peer fell more than the send queue's bound behind: what waited is dropped."""


class LettingThrough(Protocol):
    def let_through(self, text: str) -> None:
        """A line the flood gate lets through."""

    def let_through_all(self, texts: Sequence[str]) -> None:
        """Lines the flood gate lets through together, in order: one read's worth."""


@implementer(IPushProducer)
class SendQueue:
    """What is on its way to one connection, bounded."""

    __slots__ = ("_transport", "_consumer", "_socket", "max_bytes", "_connection", "_flusher", "_turn", "_pending",
                 "pending_bytes", "_scheduled", "_paused", "_closed")

    def __init__(self, transport: Any, max_bytes: int, connection: Overflowing, flusher: Flusher,
                 consumer: Any = None) -> None:
        """
        Write to `transport`, whose buffer tells us to pause and resume
        through `consumer` (where we register as its producer): the
        transport itself, unless something already is its producer (a web
        request's HTTP channel, which passes pauses on).  `connection` is
        told when more than `max_bytes` wait.
        """
        self._transport = transport
        self._consumer = transport if consumer is None else consumer
        self._socket = socket_of(transport)
        self.max_bytes = max_bytes
        self._connection = connection
        self._flusher = flusher
        self._turn = flusher.turn
        # What waits, made when something first has to: an idle connection holds no list.
        self._pending: list[bytes] | None = None
        self.pending_bytes = 0
        self._scheduled = False
        self._paused = False
        self._closed = False
        self._consumer.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        self.write_parts((data,))

    def write_parts(self, parts: Sequence[Buffer]) -> None:
        """
        Write these buffers one after another.  At the end of a turn with
        nothing waiting, they go to the socket as they are, in one
        scatter-gather send: a share of a turn's events is views into the
        turn's one buffer, and is not copied for each member.  Otherwise
        they wait, joined, for the end of the turn (or for the transport to
        ask for more).
        """
        if self._closed:
            return
        if self._turn.ending and not self._pending and not self._paused:
            self._send(parts)  # the turn is ending and nothing waits: no need to queue
            return
        first = parts[0]
        data = first if len(parts) == 1 and isinstance(first, bytes) else b"".join(parts)
        pending = self._pending
        if pending is None:
            self._pending = [data]
        else:
            pending.append(data)
        self.pending_bytes += len(data)
        if self._paused:
            if self.pending_bytes > self.max_bytes:
                self._closed = True
                self._pending = None
                self._connection.send_queue_exceeded()
        elif not self._scheduled:
            self._scheduled = True
            self._flusher.schedule(self)

    def flush(self) -> None:
        """Hand what is pending to the transport (unless it asked us to wait)."""
        self._scheduled = False
        if self._pending and not self._paused and not self._closed:
            self._hand_over()

    def close(self) -> None:
        """Hand everything still pending to the transport and stop producing."""
        if not self._closed:
            self._closed = True
            if self._pending:
                self._hand_over()
            self._consumer.unregisterProducer()

    # -- IPushProducer, from the transport

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        self.flush()

    def stopProducing(self) -> None:
        self._closed = True
        self._pending = None

    def _hand_over(self) -> None:
        pending, self._pending, self.pending_bytes = self._pending, None, 0
        if pending:
            self._send(pending)

    def _send(self, parts: Sequence[Buffer]) -> None:
        """
        Send what the socket takes now, if the transport has nothing waiting
        to be sent, and leave the rest to the transport: a share that is one
        bytes object waits there uncopied (`write_rest`), so every member
        whose socket is full holds the same bytes, not a copy each.

        Twisted's write buffers the data, asks epoll to watch the socket and
        sends on the next poll: three system calls and a trip through the
        poll loop per connection per turn, which is most of fan-out latency.
        While its buffer is empty nothing can be overtaken, so one send()
        (or sendmsg() of several buffers) does it.
        """
        if len(parts) > MAX_PARTS_PER_SEND:
            parts = [b"".join(parts)]
        sent = 0 if self._socket is None else send_now(self._transport, self._socket, parts)
        if sent is None:  # the peer had reset the connection: it is being closed
            return
        if len(parts) == 1:
            if not sent:  # TLS, a test's transport, a full socket or Twisted's buffer in use: as it is (a view is copied)
                self._transport.write(bytes(parts[0]))
            elif sent < len(parts[0]):
                write_rest(self._transport, parts[0], sent)
        elif sent < sum(map(len, parts)):
            self._transport.write(b"".join(parts)[sent:])


def unacknowledged_bytes(transport: Any) -> int:
    """
    Bytes sent on a TCP transport's socket that the peer has not yet
    acknowledged (Linux's TIOCOUTQ); 0 where that cannot be known.
    """
    sock = socket_of(transport)
    if sock is None or not hasattr(termios, "TIOCOUTQ"):
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError):
        return 0


class FloodGate:
    """Lets a user's lines through at `rate` a second (bursts of `burst`), queueing the rest."""

    __slots__ = ("_clock", "_bucket", "max_queued", "_connection", "_reading", "_queued", "_release",
                 "reading_paused", "_drained", "_counts")

    def __init__(
        self,
        clock: IReactorTime,
        rate: float,
        burst: float,
        max_queued: int,
        connection: LettingThrough,
        reading: IPushProducer,
        counts: FlowCounts | None = None,
    ) -> None:
        """
        `connection.let_through(line)` takes each line let through;
        `reading` (the transport) is paused while `max_queued` lines wait,
        and resumed after.  (Objects, not their bound methods, which would
        cost each connection 64 bytes apiece.)
        """
        self._clock = clock
        self._counts = FlowCounts() if counts is None else counts
        self._bucket = TokenBucket(rate, burst, burst, clock.seconds())
        self.max_queued = max_queued
        self._connection = connection
        self._reading = reading
        self._queued: deque[str] | None = None  # made when first needed: most users never flood
        self._release: IDelayedCall | None = None
        self.reading_paused = False
        self._drained: Callable[[], None] | None = None

    @property
    def queued(self) -> deque[str]:
        if self._queued is None:
            self._queued = deque()
        return self._queued

    @property
    def waiting(self) -> int:
        """How many lines wait to be let through."""
        return len(self._queued) if self._queued else 0

    def line(self, text: str) -> None:
        if not self._queued and self._bucket.take(self._clock.seconds()):
            self._connection.let_through(text)
            return
        self._hold(text)

    def lines(self, texts: Sequence[str]) -> None:
        """
        Several lines read at once, as `line` would take them one by one:
        those the rate allows now are let through together (one debit, one
        call), and the rest wait.
        """
        now_allowed = 0 if self._queued else self._bucket.take_up_to(len(texts), self._clock.seconds())
        if now_allowed:
            self._connection.let_through_all(texts if now_allowed == len(texts) else texts[:now_allowed])
        for text in texts[now_allowed:]:
            self._hold(text)

    def _hold(self, text: str) -> None:
        self._counts.flood_delayed_lines += 1
        self.queued.append(text)
        if len(self.queued) >= self.max_queued and not self.reading_paused:
            self.reading_paused = True
            self._reading.pauseProducing()
        self._schedule()

    def when_drained(self, then: Callable[[], None]) -> None:
        """Call `then` once every queued line has been let through (at once if none is queued)."""
        if self._queued:
            self._drained = then
        else:
            then()

    def stop(self) -> None:
        """The connection is gone: nothing more is let through."""
        self._queued = None
        self._drained = None
        if self._release is not None and self._release.active():
            self._release.cancel()

    def _schedule(self) -> None:
        if self._release is None or not self._release.active():
            self._release = self._clock.callLater(self._bucket.seconds_until_token(self._clock.seconds()), self._let_through)

    def _let_through(self) -> None:
        self._release = None
        now = self._clock.seconds()
        queued = self.queued
        while queued and self._bucket.take(now):
            self._connection.let_through(queued.popleft())
        if self.reading_paused and len(queued) < self.max_queued:
            self.reading_paused = False
            self._reading.resumeProducing()
        if queued:
            self._schedule()
        elif self._drained is not None:
            drained, self._drained = self._drained, None
            drained()
