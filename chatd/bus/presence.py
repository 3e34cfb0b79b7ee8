"""
Who is in the cluster: this node's presence in Redis, kept alive by a
heartbeat, and the other nodes' states, adopted when they appear and
given up when their presence expires.

    heartbeat (every HEARTBEAT_SECONDS): PING; this node's state (when it
    changed) or its presence's TTL; its name in the set of nodes; each other
    node: present (adopted if new) or gone (its users leave, "Server lost")

A node's state says which sequence number it is current to and where the
stream was when it was written: a node adopting it skips the entries the
state already holds, and reads the stream on from there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import txredisapi
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.bus.errors import ErrorReplies
from chatd.bus.keys import WRITE_STATE_SCRIPT, Keys, stream_id
from chatd.bus.reader import Seen, events_of
from chatd.core.events import BusEvent
from chatd.core.remote import NodeState, checked_state, state_from_json, state_to_json

log = Logger()

HEARTBEAT_SECONDS = 1.0
# A node is gone three heartbeats after its last one (a node busy for two
# seconds is not taken for dead); the others look at every heartbeat of
# theirs, so its users leave everywhere within a heartbeat more.
NODE_TTL_SECONDS = 3 * HEARTBEAT_SECONDS
# Messages a starting node reads back for its channels' history.
HISTORY_ENTRIES = 2000
# After (re)joining, nodes whose presence is missing are given this long to
# come back (all nodes reconnect after a Redis restart) before they are gone.
REJOIN_GRACE_SECONDS = 2 * NODE_TTL_SECONDS


class Presence:
    """This node's presence and the others', through `command` (the bus's command connection)."""

    def __init__(self, clock: IReactorTime, errors: ErrorReplies, keys: Keys, me: str, seen: Seen,
                 command: Callable[..., "Deferred[Any]"], seq: Callable[[], int], state: Callable[[], NodeState],
                 adopt: Callable[[str, NodeState], None], nodes: Callable[[], set[str]],
                 lose_node: Callable[[str], None], recall: Callable[[list[BusEvent]], None],
                 default_channel: str) -> None:
        self._clock = clock
        self._errors = errors
        self._keys = keys
        self._me = me
        self._seen = seen
        self._command = command
        self._seq = seq  # the sequence number of this node's last entry
        self._state = state  # this node's state, from the core
        self._adopt_state = adopt  # another node's state, into the core
        self._nodes = nodes  # the nodes the core knows users of
        self._lose_node = lose_node
        self._recall = recall
        self._default_channel = default_channel
        self.known: set[str] = set()  # the other nodes whose state this node has adopted, and not lost since
        self.changed = True  # this node's state changed since it was last written
        self._judge_after = 0.0

    def grace(self) -> None:
        """The others may be coming back too (a Redis restart): none is taken for gone for a while."""
        self._judge_after = self._clock.seconds() + REJOIN_GRACE_SECONDS

    def write_state(self) -> Deferred[Any]:
        """This node's state and where the stream is now, in one step; the result is that place."""
        return self._command("EVAL", WRITE_STATE_SCRIPT, 2, self._keys.stream, self._keys.node(self._me),
                             state_to_json(self._state()), self._seq(), int(NODE_TTL_SECONDS * 1000))

    @inlineCallbacks
    def adopt_states(self, upto: str, first: bool) -> Any:
        """
        Every other node's state; the result is where to read the stream
        from: the oldest of those states, or `upto`.  The first time, the
        channels' history is read back from there.
        """
        start = upto
        nodes = yield self._command("SMEMBERS", self._keys.nodes)
        for node in nodes:
            if node != self._me:
                adopted = yield self.adopt(node)
                if adopted is not None:  # what its state holds is not applied again from the stream
                    seq, their_upto = adopted
                    self._seen.adopted(node, seq)
                    start = min(start, their_upto, key=stream_id)
        if first:
            entries = yield self._command("XREVRANGE", self._keys.stream, start, "-", "COUNT", HISTORY_ENTRIES)
            self._recall(events_of(reversed(entries), self._me, self._default_channel, None))
        return start

    @inlineCallbacks
    def adopt(self, node: str) -> Any:
        """
        `node`'s state, adopted: its users as it has them now.  The result
        is the sequence number it is current to and where the stream was
        when it was written; None if the node has no (readable) state, or
        one older than what this node has read of it.
        """
        fields = yield self._command("HGETALL", self._keys.node(node))
        fields = dict(zip(fields[::2], fields[1::2]))
        if "state" not in fields:
            return None
        try:
            state = checked_state(state_from_json(fields["state"]))
            seq, upto = int(fields["seq"]), fields["upto"]
            stream_id(upto)
        except (KeyError, ValueError, TypeError) as error:
            log.warn("cluster: node {node}'s state is unreadable ({error})", node=node, error=error)
            return None
        self.known.add(node)
        if seq < self._seen.last(node):
            return None  # older than what this node has read of it already: the stream says more
        self._adopt_state(node, state)
        return seq, upto

    @inlineCallbacks
    def beat(self) -> Any:
        """One heartbeat (see the module's docstring); a failure is told once per kind, and the next beat tries again."""
        command, keys = self._command, self._keys
        try:
            yield command("PING")  # a Redis that stops answering is noticed here (the reply timeout)
            if self.changed:
                self.changed = False
                try:
                    yield self.write_state()
                except Exception:
                    self.changed = True  # written at the next beat
                    raise
            else:
                kept = yield command("PEXPIRE", keys.node(self._me), int(NODE_TTL_SECONDS * 1000))
                if not int(kept):  # Redis forgot this node (it lost its data, or this node froze past the TTL)
                    yield self.write_state()
            # Listed again each time: another node that took this one for gone has taken it off.
            yield command("SADD", keys.nodes, self._me)
            listed = yield command("SMEMBERS", keys.nodes)
            for node in (set(listed) | self.known | self._nodes()) - {self._me}:
                present = yield command("EXISTS", keys.node(node))
                if int(present):
                    if node not in self.known:  # new, or back after this node took it for gone
                        yield self.adopt(node)
                elif self._clock.seconds() >= self._judge_after:
                    yield command("SREM", keys.nodes, node)
                    self.gone(node)
        except txredisapi.ConnectionError:
            return  # a lost connection (or a reply timeout) is dealt with where the link notices it
        except Exception:
            self._errors.note("the heartbeat", Failure(), "trying again at the next heartbeat")
            return
        self._errors.succeeded("the heartbeat", "this node's presence is kept again")

    def gone(self, node: str) -> None:
        if node in self._nodes():
            log.warn("cluster: node {node} stopped answering; its users have left", node=node)
            self._lose_node(node)
        self.known.discard(node)
        self._seen.forget(node)
