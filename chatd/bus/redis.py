"""
The cluster bus: chatd nodes sharing channels, nicknames and history
through Redis (`--cluster redis://HOST:PORT/DB`).

    this node's turn -> RedisBus.publish -> XADD to the stream (one entry per turn)
    the stream -> XREAD BLOCK (a connection of its own) -> ChatServer.receive -> local members

What Redis holds, for `--cluster-name NAME`:

    chatd:NAME:events    a stream, trimmed to about STREAM_ENTRIES entries; an
                         entry is one turn of one node: its node, its sequence
                         number (1, 2, ... per node), its events as JSON lines
    chatd:NAME:node:ID   a node's presence: a hash of its state (users, their
                         channels, topics), the sequence number that state is
                         current to, and where the stream was then; it expires
                         NODE_TTL_SECONDS after the node's last heartbeat
    chatd:NAME:nodes     the set of node IDs, to find the nodes by
    chatd:NAME:epoch     made once; a different one means Redis lost its data

A node applies its own events at once and skips them when they come back;
it skips too any entry whose sequence number it has seen (an entry sent
again after a lost reply).  A node starting (or back after a gap longer
than the stream holds) adopts the others' states, then reads the stream
from where the oldest of those states was made, skipping what each state
already holds.

Faults.  Every command has a reply timeout and the heartbeat sends PING,
so a Redis that stops answering (stopped, or a dead route) is noticed
like one that closed the connection: the node tells its users once, keeps
serving them, keeps its own events (at most OUTBOX_EVENTS), and on
reconnecting (txredisapi retries every few seconds at most) sends them,
then reads on from where it stopped.  A node whose presence expires is
gone for the others: its users leave with "Server lost".
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import txredisapi
from OpenSSL import SSL
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.bus.address import RedisAddress
from chatd.core import replies
from chatd.core.bus import IBus
from chatd.core.events import BusEvent, Joined, Left, Parted, Renamed, TopicChanged, from_json, to_json
from chatd.core.remote import checked, checked_state, state_from_json, state_to_json
from chatd.core.server import ChatServer
from chatd.service.twisted_private import write_out

log = Logger()

DEFAULT_CLUSTER_NAME = "chatd"
HEARTBEAT_SECONDS = 1.0
# A node is gone three heartbeats after its last one (a node busy for two
# seconds is not taken for dead); the others look at every heartbeat of
# theirs, so its users leave everywhere within a heartbeat more.
NODE_TTL_SECONDS = 3 * HEARTBEAT_SECONDS
# Every command is answered within this, or the connection is taken for dead.
REPLY_TIMEOUT_SECONDS = 2.0
READ_BLOCK_SECONDS = 1.0
READ_COUNT = 1000
# About this many turns stay in the stream (XADD MAXLEN ~): what a node away
# can catch up on.  A few hundred bytes each: tens of megabytes at most.
STREAM_ENTRIES = 100_000
# Events of this node kept while Redis is out of reach; past it the oldest go.
OUTBOX_EVENTS = 100_000
# Messages a starting node reads back for its channels' history.
HISTORY_ENTRIES = 2000
# After (re)joining, nodes whose presence is missing are given this long to
# come back (all nodes reconnect after a Redis restart) before they are gone.
REJOIN_GRACE_SECONDS = 2 * NODE_TTL_SECONDS

# Events that change what a node's state says.
_CHANGES_STATE = (Joined, Parted, Left, Renamed, TopicChanged)

# Writes a node's state with where the stream is now, in one step: every
# entry this node sent before is at or before that place, every later one after.
_WRITE_STATE = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local upto = '0-0'
if #last > 0 then upto = last[1][1] end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'seq', ARGV[2], 'upto', upto)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return upto
"""


def node_name() -> str:
    """A name for this process in the cluster: host, pid and a few random characters (a restart is a new node)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def stream_id(text: str) -> tuple[int, int]:
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)


def _no_delay(transport: Any) -> None:
    """
    Send each command at once (TCP_NODELAY, as Redis does its replies): a
    turn's entry goes out while the one before is unanswered, and Nagle's
    algorithm would hold it until then.  Through TLS, on the TCP transport below.
    """
    while transport is not None:
        set_no_delay = getattr(transport, "setTcpNoDelay", None)
        if set_no_delay is not None:
            set_no_delay(True)
            return
        transport = getattr(transport, "transport", None)


def _why(reason: Failure) -> str:
    """Why a connection was lost, in a few words: OpenSSL's last reason for a TLS failure."""
    error = reason.value
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list) and error.args[0]:
        return f"TLS: {error.args[0][-1][-1]}"
    return reason.getErrorMessage()


class Link(txredisapi.RedisFactory):  # type: ignore[misc]
    """
    One connection to Redis, made again whenever it is lost (txredisapi's
    RedisFactory.startConnecting, on Twisted's ClientService).  Tells its
    owner when it is ready and when it is lost.

    The password and the database are sent here, not by txredisapi: when
    its AUTH or SELECT gets no answer in time (a Redis that is stopped
    accepts connections and answers nothing), txredisapi stops
    reconnecting for good.  Here only Redis's own refusal stops it.
    """

    initialDelay = 0.5
    maxDelay = 2.0

    def __init__(self, address: RedisAddress, reply_timeout: float, up: Callable[[], None],
                 down: Callable[[str], None], refused: Callable[[str], None], failed: Callable[[str], None]) -> None:
        super().__init__(None, None, 1, replyTimeout=reply_timeout, convertNumbers=False)
        self.address = address
        self.connection: Any = None
        self.last_loss = "the connection was closed"
        self._up, self._down, self._refused, self._failed = up, down, refused, failed

    def buildProtocol(self, address: Any) -> Any:
        """txredisapi's protocol, which tells why it was lost if that happened before it was ready (TLS refused)."""
        protocol = super().buildProtocol(address)
        lost = protocol.connectionLost

        def connection_lost(reason: Failure) -> None:
            # A plain close or an abort (a reply timeout) says nothing more than that it closed.
            plain = reason.check(ConnectionDone, ConnectionLost, ConnectionAborted)
            self.last_loss = "the connection was closed" if plain else _why(reason)
            if protocol is not self.connection:  # never ready: the bus never hears of it otherwise
                self._failed(self.last_loss)
            lost(reason)

        protocol.connectionLost = connection_lost
        return protocol

    def addConnection(self, connection: Any) -> None:
        super().addConnection(connection)
        if connection in self.pool:
            _no_delay(connection.transport)
            self._let_in(connection).addErrback(self._not_let_in, connection)

    @inlineCallbacks
    def _let_in(self, connection: Any) -> Any:
        address = self.address
        if address.password is not None:
            if address.username:
                yield connection.execute_command("AUTH", address.username, address.password)
            else:
                yield connection.execute_command("AUTH", address.password)
        if address.db:
            yield connection.execute_command("SELECT", address.db)
        if connection in self.pool:
            self.connection = connection
            self._up()

    def _not_let_in(self, failure: Failure, connection: Any) -> None:
        if failure.check(txredisapi.ResponseError):  # Redis said no: trying again would not help
            self.stopTrying()
            self._refused(failure.getErrorMessage())
        if connection.transport is not None:
            connection.transport.abortConnection()

    def delConnection(self, connection: Any) -> None:
        super().delConnection(connection)
        if connection is self.connection:
            self.connection = None
            self._down(self.last_loss)

    def command(self, *args: Any) -> Deferred[Any]:
        if self.connection is None:
            raise txredisapi.ConnectionError("not connected")
        result: Deferred[Any] = self.connection.execute_command(*args)
        return result

    def abort(self) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.abortConnection()


@implementer(IBus)
class RedisBus:
    def __init__(self, address: RedisAddress, cluster: str, server: ChatServer, clock: Any,
                 hold_turn: Callable[[], None], node: str | None = None) -> None:
        self.address = address
        self.cluster = cluster
        self.node = node or node_name()
        self._server = server
        self._clock = clock
        self._hold_turn = hold_turn
        prefix = f"chatd:{cluster}:"
        self._stream = prefix + "events"
        self._nodes_key = prefix + "nodes"
        self._epoch_key = prefix + "epoch"
        self._node_prefix = prefix + "node:"
        self._commands = Link(address, REPLY_TIMEOUT_SECONDS, self._link_up, self._link_down, self._refused,
                              self._failed)
        self._reader = Link(address, READ_BLOCK_SECONDS + REPLY_TIMEOUT_SECONDS, self._link_up, self._link_down,
                            self._refused, self._failed)
        self._failure: str | None = None  # why connecting failed, as last logged
        self.refused: str | None = None  # why Redis would not let this node in
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        # This node's entries not yet acknowledged by Redis, in order: (seq, events as JSON lines, how many).
        self._unacked: deque[tuple[int, str, int]] = deque()
        self._unacked_events = 0
        self._seq = 0
        self._live = False  # in contact: entries go to Redis as they come
        # A new value each time this node comes in contact; what was started
        # for an earlier contact (a read, a join) stops when it sees it changed.
        self._contact: object | None = None
        self._joining = False
        self._ever_joined = False
        self._told_lost = False
        self._lost_at: float | None = None
        self._epoch: str | None = None
        self._read_from: str | None = None
        self._last_seq: dict[str, int] = {}  # of every node whose entries this node has applied or adopted
        self._known: set[str] = set()  # the other nodes whose state this node has adopted, and not lost since
        self._judge_after = 0.0
        self._dirty = True
        self._stopping = False
        self._dropping = False  # dropping held events since the last contact
        self._waiting_for_contact: list[Deferred[None]] = []
        # For /metrics.
        self.published = 0
        self.received = 0
        self.reconnects = 0
        self.dropped = 0
        self.lag_seconds = 0.0

    # -- the service's life

    def start(self) -> None:
        log.info("cluster: joining {cluster} through {address} as node {node}", cluster=self.cluster,
                 address=str(self.address), node=self.node)
        for link in (self._commands, self._reader):
            link.startConnecting(self.address.endpoint(self._clock))
        self._heartbeat.start(HEARTBEAT_SECONDS, now=False)
        self._clock.callLater(REPLY_TIMEOUT_SECONDS, self._say_if_unreachable)

    @inlineCallbacks
    def leave(self) -> Any:
        """Stop: send what waits (a moment at most), withdraw this node's presence, close."""
        self._stopping = True
        if self._heartbeat.running:
            self._heartbeat.stop()
        if self._live:
            try:
                yield self._commands.command("DEL", self._node_prefix + self.node)
                yield self._commands.command("SREM", self._nodes_key, self.node)
            except Exception as error:
                log.warn("cluster: leaving without a word ({error})", error=error)
        elif self._unacked_events:
            log.warn("cluster: stopping out of contact with Redis: {held} events of this node's users never reached "
                     "the other nodes", held=self._unacked_events)
        self._live = False
        yield self._commands.disconnect()
        yield self._reader.disconnect()

    @property
    def in_contact(self) -> bool:
        return self._live

    @property
    def held(self) -> int:
        """This node's events not yet acknowledged by Redis."""
        return self._unacked_events

    def when_in_contact(self) -> Deferred[None]:
        """Fires once this node is (back) in contact with the cluster, at once if it is."""
        if self._live and not self._joining:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting_for_contact.append(waiting)
        return waiting

    def _say_if_unreachable(self) -> None:
        if not self._ever_joined and not self._stopping and self.refused is None:
            log.warn("cluster: Redis at {address} does not answer yet; this node serves its own users meanwhile "
                     "and keeps trying", address=str(self.address))

    # -- IBus

    def publish(self, events: Sequence[BusEvent]) -> None:
        self._seq += 1
        entry = (self._seq, "\n".join([to_json(event, exact_time=True) for event in events]), len(events))
        self._unacked.append(entry)
        self._unacked_events += entry[2]
        if not self._dirty:
            self._dirty = any(isinstance(event, _CHANGES_STATE) for event in events)
        if self._live:
            try:
                self._send(entry)
            except txredisapi.ConnectionError:
                pass  # kept: sent again on reconnecting
        elif self._unacked_events > OUTBOX_EVENTS:
            while self._unacked_events > OUTBOX_EVENTS:
                _, _, count = self._unacked.popleft()
                self._unacked_events -= count
                self.dropped += count
            if not self._dropping:  # once per time out of contact; /metrics counts them all
                self._dropping = True
                log.warn("cluster: out of contact too long: this node holds its {bound} most recent events; older "
                         "ones will not reach the other nodes", bound=OUTBOX_EVENTS)

    def _send(self, entry: tuple[int, str, int]) -> None:
        seq, text, count = entry
        sent = self._commands.command("XADD", self._stream, "MAXLEN", "~", STREAM_ENTRIES, "*",
                                      "node", self.node, "seq", seq, "events", text)
        sent.addCallbacks(self._acknowledged, lambda failure: None, callbackArgs=(seq,))
        write_out(self._commands.connection.transport)  # before this node's own fan-out, not after it
        self.published += count

    def _acknowledged(self, _: object, seq: int) -> None:
        while self._unacked and self._unacked[0][0] <= seq:
            _, _, count = self._unacked.popleft()
            self._unacked_events -= count

    # -- contact

    def _refused(self, why: str) -> None:
        if self.refused is None:
            self.refused = why
            log.error("cluster: Redis at {address} refused this node ({why}); this node serves its own users alone",
                      address=str(self.address), why=why)

    def _failed(self, why: str) -> None:
        """A connection was lost before it was ready: say why, once for each new reason until contact is made."""
        if why != self._failure and not self._stopping:
            self._failure = why
            log.warn("cluster: connecting to Redis at {address} failed ({why}); retrying", address=str(self.address),
                     why=why)

    def _link_up(self) -> None:
        if self._commands.connection is not None and self._reader.connection is not None and not self._stopping:
            self._join().addErrback(self._join_failed)

    def _link_down(self, why: str) -> None:
        self._contact, self._joining = None, False
        if not self._live and why != "the connection was closed":  # not in contact yet: why not (TLS refused ...)
            self._failed(why)
        if self._live:
            self._live = False
            self._lost_at = time.monotonic()
            log.warn("cluster: lost contact with Redis at {address} ({why}); serving this node's users and retrying",
                     address=str(self.address), why=why)
            if not self._stopping:
                self._told_lost = True
                self._hold_turn()
                self._server.tell_everyone(replies.ContactLost())
        for link in (self._commands, self._reader):  # both, so both come back together
            link.abort()

    def _join_failed(self, failure: Failure) -> None:
        if not self._stopping:
            if not failure.check(txredisapi.ConnectionError):  # not a timeout or a lost connection: say so
                log.failure("cluster: joining failed; retrying", failure)
            self._commands.abort()

    @inlineCallbacks
    def _join(self) -> Any:
        """In contact (again): check Redis kept its data, send what waits, say where this node is, read on."""
        contact = self._contact = object()
        self._joining = True
        if self._ever_joined:  # the others may be coming back too: none is judged gone for a while
            self._judge_after = self._clock.seconds() + REJOIN_GRACE_SECONDS
        commands = self._commands
        yield commands.command("SET", self._epoch_key, secrets.token_hex(8), "NX")
        epoch = yield commands.command("GET", self._epoch_key)
        lost_data = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        gap = False
        if self._read_from is not None and not lost_data:
            gap = yield self._trimmed_past(self._read_from)
        if contact is not self._contact:
            return
        for entry in self._unacked:  # what waited, in order, before anything new
            self._send(entry)
        held = self._unacked_events
        self._live, self._dropping = True, False
        self._dirty = False
        upto = yield self._write_state()
        yield commands.command("SADD", self._nodes_key, self.node)
        if lost_data:
            log.warn("cluster: Redis lost the cluster's data (restarted without saving?); this node registered its "
                     "users again")
            self._read_from = "0-0"
            self._known.clear()  # each node's state is adopted again once it has registered again (the heartbeat)
        elif self._read_from is None or gap:
            yield self._adopt_states(upto, first=self._read_from is None)
        if contact is not self._contact:
            return
        if self._ever_joined:
            self.reconnects += 1
            away = "" if self._lost_at is None else f" after {time.monotonic() - self._lost_at:.1f} s"
            log.info("cluster: back in contact with Redis{away}; sent {held} events held meanwhile", away=away,
                     held=held)
        else:
            others = len(self._known)
            log.info("cluster: joined {cluster} ({others} other node{s}, {users} users there)", cluster=self.cluster,
                     others=others, s="" if others == 1 else "s", users=self._server.everyone - self._server.count)
        self._ever_joined = True
        self._failure = None
        if self._told_lost or gap:
            self._told_lost = False
            self._hold_turn()
            self._server.tell_everyone(replies.ContactRestored(gap))
        self._joining = False
        self._read(contact)
        waiting, self._waiting_for_contact = self._waiting_for_contact, []
        for each in waiting:
            each.callback(None)

    @inlineCallbacks
    def _trimmed_past(self, position: str) -> Any:
        """Whether the stream lost entries after `position` (this node was away longer than it holds)."""
        try:
            info = yield self._commands.command("XINFO", "STREAM", self._stream)
        except txredisapi.ResponseError:
            return False  # no stream at all
        fields: dict[str, Any] = dict(zip(info[::2], info[1::2]))
        deleted = fields.get("max-deleted-entry-id")
        if deleted is not None:
            return stream_id(deleted) > stream_id(position)
        first: Any = fields.get("first-entry")
        return bool(first) and stream_id(first[0]) > stream_id(position)

    def _write_state(self) -> Deferred[Any]:
        return self._commands.command(
            "EVAL", _WRITE_STATE, 2, self._stream, self._node_prefix + self.node,
            state_to_json(self._server.state()), self._seq, int(NODE_TTL_SECONDS * 1000))

    @inlineCallbacks
    def _adopt_states(self, upto: str, first: bool) -> Any:
        """Every other node's state, then read the stream from the oldest of them on, less what they hold."""
        start = upto
        nodes = yield self._commands.command("SMEMBERS", self._nodes_key)
        for node in nodes:
            if node != self.node:
                adopted = yield self._adopt(node)
                if adopted is not None:
                    seq, their_upto = adopted
                    self._last_seq[node] = max(self._last_seq.get(node, 0), seq)
                    start = min(start, their_upto, key=stream_id)
        if first:
            entries = yield self._commands.command("XREVRANGE", self._stream, start, "-", "COUNT", HISTORY_ENTRIES)
            self._server.recall(self._events_of(reversed(entries), skip_seen=False))
        self._read_from = start

    @inlineCallbacks
    def _adopt(self, node: str) -> Any:
        """
        `node`'s state, adopted: its users as it has them now.  Returns the
        sequence number that state is current to and where the stream was
        then; None if the node has no (readable) state, or one older than
        what this node has already read of it in the stream.
        """
        fields = yield self._commands.command("HGETALL", self._node_prefix + node)
        fields = dict(zip(fields[::2], fields[1::2]))
        if "state" not in fields:
            return None
        try:
            state = checked_state(state_from_json(fields["state"]))
            seq, upto = int(fields["seq"]), fields["upto"]
            stream_id(upto)
        except (KeyError, ValueError) as error:
            log.warn("cluster: node {node}'s state is unreadable ({error})", node=node, error=error)
            return None
        self._known.add(node)
        if seq < self._last_seq.get(node, 0):
            return None  # older than what this node has read of it already: the stream says more
        self._hold_turn()
        self._server.adopt(node, state)
        return seq, upto

    # -- reading

    def _read(self, contact: object) -> None:
        if contact is not self._contact or self._reader.connection is None:
            return
        reading = self._reader.command("XREAD", "COUNT", READ_COUNT, "BLOCK", int(READ_BLOCK_SECONDS * 1000),
                                       "STREAMS", self._stream, self._read_from)
        reading.addCallbacks(self._got, lambda failure: None, callbackArgs=(contact,))
        write_out(self._reader.connection.transport)  # waiting in Redis before this turn's fan-out, not after it

    def _got(self, reply: Any, contact: object) -> None:
        if contact is not self._contact:
            return
        if not reply:  # nothing for a while: read on
            self._read(contact)
            return
        entries = reply[0][1]
        self._read_from = entries[-1][0]
        self._read(contact)  # the next read waits in Redis while these are applied
        events = self._events_of(entries, skip_seen=True)
        if events:
            self.received += len(events)
            self._hold_turn()
            self._server.receive(events)
        self.lag_seconds = max(0.0, time.time() - stream_id(self._read_from)[0] / 1000)

    def _events_of(self, entries: Any, skip_seen: bool) -> list[BusEvent]:
        """The other nodes' events in these stream entries, less what was seen before."""
        events: list[BusEvent] = []
        default_channel = self._server.default_channel
        for _, flat in entries:
            fields = dict(zip(flat[::2], flat[1::2]))
            node = fields.get("node")
            if node == self.node or node is None:
                continue
            try:
                seq = int(fields["seq"])
            except (KeyError, ValueError):
                continue
            if skip_seen:
                if seq <= self._last_seq.get(node, 0):
                    continue
                self._last_seq[node] = seq
            for line in fields.get("events", "").split("\n"):
                event = from_json(line, default_channel, node)
                if event is not None:
                    event = checked(event)  # Redis is shared: what comes from it is input like any other
                if event is not None:
                    events.append(event)
        return events

    # -- the heartbeat: this node's presence, and the others'

    @inlineCallbacks
    def _beat(self) -> Any:
        if not self._live or self._joining:
            return
        commands = self._commands
        try:
            yield commands.command("PING")  # a Redis that stops answering is noticed here (the reply timeout)
            if self._dirty:
                self._dirty = False
                yield self._write_state()
            else:
                kept = yield commands.command("PEXPIRE", self._node_prefix + self.node, int(NODE_TTL_SECONDS * 1000))
                if not int(kept):  # Redis forgot this node (it lost its data, or this node froze past the TTL)
                    yield self._write_state()
            # Listed again each time: another node that took this one for gone has taken it off.
            yield commands.command("SADD", self._nodes_key, self.node)
            listed = yield commands.command("SMEMBERS", self._nodes_key)
            for node in (set(listed) | self._known | self._server.nodes()) - {self.node}:
                present = yield commands.command("EXISTS", self._node_prefix + node)
                if int(present):
                    if node not in self._known:  # new, or back after this node took it for gone
                        yield self._adopt(node)
                elif self._clock.seconds() >= self._judge_after:
                    yield commands.command("SREM", self._nodes_key, node)
                    self._node_gone(node)
        except txredisapi.ConnectionError:
            pass  # a lost connection (or a reply timeout) is dealt with where the link notices it
        except Exception:
            log.failure("cluster: the heartbeat failed")

    def _node_gone(self, node: str) -> None:
        if node in self._server.nodes():
            log.warn("cluster: node {node} stopped answering; its users have left", node=node)
            self._hold_turn()
            self._server.lose_node(node)
        self._known.discard(node)
        self._last_seq.pop(node, None)
