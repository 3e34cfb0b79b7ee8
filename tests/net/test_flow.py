"""Flow control in both directions, with a fake clock, and output on a real socket (chatd.net.flow)."""

import socket
import struct

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.internet.threads import deferToThread

from chatd.core.turn import Turn
from chatd.net.flow import FloodGate, Flusher, SendQueue
from tests.fakes import one_connection


class Events:
    """What a flood gate did: the lines it let through, and its pauses and resumes of the reading (a producer)."""

    def __init__(self):
        self.handled, self.calls = [], []

    def let_through(self, text):
        self.handled.append(text)

    def let_through_all(self, texts):
        self.calls.append(f"{len(texts)} together")
        self.handled.extend(texts)

    def pauseProducing(self):
        self.calls.append("pause")

    def resumeProducing(self):
        self.calls.append("resume")


class Overflows:
    """A connection as its send queue sees it: each overflow it was told of."""

    def __init__(self, overflows):
        self.overflows = overflows

    def send_queue_exceeded(self):
        self.overflows.append(True)


def gate(clock, events, rate=5, burst=20, max_queued=100):
    return FloodGate(clock, rate, burst, max_queued, events, events)


def test_a_burst_passes_then_lines_wait_and_flow_at_the_rate():
    """20 lines at once go through; the rest come one every 1/rate s, in order."""
    clock, events = Clock(), Events()
    flood = gate(clock, events)
    for index in range(30):
        flood.line(f"line {index}")
    assert events.handled == [f"line {index}" for index in range(20)]
    clock.advance(0.2)
    assert events.handled[-1] == "line 20"
    clock.advance(1.8)
    assert events.handled == [f"line {index}" for index in range(30)]
    assert events.calls == []


def test_lines_read_together_pass_together_and_those_over_the_burst_wait_their_turn():
    """A read of 30 lines: the 20 of the burst are let through in one call, the other 10 at the rate, in order."""
    clock, events = Clock(), Events()
    flood = gate(clock, events)
    flood.lines([f"line {index}" for index in range(30)])
    assert events.calls == ["20 together"]
    assert events.handled == [f"line {index}" for index in range(20)]
    clock.advance(0.2)
    assert events.handled[-1] == "line 20"
    clock.advance(1.8)
    assert events.handled == [f"line {index}" for index in range(30)]


def test_lines_read_while_others_wait_wait_behind_them():
    """Nothing read later overtakes a line already waiting, even when the rate would allow it."""
    clock, events = Clock(), Events()
    flood = gate(clock, events, rate=5, burst=1)
    flood.lines(["a", "b"])
    clock.rightNow += 0.3  # a token is there, but the release of "b" has not run yet
    flood.lines(["c"])
    assert events.handled == ["a"]
    clock.pump([0.2] * 5)
    assert events.handled == ["a", "b", "c"]
    assert events.calls == ["1 together"]


def test_a_full_queue_pauses_reading_and_nothing_is_dropped():
    """At --flood-queue lines waiting, reading pauses; it resumes when the queue drains; every line arrives once, in order."""
    clock, events = Clock(), Events()
    flood = gate(clock, events, max_queued=100)
    for index in range(150):
        flood.line(str(index))
    assert events.calls == ["pause"]
    assert len(flood.queued) == 130
    clock.pump([0.2] * 200)
    assert events.handled == [str(index) for index in range(150)]
    assert events.calls == ["pause", "resume"]


def test_when_drained_waits_for_the_queue():
    """The end of input is handled after the last queued line."""
    clock, events = Clock(), Events()
    flood = gate(clock, events, burst=1)
    flood.line("a")
    flood.line("b")
    flood.when_drained(lambda: events.handled.append("<eof>"))
    assert events.handled == ["a"]
    clock.advance(0.2)
    assert events.handled == ["a", "b", "<eof>"]


def test_stop_lets_nothing_more_through():
    """After the connection is gone, queued lines are dropped with it."""
    clock, events = Clock(), Events()
    flood = gate(clock, events, burst=1)
    flood.line("a")
    flood.line("b")
    flood.stop()
    clock.advance(10)
    assert events.handled == ["a"]


def queue(max_bytes=10):
    transport, overflows = StringTransport(), []
    flusher = Flusher(Clock())
    send = SendQueue(transport, max_bytes, Overflows(overflows), flusher)
    return send, transport, overflows, flusher


def test_send_queue_writes_through_until_the_transport_pauses_it():
    """While the transport keeps up, writes go straight to it; while paused they wait, then flow in order."""
    send, transport, overflows, flusher = queue()
    assert transport.producer is send and transport.streaming
    send.write(b"one ")
    flusher.flush()
    send.pauseProducing()
    send.write(b"two ")
    send.write(b"three")
    assert transport.value() == b"one "
    send.resumeProducing()
    assert transport.value() == b"one two three"
    assert overflows == []


def test_send_queue_overflow_drops_the_queue_and_reports_once():
    """More than max_bytes waiting: the overflow callback, once; later writes go nowhere."""
    send, transport, overflows, _ = queue(max_bytes=10)
    send.pauseProducing()
    send.write(b"123456")
    send.write(b"7890")
    assert overflows == []
    send.write(b"!")
    send.write(b"more")
    send.resumeProducing()
    assert overflows == [True]
    assert transport.value() == b""


def test_closing_flushes_and_unregisters():
    """close() hands what waits to the transport and unregisters, so loseConnection can finish."""
    send, transport, _, _ = queue()
    send.pauseProducing()
    send.write(b"bye")
    send.close()
    assert transport.value() == b"bye"
    assert transport.producer is None


def test_writes_in_one_turn_reach_the_transport_as_one_write():
    """Coalescing: many messages written before the flush go out in one transport write, in order."""
    clock, transport, writes = Clock(), StringTransport(), []
    original = transport.write
    transport.write = lambda data: (writes.append(data), original(data))
    send = SendQueue(transport, 1 << 20, Overflows([]), Flusher(clock))
    for index in range(5):
        send.write(b"%d " % index)
    assert writes == []
    clock.advance(0)  # the turn ends
    assert writes == [b"0 1 2 3 4 "]


@pytest_twisted.inlineCallbacks
def test_with_nothing_buffered_output_is_sent_at_once_and_otherwise_queues_behind_twisted():
    """A real TCP transport: an idle one sends in the flush itself; one with data waiting keeps the order."""
    port, client, server = yield one_connection()
    try:
        flusher = Flusher(reactor)
        send = SendQueue(server.transport, 1 << 20, Overflows([]), flusher)
        client.setblocking(False)
        send.write(b"at once ")
        flusher.flush()
        assert client.recv(100) == b"at once "  # already here: no reactor turn in between
        server.transport.write(b"first ")  # waits in Twisted's buffer for the next poll
        send.write(b"second")
        flusher.flush()
        with pytest.raises(BlockingIOError):
            client.recv(100)  # nothing overtook "first"
        client.settimeout(10)
        received = b""
        while received != b"first second":
            received += yield deferToThread(client.recv, 100)
    finally:
        client.close()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_parts_go_out_in_one_scatter_gather_send_and_otherwise_in_order_behind_twisted():
    """A share's views into the turn's buffer reach the peer whole and in order, sent at once or queued."""
    port, client, server = yield one_connection()
    try:
        the_turn = Turn(reactor)
        flusher = Flusher(reactor, the_turn)
        send = SendQueue(server.transport, 1 << 20, Overflows([]), flusher)
        client.setblocking(False)
        turn = memoryview(b"<a> one\r\n<b> two\r\n<c> three\r\n")
        the_turn.ending = True  # the end of a turn, as Turn.end sets it
        send.write_parts([turn[0:9], turn[18:]])  # all but b's line
        the_turn.ending = False
        assert client.recv(100) == b"<a> one\r\n<c> three\r\n"  # already here: sent in the flush itself
        send.write_parts([turn[9:18], turn[0:9]])  # mid-turn: queued, joined, sent at the flush
        flusher.flush()
        assert client.recv(100) == b"<b> two\r\n<a> one\r\n"
        server.transport.write(b"first ")  # waits in Twisted's buffer for the next poll
        the_turn.ending = True
        send.write_parts([turn[0:4], turn[18:22]])
        the_turn.ending = False
        client.settimeout(10)
        received = b""
        while received != b"first <a> <c> ":
            received += yield deferToThread(client.recv, 100)
    finally:
        client.close()
        yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_what_full_sockets_leave_of_a_share_waits_as_one_copy_for_all_its_members():
    """
    A share (1 MiB, one bytes object, as a web turn's frame or a whole
    batch is) sent at the end of a turn to two members whose sockets take
    only a little of it: the rest waits in each transport as the share's
    own bytes, one copy for both members rather than a copy each, and each
    peer still reads all of it, whole and in order.
    """
    connections = []
    for _ in range(2):
        connections.append((yield one_connection()))
    try:
        the_turn = Turn(reactor)
        flusher = Flusher(reactor, the_turn)
        share = bytes(range(256)) * 4096
        queues = []
        for _, client, server in connections:
            server.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
            queues.append(SendQueue(server.transport, 4 << 20, Overflows([]), flusher))
        the_turn.ending = True  # the end of a turn, as Turn.end sets it
        for send in queues:
            send.write_parts([share])
        the_turn.ending = False
        for _, _, server in connections:
            assert server.transport.dataBuffer is share and 0 < server.transport.offset < len(share)
        for _, client, _ in connections:
            client.settimeout(10)
            received = bytearray()
            while len(received) < len(share):
                received += yield deferToThread(client.recv, 1 << 16)
            assert received == share
    finally:
        for port, client, _ in connections:
            client.close()
            yield port.stopListening()


@pytest_twisted.inlineCallbacks
def test_a_peer_that_reset_the_connection_is_lost_not_closed_cleanly():
    """Sending at once to a reset peer takes the socket's error; the connection is still reported lost, not done."""
    port, client, server = yield one_connection()
    try:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()  # an RST, at once on loopback
        flusher = Flusher(reactor)
        SendQueue(server.transport, 1 << 20, Overflows([]), flusher).write(b"too late")
        flusher.flush()
        reason = yield server.lost
        assert isinstance(reason, ConnectionLost) and not isinstance(reason, ConnectionDone)
    finally:
        yield port.stopListening()
