"""
What the cluster keeps in Redis, for `--cluster-name NAME`:

    chatd:NAME:events    a stream, trimmed to about STREAM_ENTRIES entries; an
                         entry is one turn of one node: its node, its sequence
                         number (1, 2, ... per node), its events as JSON lines
    chatd:NAME:node:ID   a node's presence: a hash of its state (users, their
                         channels, topics, bans), the sequence number that
                         state is current to, and where the stream was then;
                         it expires NODE_TTL_SECONDS after the node's last
                         heartbeat
    chatd:NAME:nodes     the set of node IDs, to find the nodes by
    chatd:NAME:epoch     made once; a different one means Redis lost its data

The cluster's store (chatd.bus.store), what one machine keeps in SQLite:

    chatd:NAME:accounts          a hash: a nickname's key -> its account, JSON
                                 (nick, argon2id hash, registered_at, seen_at, left_at)
    chatd:NAME:accounts:version  counts the changes to the accounts, for nodes to notice
    chatd:NAME:notes:KEY         a list: the messages waiting for account KEY, JSON
    chatd:NAME:read:KEY          a hash: channel key -> how far account KEY read it
    chatd:NAME:history:CHANNEL   a list: a channel's kept events, JSON, the last
                                 HISTORY_LINES of them
    chatd:NAME:history           the set of channel keys that have a history list

Everything read from these keys is input like any other: another program
(or an operator) may have written anything there.
"""

from __future__ import annotations

from attrs import frozen

# Writes a node's state with where the stream is now, in one step: every
# entry this node sent before is at or before that place, every later one after.
WRITE_STATE_SCRIPT = """
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local upto = '0-0'
if #last > 0 then upto = last[1][1] end
redis.call('HSET', KEYS[2], 'state', ARGV[1], 'seq', ARGV[2], 'upto', upto)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return upto
"""


@frozen
class Keys:
    """The key names of one cluster."""

    cluster: str

    @property
    def _prefix(self) -> str:
        return f"chatd:{self.cluster}:"

    @property
    def stream(self) -> str:
        return self._prefix + "events"

    @property
    def nodes(self) -> str:
        return self._prefix + "nodes"

    @property
    def epoch(self) -> str:
        return self._prefix + "epoch"

    def node(self, name: str) -> str:
        return self._prefix + "node:" + name

    @property
    def accounts(self) -> str:
        return self._prefix + "accounts"

    @property
    def accounts_version(self) -> str:
        return self._prefix + "accounts:version"

    def notes(self, account: str) -> str:
        return self._prefix + "notes:" + account

    def read(self, account: str) -> str:
        return self._prefix + "read:" + account

    @property
    def history_channels(self) -> str:
        return self._prefix + "history"

    def history(self, channel: str) -> str:
        return self._prefix + "history:" + channel


def stream_id(text: str) -> tuple[int, int]:
    """A stream entry's ID ("1700000000000-3") as a pair that sorts as Redis does; ValueError if it is not one."""
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)
