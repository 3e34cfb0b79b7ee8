"""
The cluster's store: what one machine keeps in SQLite (chatd.store.sqlite),
a cluster keeps in its Redis (keys.py names it all), so that every node
sees the same accounts, notes for people who are away, history and read
marks.  chatd.core.store says what a store does.

- **History.**  Each node appends its own turns' kept events to their
  channels' lists (the last HISTORY_LINES each), in one script per write,
  so a write Redis refused is written again whole, never twice in part.
  The events of FLUSH_SECONDS go together; at most PENDING_EVENTS wait.
- **Accounts.**  A registration is HSETNX: when two nodes register one
  nickname at once, exactly one succeeds, and the other's user is told.
  Every change bumps a version; each node looks at it every
  SYNC_SECONDS and, when it moved, hands the core the whole list
  (`accounts_changed`): registrations, expiries and departures made on
  other nodes (and the list at the start, which no node reads before its
  reactor runs).  Passwords are hashed and checked in this node's
  password thread (chatd.store.passwords), never in Redis.
- **Notes** are a list per account, pushed and taken by scripts (at most
  MAX_NOTES, each taken once, none older than NOTE_DAYS).
- **Faults** follow the bus's rules (chatd.bus.errors): every error reply
  is counted by kind and told once; a write that fails waits and is tried
  again, with a backoff; a read that fails is a StoreUnavailable the user
  reads (try again).  `healthy` is whether Redis takes the writes: a
  Redis that refuses them (full) makes users hear that history is not
  being saved; one out of reach is the bus's to tell (one fault, one
  notice), and what waits is written when it is back.
- **What comes back from Redis is checked** as a line typed is: nicknames
  and channel names must be valid, texts are cleaned.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import txredisapi
from twisted.internet.defer import Deferred, fail, inlineCallbacks, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.bus.address import RedisAddress
from chatd.bus.errors import ErrorReplies, describe
from chatd.bus.keys import Keys
from chatd.bus.link import Link
from chatd.core.events import MESSAGES, BusEvent, Event, to_json
from chatd.core.modes import ChannelState
from chatd.core.nicknames import NicknameError, check_nickname, name_key
from chatd.core.store import (
    CHATD,
    KEPT,
    MAX_MENTIONS,
    MAX_NOTES,
    NOTE_DAYS,
    IStore,
    KeptAccount,
    KeptEvent,
    Note,
    StoreUnavailable,
    Taken,
    checked_event,
    mentioning,
    undelivered,
)
from chatd.core.text import clean

log = Logger()

REPLY_TIMEOUT_SECONDS = 2.0
HISTORY_LINES = 10_000  # kept per channel
PENDING_EVENTS = 100_000
FLUSH_SECONDS = 0.1
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0
SYNC_SECONDS = 2.0
NOTE_SECONDS = NOTE_DAYS * 24 * 3600
# A notes list expires a day after its last note could: the hourly forgetting tells the senders first.
NOTE_LIFETIME_MS = (NOTE_SECONDS + 24 * 3600) * 1000

# ARGV: the history keys' prefix, the lines kept, then (channel key, event) pairs.
APPEND_SCRIPT = """
local cap = tonumber(ARGV[2])
local touched = {}
for i = 3, #ARGV, 2 do
  local key = ARGV[1] .. ARGV[i]
  redis.call('RPUSH', key, ARGV[i + 1])
  touched[key] = ARGV[i]
end
for key, channel in pairs(touched) do
  redis.call('LTRIM', key, -cap, -1)
  redis.call('SADD', KEYS[1], channel)
end
return 1
"""
# KEYS: the notes, the accounts; ARGV: the account's key, the note, the most, its lifetime (ms).
LEAVE_NOTE_SCRIPT = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return -1 end
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"""
# KEYS: channels' history lists; ARGV: a unix time.  Lines are appended about in time order: the old are first.
FORGET_SCRIPT = """
local removed = 0
for _, key in ipairs(KEYS) do
  while true do
    local first = redis.call('LINDEX', key, 0)
    if not first then break end
    local ok, event = pcall(cjson.decode, first)
    if ok and type(event) == 'table' and tonumber(event.ts) and tonumber(event.ts) < tonumber(ARGV[1]) then
      redis.call('LPOP', key)
      removed = removed + 1
    else
      break
    end
  end
end
return removed
"""
TAKE_NOTES_SCRIPT = """
local notes = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return notes
"""
# KEYS: the read marks; ARGV: the channel's key, the time: the later of it and the mark kept.
MARK_READ_SCRIPT = """
local kept = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > kept then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


class Hashing(Protocol):
    """What the store needs of chatd.store.passwords.Passwords (which the composition root gives it)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def hash(self, password: str) -> Deferred[str]: ...

    def check(self, kept_hash: str, password: str) -> Deferred[bool]: ...


@implementer(IStore)
class RedisStore:
    """The store in the cluster's Redis (see the module's docstring)."""

    keeps_accounts = True

    def __init__(self, address: RedisAddress, cluster: str, reactor: Any, passwords: Hashing,
                 default_channel: str, clock: Any = None) -> None:
        """
        The store of cluster `cluster` at `address`, connected through
        `reactor`, its writes and looks timed by `clock` (the reactor,
        unless a test's).
        """
        self.address = address
        self._keys = Keys(cluster)
        self._reactor = reactor
        self._clock = reactor if clock is None else clock
        self._passwords = passwords
        self._default_channel = default_channel
        self.errors = ErrorReplies()
        self._link = Link(address, REPLY_TIMEOUT_SECONDS, self._up, self._down, self._refused, self._unreachable)
        self._pending: list[KeptEvent] = []
        self._writing: Deferred[Any] | None = None
        self._flush: IDelayedCall | None = None
        self._retry: IDelayedCall | None = None
        self._retry_seconds = RETRY_SECONDS
        self._failing: str | None = None
        self._watchers: list[Callable[[bool], None]] = []
        self.dropped = 0
        self._version: str | None = None  # the accounts' version last handed on
        self._sync = LoopingCall(self._look_at_accounts)
        self._sync.clock = self._clock
        self.accounts_changed: Callable[[list[KeptAccount]], None] = lambda accounts: None
        self._local_changes = 0  # this node's changes to the accounts: a list read across one is read again
        self._stopping = False
        self._waiting_for_contact: list[Deferred[None]] = []

    # -- life

    def start(self) -> None:
        self._passwords.start()
        self._link.startConnecting(self.address.endpoint(self._reactor))
        self._sync.start(SYNC_SECONDS, now=False)

    @inlineCallbacks
    def close(self) -> Any:
        """Write what waits (if Redis takes it), then stop."""
        self._stopping = True
        if self._sync.running:
            self._sync.stop()
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._writing is not None:
            yield self._writing
        why = "no contact with Redis"
        if self._pending and self._link.connection is not None:
            try:
                yield self._append(self._pending)
                self._pending = []
            except Exception as error:
                why = describe(Failure(error))[1]
        if self._pending:
            log.error("cluster store: {count} event(s) were not kept in Redis ({why})", count=len(self._pending),
                      why=why)
        self._passwords.stop()
        self._link.stopTrying()
        yield self._link.disconnect()

    def in_contact(self) -> Deferred[None]:
        """Fires once the store's connection to Redis is up (at once if it is)."""
        if self._link.connection is not None:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._waiting_for_contact.append(waiting)
        return waiting

    def _up(self) -> None:
        waiting, self._waiting_for_contact = self._waiting_for_contact, []
        for each in waiting:
            each.callback(None)
        self._version = None  # whatever happened meanwhile: read the accounts again
        self._look_at_accounts()
        if self._pending and self._writing is None:
            self._write()

    def _down(self, why: str) -> None:
        """The bus tells users and the log of a Redis out of reach; what waits is written once it is back."""

    def _unreachable(self, why: str) -> None:
        """A connection attempt failed: the bus says so, once; the link tries again."""

    def _refused(self, why: str) -> None:
        log.error("cluster store: Redis at {address} refused this node: {why}", address=str(self.address), why=why)

    # -- health

    @property
    def healthy(self) -> bool:
        return self._failing is None

    def watch(self, changed: Callable[[bool], None]) -> None:
        self._watchers.append(changed)

    def _set_failing(self, kind: str | None) -> None:
        was = self._failing
        self._failing = kind
        if (was is None) != (kind is None):
            for changed in self._watchers:
                changed(kind is None)

    # -- history

    def record(self, events: Sequence[BusEvent]) -> None:
        kept = [event for event in events if isinstance(event, KEPT)]
        if not kept:
            return
        self._pending.extend(kept)
        if len(self._pending) > PENDING_EVENTS:
            over = len(self._pending) - PENDING_EVENTS
            del self._pending[:over]
            self.dropped += over
        if self._writing is None and self._retry is None and self._flush is None and not self._stopping:
            self._flush = self._clock.callLater(FLUSH_SECONDS, self._write)

    def _write(self) -> None:
        self._flush = None
        if self._retry is not None and self._retry.active():  # back in contact before the retry was due
            self._retry.cancel()
        self._retry = None
        if self._link.connection is None or not self._pending:
            return  # out of reach: written when Redis is back (_up)
        batch, self._pending = self._pending, []
        try:
            self._writing = self._append(batch)
        except txredisapi.ConnectionError as error:
            self._writing = fail(error)
        self._writing.addCallbacks(self._written, self._not_written, errbackArgs=(batch,))

    def _append(self, batch: Sequence[KeptEvent]) -> Deferred[Any]:
        pairs = [part for event in batch for part in (name_key(event.channel), to_json(event, exact_time=True))]
        written: Deferred[Any] = self._link.command("EVAL", APPEND_SCRIPT, 1, self._keys.history_channels,
                                                    self._keys.history(""), HISTORY_LINES, *pairs)
        return written

    def _written(self, _: object) -> None:
        self._writing = None
        self._retry_seconds = RETRY_SECONDS
        self.errors.succeeded("EVAL (history)", "what was said is kept again")
        self._set_failing(None)
        if self._pending and not self._stopping:
            self._flush = self._clock.callLater(FLUSH_SECONDS, self._write)

    def _not_written(self, failure: Failure, batch: list[KeptEvent]) -> None:
        self._writing = None
        self._pending[:0] = batch
        kind = self.errors.note("EVAL (history)", failure, "what was said waits, and is written again")
        if failure.check(txredisapi.ResponseError):
            # Redis refuses (full, a permission taken away): users hear history is not saved.  A Redis out
            # of reach (closed, frozen) is the bus's to tell: "lost contact with the rest of the chat".
            self._set_failing(kind)
        if not self._stopping:
            self._retry = self._clock.callLater(self._retry_seconds, self._write)
            self._retry_seconds = min(self._retry_seconds * 2, MAX_RETRY_SECONDS)

    def _after_writes(self) -> Deferred[Any]:
        """Fires once what this node recorded before is written (a read sees it), or failed to be."""
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
            self._write()
        if self._writing is None:
            return succeed(None)
        written: Deferred[Any] = Deferred()

        def done(result: object) -> object:
            written.callback(None)
            return result

        self._writing.addBoth(done)
        return written

    def history(self, channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        def found(rows: list[Any]) -> list[Event]:
            events = self._events(rows)
            if before is not None:
                events = [event for event in events if event.at < before]
            return events[-count:] if count else []

        key = self._keys.history(name_key(channel))
        return self._after_writes().addCallback(lambda _: self._read("LRANGE", key, -HISTORY_LINES, -1)) \
            .addCallback(found)

    def _events(self, rows: Sequence[Any]) -> list[Event]:
        events: list[Event] = []
        for row in rows:
            event = checked_event(_text(row), self._default_channel)
            if event is not None:
                events.append(event)
        return events

    def _read(self, *command: Any) -> Deferred[Any]:
        """A command whose failure becomes StoreUnavailable (counted and told as the bus does)."""
        try:
            answer: Deferred[Any] = self._link.command(*command)
        except txredisapi.ConnectionError:
            return fail(StoreUnavailable("the cluster's Redis cannot be reached now: try again later"))

        def unavailable(failure: Failure) -> None:
            if failure.check(StoreUnavailable, Taken):
                failure.raiseException()
            kind = self.errors.note(str(command[0]), failure, "the user is told to try again")
            raise StoreUnavailable(f"the cluster's Redis cannot answer now ({kind}): try again later")

        def worked(result: Any) -> Any:
            self.errors.succeeded(str(command[0]), "the store answers again")
            return result

        return answer.addCallbacks(worked, unavailable)

    # -- accounts

    def accounts(self) -> list[KeptAccount]:
        return []  # read once the reactor runs, and handed on by accounts_changed

    def kept_channels(self) -> list[ChannelState]:
        """
        None: in a cluster, a founder's channel's modes go from node to node
        (each node's state carries them) for as long as one node runs; they
        are not kept in Redis across a restart of every node (yet).
        """
        return []

    def keep_channel(self, state: ChannelState) -> None:
        pass

    def _look_at_accounts(self) -> None:
        if self._link.connection is None:
            return

        changes = self._local_changes

        def version(value: Any) -> Deferred[Any] | None:
            value = _text(value) if value is not None else "0"
            if value == self._version:
                return None
            return self._read("HGETALL", self._keys.accounts).addCallback(self._hand_on, value, changes)

        self._read("GET", self._keys.accounts_version).addCallback(version).addErrback(
            lambda failure: None)  # counted and told by _read; looked at again in SYNC_SECONDS

    def _hand_on(self, fields: Any, version: str, changes: int) -> None:
        if changes != self._local_changes:  # this node changed them meanwhile: that list may miss it
            return
        self._version = version
        accounts = []
        for _, value in _pairs(fields):
            account = _account(value)
            if account is not None:
                accounts.append(KeptAccount(account["nick"], account["left_at"]))
        self.accounts_changed(accounts)

    def _changed(self, _: object = None) -> Deferred[Any]:
        """The accounts changed: other nodes see it at their next look (this one too)."""
        self._local_changes += 1
        return self._read("INCR", self._keys.accounts_version)

    def register(self, nick: str, password: str, at: float) -> Deferred[None]:
        def keep(kept_hash: str) -> Deferred[Any]:
            record = json.dumps({"nick": nick, "hash": kept_hash, "registered_at": at, "seen_at": at,
                                 "left_at": None})
            return self._read("HSETNX", self._keys.accounts, name_key(nick), record).addCallback(kept)

        def kept(added: Any) -> Deferred[Any]:
            if int(added) != 1:
                raise Taken(nick)
            return self._changed()

        done: Deferred[None] = self._passwords.hash(password).addCallback(keep).addCallback(lambda _: None)
        return done

    def _account_of(self, nick: str) -> Deferred[dict[str, Any] | None]:
        return self._read("HGET", self._keys.accounts, name_key(nick)).addCallback(
            lambda value: None if value is None else _account(value))

    def check_password(self, nick: str, password: str) -> Deferred[bool]:
        def check(account: dict[str, Any] | None) -> Deferred[bool] | bool:
            return account is not None and self._passwords.check(account["hash"], password)

        checked: Deferred[bool] = self._account_of(nick).addCallback(check)
        return checked

    def _update(self, nick: str, **changes: Any) -> Deferred[None]:
        """Change fields of `nick`'s account (the last writer wins: one user changes their own)."""
        def change(account: dict[str, Any] | None) -> Deferred[Any] | None:
            if account is None:
                return None
            account.update(changes)
            return self._read("HSET", self._keys.accounts, name_key(nick), json.dumps(account))

        done: Deferred[None] = self._account_of(nick).addCallback(change).addCallback(lambda _: None)
        return done

    def change_password(self, nick: str, password: str) -> Deferred[None]:
        done: Deferred[None] = self._passwords.hash(password).addCallback(
            lambda kept_hash: self._update(nick, hash=kept_hash))
        return done

    def unregister(self, nick: str) -> Deferred[None]:
        key = name_key(nick)
        done: Deferred[None] = self._read("HDEL", self._keys.accounts, key).addCallback(
            lambda _: self._read("DEL", self._keys.notes(key), self._keys.read(key))).addCallback(
            self._changed).addCallback(lambda _: None)
        return done

    def left(self, nick: str, at: float) -> None:
        self._update(nick, left_at=at, seen_at=at).addCallback(self._changed).addErrback(
            lambda failure: log.warn("cluster store: could not keep when {nick} left: {why}", nick=nick,
                                     why=failure.getErrorMessage()))

    def expire_accounts(self, unused_since: float, online: Sequence[str]) -> Deferred[list[str]]:
        keep = {name_key(nick) for nick in online}

        @inlineCallbacks
        def expire(fields: Any) -> Any:
            expired = []
            for key, value in _pairs(fields):
                account = _account(value)
                if account is not None and key not in keep and account["seen_at"] < unused_since:
                    removed = yield self._read("HDEL", self._keys.accounts, key)
                    if int(removed):  # this node's, not another's at the same time
                        yield self._read("DEL", self._keys.notes(key), self._keys.read(key))
                        expired.append(account["nick"])
            if expired:
                yield self._changed()
            return expired

        done: Deferred[list[str]] = self._read("HGETALL", self._keys.accounts).addCallback(expire)
        return done

    def forget_before(self, when: float) -> Deferred[int]:
        """Forget the history older than `when` (unix time), from the start of each channel's list."""
        def forget(channels: Any) -> Deferred[Any]:
            keys = [self._keys.history(_text(channel)) for channel in channels or []]
            return self._read("EVAL", FORGET_SCRIPT, len(keys), *keys, repr(when)).addCallback(int)

        forgotten: Deferred[int] = self._read("SMEMBERS", self._keys.history_channels).addCallback(forget)
        return forgotten

    def forget_notes_before(self, when: float) -> Deferred[int]:
        """
        Forget the notes left before `when` and never taken (the first of
        each list: notes are pushed in time order), telling each sender who
        is registered (a note of chatd's); how many went.
        """
        @inlineCallbacks
        def forget(fields: Any) -> Any:
            accounts = {key: account for key, value in _pairs(fields) if (account := _account(value)) is not None}
            forgotten = 0
            for key, account in accounts.items():
                rows = yield self._read("LRANGE", self._keys.notes(key), 0, -1)
                notes = [_note(row) for row in rows or []]  # None: not a note (another program's)
                expired = next((index for index, note in enumerate(notes) if note is not None and note.at >= when),
                               len(notes))
                if not expired:
                    continue
                yield self._read("LTRIM", self._keys.notes(key), expired, -1)
                forgotten += expired
                for note in notes[:expired]:
                    if note is None or note.sender == CHATD or name_key(note.sender) not in accounts:
                        continue
                    sender = name_key(note.sender)
                    told = undelivered(account["nick"], note, self._clock.seconds())
                    yield self._read("RPUSH", self._keys.notes(sender), _note_json(told))
                    yield self._read("PEXPIRE", self._keys.notes(sender), NOTE_LIFETIME_MS)
            return forgotten

        forgotten: Deferred[int] = self._read("HGETALL", self._keys.accounts).addCallback(forget)
        return forgotten

    # -- notes, mentions, read marks

    def leave_note(self, recipient: str, note: Note) -> Deferred[bool]:
        key = name_key(recipient)
        kept: Deferred[bool] = self._read(
            "EVAL", LEAVE_NOTE_SCRIPT, 2, self._keys.notes(key), self._keys.accounts, key, _note_json(note),
            MAX_NOTES, NOTE_LIFETIME_MS).addCallback(lambda answer: int(answer) == 1)
        return kept

    def take_notes(self, recipient: str) -> Deferred[list[Note]]:
        def notes(rows: Any) -> list[Note]:
            oldest = self._clock.seconds() - NOTE_SECONDS
            return [note for row in rows or [] if (note := _note(row)) is not None and note.at >= oldest]

        taken: Deferred[list[Note]] = self._read("EVAL", TAKE_NOTES_SCRIPT, 1,
                                                 self._keys.notes(name_key(recipient))).addCallback(notes)
        return taken

    @inlineCallbacks
    def _every_channel(self) -> Any:
        """(channel key, its kept events) for every channel with a history."""
        channels = yield self._read("SMEMBERS", self._keys.history_channels)
        found = []
        for channel in sorted(_text(channel) for channel in channels or []):
            rows = yield self._read("LRANGE", self._keys.history(channel), -HISTORY_LINES, -1)
            found.append((channel, self._events(rows)))
        return found

    def mentions(self, nick: str, since: float) -> Deferred[list[Event]]:
        def named(channels: list[tuple[str, list[Event]]]) -> list[Event]:
            recent = sorted((event for _, events in channels for event in events if event.at > since),
                            key=lambda event: event.at)
            return mentioning(recent, nick)[-MAX_MENTIONS:]

        found: Deferred[list[Event]] = self._after_writes().addCallback(
            lambda _: self._every_channel()).addCallback(named)
        return found

    def mark_read(self, nick: str, channel: str, at: float) -> None:
        self._read("EVAL", MARK_READ_SCRIPT, 1, self._keys.read(name_key(nick)), name_key(channel), repr(at)) \
            .addErrback(lambda failure: log.warn("cluster store: could not keep how far {nick} read: {why}",
                                                 nick=nick, why=failure.getErrorMessage()))

    def unread(self, nick: str) -> Deferred[list[tuple[str, int]]]:
        @inlineCallbacks
        def count(fields: Any) -> Any:
            counts = []
            for channel, mark in _pairs(fields):
                rows = yield self._read("LRANGE", self._keys.history(channel), -HISTORY_LINES, -1)
                events = [event for event in self._events(rows) if isinstance(event, MESSAGES)]
                try:
                    since = float(_text(mark))
                except ValueError:
                    continue
                said = [event for event in events if event.at > since]
                if said:
                    counts.append((said[-1].channel, len(said)))
            return counts

        counted: Deferred[list[tuple[str, int]]] = self._read(
            "HGETALL", self._keys.read(name_key(nick))).addCallback(count)
        return counted


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _pairs(fields: Any) -> list[tuple[str, Any]]:
    """HGETALL's answer (a dict, or a flat list), as (field, value) pairs."""
    if isinstance(fields, dict):
        return [(_text(key), value) for key, value in fields.items()]
    if isinstance(fields, list):
        return [(_text(fields[index]), fields[index + 1]) for index in range(0, len(fields) - 1, 2)]
    return []


def _account(value: Any) -> dict[str, Any] | None:
    """An account read back from Redis, checked: None if it is not one."""
    try:
        account = json.loads(_text(value))
        nick = check_nickname(clean(str(account["nick"])))
        kept_hash = account["hash"]
        seen_at = float(account.get("seen_at") or 0.0)
        left_at = account.get("left_at")
        left_at = None if left_at is None else float(left_at)
    except (ValueError, TypeError, KeyError, AttributeError, NicknameError):
        return None
    if not isinstance(kept_hash, str):
        return None
    return dict(account, nick=nick, seen_at=seen_at, left_at=left_at)


def _note_json(note: Note) -> str:
    return json.dumps({"sender": note.sender, "text": note.text, "at": note.at})


def _note(value: Any) -> Note | None:
    try:
        note = json.loads(_text(value))
        return Note(clean(str(note["sender"])), clean(str(note["text"])), float(note["at"]))
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
