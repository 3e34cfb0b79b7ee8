"""
The cluster bus: chatd nodes sharing channels, nicknames and history
through Redis (`--cluster redis://HOST:PORT/DB`).  One module per part:

    keys.py      what Redis holds, and under which names
    link.py      a connection to Redis, made again whenever it is lost
    outbox.py    this node's turns -> XADD, kept until Redis takes them
    reader.py    the stream -> XREAD BLOCK -> the other nodes' events -> the core
    presence.py  the heartbeat: this node's presence, the others' states
    errors.py    Redis's error replies: counted, told once per kind, handled
    redis.py     the bus: contact with Redis as one explicit state (Contact)

A node applies its own events at once and skips them when they come back;
it skips too any entry it has seen (one sent again after a lost reply).
A node starting (or back after a gap longer than the stream holds) adopts
the others' states, then reads the stream from where the oldest of those
states was made, skipping what each state already holds.

Faults.  Every command has a reply timeout and the heartbeat sends PING,
so a Redis that stops answering (stopped, or a dead route) is noticed like
one that closed the connection: contact is LOST, and the node keeps serving
its users and keeps its own events (at most OUTBOX_EVENTS); on reconnecting
(every few seconds at most) it sends them, then reads on from where it
stopped.  A Redis that answers with an error (full, the stream's key
replaced, a permission taken away) is a fault in contact: the entries it
refused are sent again, oldest first, and a failed read is read again.
Either way users are told once that their words cannot reach the rest of
the chat, and once that they can again.  A node whose presence expires is
gone for the others: its users leave with "Server lost".
"""

from __future__ import annotations

import enum
import os
import secrets
import socket
from collections.abc import Sequence
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.bus.address import RedisAddress
from chatd.bus.errors import ErrorReplies
from chatd.bus.keys import Keys, stream_id
from chatd.bus.link import Link
from chatd.bus.outbox import OUTBOX_EVENTS, Entry, Outbox
from chatd.bus.presence import HEARTBEAT_SECONDS, NODE_TTL_SECONDS, Presence
from chatd.bus.reader import READ_BLOCK_SECONDS, Seen, StreamReader
from chatd.core import replies
from chatd.core.bus import IBus
from chatd.core.events import BusEvent, Joined, Left, Parted, Renamed, TopicChanged, to_json
from chatd.core.server import ChatServer

__all__ = ["DEFAULT_CLUSTER_NAME", "HEARTBEAT_SECONDS", "NODE_TTL_SECONDS", "OUTBOX_EVENTS", "Contact", "RedisBus"]

log = Logger()

DEFAULT_CLUSTER_NAME = "chatd"
# Every command is answered within this, or the connection is taken for dead.
REPLY_TIMEOUT_SECONDS = 2.0
# About this many turns stay in the stream (XADD MAXLEN ~): what a node away
# can catch up on.  A few hundred bytes each: tens of megabytes at most.
STREAM_ENTRIES = 100_000
# A join that Redis answered with an error is tried again after this long.
JOIN_RETRY_SECONDS = 1.0

# Events that change what a node's state says.
_CHANGES_STATE = (Joined, Parted, Left, Renamed, TopicChanged)


class Contact(enum.Enum):
    """Where this node is with Redis."""

    CONNECTING = "connecting"  # not yet in contact since starting
    JOINING = "joining"  # both connections up: checking Redis's data, sending what waits, adopting the others
    IN_CONTACT = "in contact"  # events go both ways (unless Redis refuses writes or reads: see RedisBus.faults)
    LOST = "lost"  # was in contact; both connections are being made again
    STOPPED = "stopped"


def node_name() -> str:
    """A name for this process in the cluster: host, pid and a few random characters (a restart is a new node)."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@implementer(IBus)
class RedisBus:
    def __init__(self, address: RedisAddress, cluster: str, server: ChatServer, clock: Any,
                 node: str | None = None) -> None:
        self.address = address
        self.cluster = cluster
        self.node = node or node_name()
        self._server = server
        self._clock = clock
        self._keys = Keys(cluster)
        self.errors = ErrorReplies()
        self.contact = Contact.CONNECTING
        # Faults while IN_CONTACT: "writes" (Redis refuses this node's
        # entries), "reads" (reading the stream fails).
        self.faults: set[str] = set()
        self._told_lost = False  # users were told their words cannot reach the rest of the chat
        self._joining: object | None = None  # a new value for each join; a join that sees it changed stops
        self._join_retry: IDelayedCall | None = None
        self._lost_at: float | None = None
        self._epoch: str | None = None
        self._failure: str | None = None  # why connecting failed, as last logged
        self.refused: str | None = None  # why Redis would not let this node in
        self._commands = Link(address, REPLY_TIMEOUT_SECONDS, self._link_up, self._link_down, self._refused,
                              self._failed)
        self._reader_link = Link(address, READ_BLOCK_SECONDS + REPLY_TIMEOUT_SECONDS, self._link_up,
                                 self._link_down, self._refused, self._failed)
        self._seen = Seen()
        self._outbox = Outbox(clock, self.errors, lambda: self._fault("writes", True),
                              lambda: self._fault("writes", False))
        self._reader = StreamReader(clock, self.errors, self._keys.stream, self.node, server.default_channel,
                                    self._seen, self._reader_link.command, self._reader_link.send_now,
                                    server.receive, lambda failing: self._fault("reads", failing))
        self._presence = Presence(clock, self.errors, self._keys, self.node, self._seen, self._commands.command,
                                  lambda: self._outbox.seq, server.state, server.adopt, server.nodes,
                                  server.lose_node, server.recall, server.default_channel)
        self._heartbeat = LoopingCall(self._beat)
        self._heartbeat.clock = clock
        self.reconnects = 0  # for /metrics

    # -- for /metrics

    @property
    def in_contact(self) -> bool:
        """In contact, and Redis takes this node's entries and lets it read the others'."""
        return self.contact is Contact.IN_CONTACT and not self.faults

    @property
    def held(self) -> int:
        """This node's events not yet acknowledged by Redis."""
        return self._outbox.events

    @property
    def published(self) -> int:
        return self._outbox.published

    @property
    def dropped(self) -> int:
        return self._outbox.dropped

    @property
    def received(self) -> int:
        return self._reader.received

    @property
    def lag_seconds(self) -> float:
        return self._reader.lag_seconds

    # -- the service's life

    def start(self) -> None:
        log.info("cluster: joining {cluster} through {address} as node {node}", cluster=self.cluster,
                 address=str(self.address), node=self.node)
        for link in (self._commands, self._reader_link):
            link.startConnecting(self.address.endpoint(self._clock))
        self._heartbeat.start(HEARTBEAT_SECONDS, now=False)
        self._clock.callLater(REPLY_TIMEOUT_SECONDS, self._say_if_unreachable)

    @inlineCallbacks
    def leave(self) -> Any:
        """Stop: withdraw this node's presence (what waits has been sent, or is said to be lost), close."""
        was = self.contact
        self.contact = Contact.STOPPED
        self._stop_joining()
        if self._heartbeat.running:
            self._heartbeat.stop()
        self._reader.stop()
        if self._outbox.events and (was is not Contact.IN_CONTACT or "writes" in self.faults):
            log.warn("cluster: stopping out of contact with Redis: {held} events of this node's users never reached "
                     "the other nodes", held=self._outbox.events)
        self._outbox.close()
        if was is Contact.IN_CONTACT:
            try:
                yield self._commands.command("DEL", self._keys.node(self.node))
                yield self._commands.command("SREM", self._keys.nodes, self.node)
            except Exception as error:
                log.warn("cluster: leaving without a word ({error})", error=error)
        yield self._commands.disconnect()
        yield self._reader_link.disconnect()

    def _say_if_unreachable(self) -> None:
        if self.contact is Contact.CONNECTING and self.refused is None:
            log.warn("cluster: Redis at {address} does not answer yet; this node serves its own users meanwhile "
                     "and keeps trying", address=str(self.address))

    # -- IBus

    def publish(self, events: Sequence[BusEvent]) -> None:
        if not self._presence.changed:
            self._presence.changed = any(isinstance(event, _CHANGES_STATE) for event in events)
        self._outbox.add("\n".join([to_json(event, exact_time=True) for event in events]), len(events))

    def _send_entry(self, entry: Entry) -> Deferred[object]:
        sent: Deferred[object] = self._commands.command(
            "XADD", self._keys.stream, "MAXLEN", "~", STREAM_ENTRIES, "*", "node", self.node, "seq", entry.seq,
            "events", entry.text)
        self._commands.send_now()  # before this node's own fan-out, not after it
        return sent

    # -- contact

    def _fault(self, fault: str, present: bool) -> None:
        """Redis refuses writes or reads (`present`), or takes them again."""
        if present:
            self.faults.add(fault)
        else:
            self.faults.discard(fault)
        self._tell_about_contact()

    def _tell_about_contact(self, gap: bool = False) -> None:
        """Users are told once when their words cannot reach the rest of the chat, and once when they can again."""
        if self.contact is Contact.STOPPED:
            return
        if not self.in_contact and not self._told_lost and self.contact is not Contact.JOINING:
            if self.contact is not Contact.CONNECTING:
                self._told_lost = True
                self._server.tell_everyone(replies.ContactLost())
        elif self.in_contact and (self._told_lost or gap):
            self._told_lost = False
            self._server.tell_everyone(replies.ContactRestored(gap))

    def _refused(self, why: str) -> None:
        if self.refused is None:
            self.refused = why
            log.error("cluster: Redis at {address} refused this node ({why}); this node serves its own users alone",
                      address=str(self.address), why=why)

    def _failed(self, why: str) -> None:
        """A connection was lost before it was ready: say why, once for each new reason until contact is made."""
        if why != self._failure and self.contact is not Contact.STOPPED:
            self._failure = why
            log.warn("cluster: connecting to Redis at {address} failed ({why}); retrying", address=str(self.address),
                     why=why)

    def _link_up(self) -> None:
        if (self._commands.connection is not None and self._reader_link.connection is not None
                and self.contact in (Contact.CONNECTING, Contact.LOST)):
            self._join()

    def _link_down(self, why: str) -> None:
        was = self.contact
        if was is Contact.STOPPED:
            return
        self._stop_joining()
        self._reader.stop()
        self._outbox.close()
        self.faults.clear()
        if was is Contact.IN_CONTACT:
            self.contact = Contact.LOST
            self._lost_at = self._clock.seconds()
            log.warn("cluster: lost contact with Redis at {address} ({why}); serving this node's users and retrying",
                     address=str(self.address), why=why)
            self._tell_about_contact()
        elif was is Contact.JOINING:
            self.contact = Contact.CONNECTING if self._reader.position is None else Contact.LOST
        if self.contact is Contact.CONNECTING and why != "the connection was closed":  # why not yet (TLS refused ...)
            self._failed(why)
        for link in (self._commands, self._reader_link):  # both, so both come back together
            link.abort()

    # -- joining

    def _stop_joining(self) -> None:
        self._joining = None
        if self._join_retry is not None and self._join_retry.active():
            self._join_retry.cancel()
        self._join_retry = None

    def _join(self) -> None:
        self.contact = Contact.JOINING
        joining = self._joining = object()
        self._joined(joining).addErrback(self._join_failed, joining)

    def _join_failed(self, failure: Failure, joining: object) -> None:
        if joining is not self._joining or failure.check(txredisapi.ConnectionError):
            return  # the connection is gone: joined again once it is back
        self.errors.note("joining", failure, f"trying again in {JOIN_RETRY_SECONDS:g} s")
        self._join_retry = self._clock.callLater(JOIN_RETRY_SECONDS, self._join_again, joining)

    def _join_again(self, joining: object) -> None:
        self._join_retry = None
        if joining is self._joining:
            self._join()

    @inlineCallbacks
    def _joined(self, joining: object) -> Any:
        """In contact (again): check Redis kept its data, send what waits, say where this node is, read on."""
        first = self._reader.position is None
        if not first:
            self._presence.grace()
        commands, keys = self._commands, self._keys
        yield commands.command("SET", keys.epoch, secrets.token_hex(8), "NX")
        epoch = yield commands.command("GET", keys.epoch)
        lost_data = self._epoch is not None and epoch != self._epoch
        self._epoch = epoch
        gap = False
        if self._reader.position is not None and not lost_data:
            gap = yield self._trimmed_past(self._reader.position)
        if joining is not self._joining:
            return
        self._outbox.open(self._send_entry)  # what waited, in order, before anything new
        held = self._outbox.events
        self._presence.changed = False
        upto = yield self._presence.write_state()
        yield commands.command("SADD", keys.nodes, self.node)
        position = self._reader.position
        if lost_data:
            log.warn("cluster: Redis lost the cluster's data (restarted without saving?); this node registered its "
                     "users again")
            position = "0-0"
            self._presence.known.clear()  # each node's state is adopted again once it has registered again
        elif first or gap:
            position = yield self._presence.adopt_states(upto, first)
        if joining is not self._joining:
            return
        self._joining = None
        self.errors.succeeded("joining", "this node is in contact")
        self._reader.position = position
        self.contact = Contact.IN_CONTACT
        self._failure = None
        if first:
            others = len(self._presence.known)
            log.info("cluster: joined {cluster} ({others} other node{s}, {users} users there)", cluster=self.cluster,
                     others=others, s="" if others == 1 else "s", users=self._server.everyone - self._server.count,
                     node=self.node)
        else:
            self.reconnects += 1
            away = "" if self._lost_at is None else f" after {self._clock.seconds() - self._lost_at:.1f} s"
            log.info("cluster: back in contact with Redis{away}; sent {held} events held meanwhile", away=away,
                     held=held, node=self.node)
        self._tell_about_contact(gap)
        self._reader.start()

    @inlineCallbacks
    def _trimmed_past(self, position: str) -> Any:
        """Whether the stream lost entries after `position` (this node was away longer than it holds)."""
        try:
            info = yield self._commands.command("XINFO", "STREAM", self._keys.stream)
        except txredisapi.ResponseError:
            return False  # no stream at all
        fields: dict[str, Any] = dict(zip(info[::2], info[1::2]))
        deleted = fields.get("max-deleted-entry-id")
        if deleted is not None:
            return stream_id(deleted) > stream_id(position)
        first: Any = fields.get("first-entry")
        return bool(first) and stream_id(first[0]) > stream_id(position)

    # -- the heartbeat

    def _beat(self) -> Deferred[Any] | None:
        if self.contact is not Contact.IN_CONTACT:
            return None
        result: Deferred[Any] = self._presence.beat()
        return result
