"""
The store of one machine: SQLite, from Python's standard library, in one
file of the state directory (chatd.core.store says what a store does).

- **One writer, off the reactor's thread.** Twisted's `adbapi`
  ConnectionPool with a single connection: every read and write runs in
  its thread, in order.  The events of the turns of FLUSH_SECONDS go in one
  transaction (a commit writes several pages of the log, whatever it
  holds: one per turn cost a busy chat a fifth of its speed), and while one
  is being written the next ones wait (at most PENDING_EVENTS).  A read
  writes what waits first, so it sees every event recorded before it.
- **WAL mode**, so a reader never waits for the writer, and a crash loses at
  most the transaction being written (`synchronous=NORMAL`: a power cut may
  lose the last ones acknowledged, never the file).
- **A schema version** (`PRAGMA user_version`) with a migration from each
  version to the next, and chatd's mark (`PRAGMA application_id`), checked
  when the store is opened, before the reactor runs: a file that is not a
  database, is damaged, is another program's or is from a newer chatd is
  one line naming it (StoreError), never a new file over it.
- **Faults.** A write that fails (a full disk, a read-only file) is logged
  once by kind; the events wait, and the write is tried again after
  RETRY_SECONDS, doubling up to MAX_RETRY_SECONDS, until it goes through.
  `healthy` says whether the last write went through.
- **What comes back from disk is checked**: a channel's name must be one,
  and every text is cleaned of control characters, as a user's line is.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from functools import lru_cache
from itertools import chain
from pathlib import Path
from typing import Any

from attrs import frozen
from twisted.enterprise import adbapi
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from chatd.core.events import KIND_NAMES, MESSAGES, BusEvent, Event, TopicChanged, to_json
from chatd.core.modes import ChannelState, channel_state_from_list, channel_state_to_list, checked_channel_state
from chatd.core.nicknames import ChannelNameError, NicknameError, check_channel_name, check_nickname, name_key
from chatd.core.store import (
    CHATD,
    KEPT,
    MAX_MENTIONS,
    MAX_NOTES,
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
from chatd.store.passwords import Passwords

log = Logger()

STORE_FILE = "chatd.sqlite3"
# chatd's mark in the file's header ("chat"), so another program's database is never taken for ours.
APPLICATION_ID = 0x63686174
# The schema, one migration per version: MIGRATIONS[n] takes a store from version n to n + 1.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        channel TEXT NOT NULL,   -- the channel's key (as chatd.core.nicknames.name_key makes it)
        at REAL NOT NULL,        -- unix time
        kind TEXT NOT NULL,      -- the kind of event, as chatd.core.events.KIND_NAMES names it
        event TEXT NOT NULL      -- the event, in chatd.core.events' JSON
    );
    CREATE INDEX events_by_channel ON events (channel, kind, id);
    CREATE INDEX events_by_time ON events (at);
    CREATE TABLE channels (
        key TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        topic TEXT NOT NULL DEFAULT '',
        topic_by TEXT NOT NULL DEFAULT '',
        topic_at REAL NOT NULL DEFAULT 0,
        used_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE accounts (
        key TEXT PRIMARY KEY,    -- the nickname's key (name_key)
        nick TEXT NOT NULL,      -- as registered
        hash TEXT NOT NULL,      -- argon2id, in its PHC string (chatd.store.passwords)
        registered_at REAL NOT NULL,
        seen_at REAL NOT NULL,   -- the last registration, login or leaving: --account-expiry-days counts from it
        left_at REAL             -- when its owner last left the chat (mentions since then); NULL: not yet
    );
    CREATE TABLE notes (
        id INTEGER PRIMARY KEY,
        recipient TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        at REAL NOT NULL,
        text TEXT NOT NULL
    );
    CREATE INDEX notes_by_recipient ON notes (recipient, id);
    CREATE INDEX notes_by_time ON notes (at);
    CREATE TABLE read_marks (    -- how far each account has read each channel (on the web page), for unread counts
        account TEXT NOT NULL REFERENCES accounts (key) ON DELETE CASCADE,
        channel TEXT NOT NULL,   -- the channel's key
        at REAL NOT NULL,
        PRIMARY KEY (account, channel)
    );
    """,
    """
    ALTER TABLE channels ADD COLUMN modes TEXT;  -- a founder's channel's modes (chatd.core.modes' list, in JSON)
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
PENDING_EVENTS = 100_000  # events waiting to be written, at most; past it the oldest are not kept
# How long recorded events wait to be written with the next ones: a kill -9 loses at most this (and the write).
FLUSH_SECONDS = 0.1
# The messages a search for mentions reads, at most (the most recent).
MENTION_SCAN = 50_000
# Events inserted by one statement, at most (4 values each: within the 999
# a statement may have in every SQLite chatd may meet).
ROWS_PER_INSERT = 200
RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0


@frozen
class KeptChannel:
    """A channel as the store remembers it: its topic, and when it was last used."""

    name: str
    topic: str = ""
    topic_by: str = ""
    topic_at: float = 0.0
    used_at: float = 0.0


class StoreError(Exception):
    """The store cannot be used: str() is one line naming the file and why."""


def check(path: Path) -> None:
    """
    Open the store at `path` (making it, and its schema, if there is no
    file), bring its schema up to date, and close it again; StoreError if
    it cannot be chatd's store.  Synchronous: run before the reactor.
    """
    try:
        connection = sqlite3.connect(path, isolation_level=None)
    except sqlite3.Error as problem:
        raise StoreError(f"{path}: cannot open it: {problem}") from None
    try:
        _prepare(connection, path)
    except sqlite3.DatabaseError as problem:
        raise StoreError(f"{path}: not a SQLite database, or damaged ({problem})") from None
    finally:
        connection.close()


def _prepare(connection: sqlite3.Connection, path: Path) -> None:
    """Check the file is chatd's (or new), and migrate its schema to SCHEMA_VERSION."""
    application_id = connection.execute("PRAGMA application_id").fetchone()[0]
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = connection.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    if application_id != APPLICATION_ID and (application_id or version or tables):
        raise StoreError(f"{path}: another program's database, not chatd's store")
    if version > SCHEMA_VERSION:
        raise StoreError(f"{path}: made by a newer chatd (schema {version}; this one knows up to {SCHEMA_VERSION})")
    if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        raise StoreError(f"{path}: damaged (SQLite's quick_check failed); restore it from a backup, or move it away")
    if connection.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
        raise StoreError(f"{path}: cannot use SQLite's write-ahead log here")
    for number in range(version, SCHEMA_VERSION):
        connection.executescript(f"BEGIN; {MIGRATIONS[number]}; PRAGMA user_version = {number + 1}; "
                                 f"PRAGMA application_id = {APPLICATION_ID}; COMMIT;")


def _open(connection: sqlite3.Connection) -> None:
    """Each connection of the pool: WAL (set by check), and commits that wait for the log, not the disk."""
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")


def kept_at_start(path: Path, count: int, max_channels: int, default_channel: str) -> dict[str, list[Event]]:
    """
    What the store at `path` kept, for the chat's start (synchronous: run
    before the reactor): for each of the `max_channels` channels used most
    recently (the least recent first, as the server takes them), its topic
    (as the TopicChanged that set it) and its last `count` messages and
    actions, oldest first; by the channel's key.  Checked as `history` is.
    """
    connection = sqlite3.connect(path)
    try:
        channels = connection.execute(
            "SELECT key, name, topic, topic_by, topic_at, used_at FROM channels ORDER BY used_at DESC LIMIT ?",
            (max_channels,)).fetchall()
        kept: dict[str, list[Event]] = {}
        for key, *fields in reversed(channels):
            channel = _checked_channel(*fields)
            if channel is None or name_key(channel.name) != key:
                continue
            events: list[Event] = []
            if channel.topic:
                events.append(TopicChanged(channel.name, channel.topic_by, channel.topic, at=channel.topic_at))
            rows = connection.execute("SELECT event FROM events WHERE channel = ? AND kind IN ('said', 'acted') "
                                      "ORDER BY id DESC LIMIT ?", (key, count)).fetchall() if count else []
            events += [event for (text,) in reversed(rows)
                       if isinstance(event := checked_event(text, default_channel), MESSAGES)]
            kept[key] = events
        return kept
    finally:
        connection.close()


@implementer(IStore)
class SQLiteStore:
    """The store in one SQLite file (see the module's docstring)."""

    keeps_accounts = True

    def __init__(self, path: Path, reactor: Any, default_channel: str, clock: IReactorTime | None = None,
                 pool: Callable[..., adbapi.ConnectionPool] = adbapi.ConnectionPool,
                 passwords: Passwords | None = None) -> None:
        """
        The store at `path`, its one connection in a thread of `reactor`'s,
        its retries timed by `clock` (the reactor, unless a test's), its
        passwords hashed and checked by `passwords` (in a thread of their own).
        """
        check(path)
        self.path = path
        self._reactor = reactor
        self._clock = reactor if clock is None else clock
        self._default_channel = default_channel
        self._make_pool = pool
        self._pool: adbapi.ConnectionPool | None = None  # from start() on
        self._pending: list[KeptEvent] = []
        self._writing: Deferred[None] | None = None
        self._flush: IDelayedCall | None = None  # the next write, FLUSH_SECONDS after the first event it holds
        self._retry: IDelayedCall | None = None
        self._retry_seconds = RETRY_SECONDS
        self._failing: str | None = None  # the kind of the last failed write, until one goes through
        self.dropped = 0  # events not kept: more than PENDING_EVENTS waited
        self._closing: Deferred[None] | None = None
        self._passwords = Passwords(reactor) if passwords is None else passwords
        self._watchers: list[Callable[[bool], None]] = []

    def start(self) -> None:
        """Open the store's connection, in its thread (before: what is recorded waits)."""
        self._pool = self._make_pool("sqlite3", str(self.path), check_same_thread=False, cp_min=1, cp_max=1,
                                     cp_openfun=_open, cp_noisy=False, cp_reactor=self._reactor)
        self._passwords.start()
        if self._pending:
            self._write()

    @property
    def _connection(self) -> adbapi.ConnectionPool:
        assert self._pool is not None, "the store is not started"
        return self._pool

    @property
    def healthy(self) -> bool:
        """Whether the last write went through (or none failed yet)."""
        return self._failing is None

    def watch(self, changed: Callable[[bool], None]) -> None:
        self._watchers.append(changed)

    def _health_changed(self, healthy: bool) -> None:
        for changed in self._watchers:
            changed(healthy)

    # -- writing

    def record(self, events: Sequence[BusEvent]) -> None:
        kept = [event for event in events if isinstance(event, KEPT)]
        if not kept:
            return
        self._pending.extend(kept)
        if len(self._pending) > PENDING_EVENTS:
            over = len(self._pending) - PENDING_EVENTS
            del self._pending[:over]
            self.dropped += over
        self._schedule()

    def _schedule(self) -> None:
        """The next write, FLUSH_SECONDS from now, unless one is due or under way, or the store not started."""
        if self._writing is None and self._retry is None and self._flush is None and self._pool is not None:
            self._flush = self._clock.callLater(FLUSH_SECONDS, self._write)

    def _write_now(self) -> None:
        """Write what waits at once (a read follows, or the store closes), unless a write is under way or failing."""
        if self._flush is not None and self._flush.active():
            self._flush.cancel()
            self._write()

    def _write(self) -> None:
        self._flush = self._retry = None
        batch, self._pending = self._pending, []
        self._writing = self._connection.runInteraction(_insert, batch)
        self._writing.addCallbacks(self._written, self._not_written, errbackArgs=(batch,))

    def _written(self, _: object) -> None:
        self._writing = None
        self._retry_seconds = RETRY_SECONDS
        if self._failing is not None:
            log.info("the store at {path} is written to again", path=str(self.path))
            self._failing = None
            self._health_changed(True)
        if self._closing is not None:
            if self._pending:
                self._write()
            else:
                self._closing.callback(None)
        elif self._pending:
            self._schedule()

    def _not_written(self, failure: Failure, batch: list[KeptEvent]) -> None:
        self._writing = None
        self._pending[:0] = batch  # first again, in order
        kind = _kind_of(failure)
        if self._closing is not None:  # chatd is stopping: it does not wait for the disk
            log.error("the store at {path} could not be written ({kind}): {count} event(s) were not kept",
                      path=str(self.path), kind=kind, count=len(self._pending))
            self._pending.clear()
            self._closing.callback(None)
            return
        if kind != self._failing:
            log.error("the store at {path} cannot be written ({kind}); what was said waits, and is written "
                      "once it can be", path=str(self.path), kind=kind)
            was_healthy, self._failing = self._failing is None, kind
            if was_healthy:
                self._health_changed(False)
        self._retry = self._clock.callLater(self._retry_seconds, self._write)
        self._retry_seconds = min(self._retry_seconds * 2, MAX_RETRY_SECONDS)

    # -- reading

    def history(self, channel: str, count: int, before: float | None = None) -> Deferred[list[Event]]:
        self._write_now()
        found: Deferred[Any] = self._connection.runQuery(
            "SELECT event FROM events WHERE channel = ? AND at < ? ORDER BY id DESC LIMIT ?",
            (name_key(channel), float("inf") if before is None else before, count))
        events: Deferred[list[Event]] = found.addCallback(
            lambda rows: [event for (text,) in reversed(rows)
                          if (event := checked_event(text, self._default_channel)) is not None])
        return events

    # -- accounts

    def accounts(self) -> list[KeptAccount]:
        """Every registered nickname, read at once (before the reactor runs), checked as a nickname typed is."""
        connection = sqlite3.connect(self.path)
        try:
            rows = connection.execute("SELECT key, nick, left_at FROM accounts").fetchall()
        finally:
            connection.close()
        kept = []
        for key, nick, left_at in rows:
            try:
                nick = check_nickname(clean(nick))
            except NicknameError:
                continue
            if name_key(nick) == key:
                kept.append(KeptAccount(nick, None if left_at is None else float(left_at)))
        return kept

    def register(self, nick: str, password: str, at: float) -> Deferred[None]:
        def keep(kept_hash: str) -> Deferred[None]:
            kept: Deferred[None] = self._connection.runInteraction(_register, name_key(nick), nick, kept_hash, at)
            return kept

        return _answer(self._passwords.hash(password).addCallback(keep), "register")

    def check_password(self, nick: str, password: str) -> Deferred[bool]:
        def check(rows: list[tuple[str]]) -> Deferred[bool] | bool:
            return bool(rows) and self._passwords.check(rows[0][0], password)

        found: Deferred[Any] = self._connection.runQuery("SELECT hash FROM accounts WHERE key = ?", (name_key(nick),))
        return _answer(found.addCallback(check), "check a password")

    def change_password(self, nick: str, password: str) -> Deferred[None]:
        def keep(kept_hash: str) -> Deferred[None]:
            kept: Deferred[None] = self._connection.runOperation("UPDATE accounts SET hash = ? WHERE key = ?",
                                                                 (kept_hash, name_key(nick)))
            return kept

        return _answer(self._passwords.hash(password).addCallback(keep), "change a password")

    def unregister(self, nick: str) -> Deferred[None]:
        return _answer(self._connection.runOperation("DELETE FROM accounts WHERE key = ?", (name_key(nick),)),
                       "unregister")

    def left(self, nick: str, at: float) -> None:
        self._connection.runOperation("UPDATE accounts SET left_at = ?, seen_at = ? WHERE key = ?",
                                      (at, at, name_key(nick))).addErrback(
            lambda failure: log.warn("the store could not keep when {nick} left: {why}", nick=nick,
                                     why=_kind_of(failure)))

    def expire_accounts(self, unused_since: float, online: Sequence[str]) -> Deferred[list[str]]:
        return _answer(self._connection.runInteraction(_expire, unused_since, {name_key(nick) for nick in online}),
                       "expire accounts")

    # -- notes and mentions

    def leave_note(self, recipient: str, note: Note) -> Deferred[bool]:
        return _answer(self._connection.runInteraction(_leave_note, name_key(recipient), note), "keep a message")

    def take_notes(self, recipient: str) -> Deferred[list[Note]]:
        return _answer(self._connection.runInteraction(_take_notes, name_key(recipient)), "read messages")

    def mentions(self, nick: str, since: float) -> Deferred[list[Event]]:
        self._write_now()
        return _answer(self._connection.runInteraction(_mentions, nick, since, self._default_channel),
                       "find mentions")

    def mark_read(self, nick: str, channel: str, at: float) -> None:
        self._connection.runOperation(
            "INSERT INTO read_marks (account, channel, at) VALUES (?, ?, ?) ON CONFLICT (account, channel) "
            "DO UPDATE SET at = max(at, excluded.at)", (name_key(nick), name_key(channel), at)).addErrback(
            lambda failure: log.warn("the store could not keep how far {nick} read: {why}", nick=nick,
                                     why=_kind_of(failure)))

    def unread(self, nick: str) -> Deferred[list[tuple[str, int]]]:
        self._write_now()
        return _answer(self._connection.runInteraction(_unread, name_key(nick)), "count unread lines")

    # -- founders' channels

    def kept_channels(self) -> list[ChannelState]:
        """Every founder's channel's modes, read at once (before the reactor runs), checked as Redis's are."""
        connection = sqlite3.connect(self.path)
        try:
            rows = connection.execute("SELECT key, modes FROM channels WHERE modes IS NOT NULL").fetchall()
        finally:
            connection.close()
        kept = []
        for key, text in rows:
            try:
                state = checked_channel_state(channel_state_from_list(json.loads(text)))
            except (TypeError, ValueError):
                state = None
            if state is not None and name_key(state.channel) == key:
                kept.append(state)
        return kept

    def keep_channel(self, state: ChannelState) -> None:
        self._connection.runOperation(
            "INSERT INTO channels (key, name, used_at, modes) VALUES (?, ?, ?, ?) ON CONFLICT (key) "
            "DO UPDATE SET modes = excluded.modes",
            (name_key(state.channel), state.channel, self._clock.seconds(),
             json.dumps(channel_state_to_list(state), ensure_ascii=False))).addErrback(
            lambda failure: log.warn("the store could not keep the modes of {channel}: {why}", channel=state.channel,
                                     why=_kind_of(failure)))

    # -- housekeeping

    def forget_before(self, when: float) -> Deferred[int]:
        """Forget the history older than `when` (unix time); how many events went."""
        self._write_now()
        forgotten: Deferred[int] = self._connection.runInteraction(_forget_before, when)
        return forgotten

    def forget_notes_before(self, when: float) -> Deferred[int]:
        """
        Forget the notes left before `when` and never taken, telling each
        sender who is registered (a note of chatd's); how many went.
        """
        forgotten: Deferred[int] = self._connection.runInteraction(_forget_notes_before, when,
                                                                   self._clock.seconds())
        return forgotten

    def close(self) -> Deferred[None]:
        """Write what waits (unless the store is failing: then it is lost, and logged), then close."""
        pool = self._pool
        if pool is None:
            return succeed(None)
        self._passwords.stop()
        self._write_now()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
            self._retry = None
            if self._pending:
                log.error("the store at {path} could not be written: {count} event(s) were not kept",
                          path=str(self.path), count=len(self._pending))
                self._pending.clear()
        elif self._writing is not None or self._pending:
            if self._writing is None:
                self._write()
            self._closing = Deferred()
            return self._closing.addCallback(lambda _: pool.close())
        pool.close()
        return succeed(None)


def _insert(cursor: Any, batch: list[KeptEvent]) -> None:
    """
    One turn's (or several turns') events, in one transaction (adbapi
    commits it), in the store's thread: encoded there, and each channel's
    row brought up to date once, whatever the number of its lines.
    """
    rows, used, topics = [], {}, {}
    for event in batch:
        key = name_key(event.channel)
        rows.append((key, event.at, KIND_NAMES[type(event)], to_json(event, exact_time=True)))
        used[key] = (key, event.channel, event.at)
        if type(event) is TopicChanged:
            topics[key] = (event.topic, event.nick, event.at, key)
    # Many rows a statement: SQLite runs each statement with the GIL let go,
    # and each time the store's thread wants it back it waits for the
    # reactor's thread (or makes it wait), so a row at a time (executemany)
    # was a handover of the GIL, both ways, per message.
    for start in range(0, len(rows), ROWS_PER_INSERT):
        some = rows[start:start + ROWS_PER_INSERT]
        cursor.execute(_insert_rows(len(some)), list(chain.from_iterable(some)))
    cursor.executemany("INSERT INTO channels (key, name, used_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET name = excluded.name, used_at = excluded.used_at", list(used.values()))
    cursor.executemany("UPDATE channels SET topic = ?, topic_by = ?, topic_at = ? WHERE key = ?",
                       list(topics.values()))


@lru_cache(maxsize=8)
def _insert_rows(count: int) -> str:
    """The statement that inserts `count` events."""
    return "INSERT INTO events (channel, at, kind, event) VALUES " + ", ".join(["(?, ?, ?, ?)"] * count)


def _forget_before(cursor: Any, when: float) -> int:
    cursor.execute("DELETE FROM events WHERE at < ?", (when,))
    forgotten: int = cursor.rowcount
    cursor.execute("DELETE FROM channels WHERE used_at < ? AND topic = '' AND modes IS NULL", (when,))
    return forgotten


def _register(cursor: Any, key: str, nick: str, kept_hash: str, at: float) -> None:
    cursor.execute("INSERT INTO accounts (key, nick, hash, registered_at, seen_at) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (key) DO NOTHING", (key, nick, kept_hash, at, at))
    if cursor.rowcount != 1:
        raise Taken(nick)


def _expire(cursor: Any, unused_since: float, online: set[str]) -> list[str]:
    rows = cursor.execute("SELECT key, nick FROM accounts WHERE seen_at < ?", (unused_since,)).fetchall()
    expired = [(key, nick) for key, nick in rows if key not in online]
    cursor.executemany("DELETE FROM accounts WHERE key = ?", [(key,) for key, _ in expired])
    return [nick for _, nick in expired]


def _leave_note(cursor: Any, recipient: str, note: Note) -> bool:
    waiting = cursor.execute("SELECT count(*) FROM notes WHERE recipient = ?", (recipient,)).fetchone()[0]
    if waiting >= MAX_NOTES:
        return False
    cursor.execute("INSERT INTO notes (recipient, sender, at, text) VALUES (?, ?, ?, ?)",
                   (recipient, note.sender, note.at, note.text))
    return True


def _take_notes(cursor: Any, recipient: str) -> list[Note]:
    rows = cursor.execute("SELECT sender, at, text FROM notes WHERE recipient = ? ORDER BY id",
                          (recipient,)).fetchall()
    cursor.execute("DELETE FROM notes WHERE recipient = ?", (recipient,))
    return [Note(clean(sender), clean(text), float(at)) for sender, at, text in rows]


def _mentions(cursor: Any, nick: str, since: float, default_channel: str) -> list[Event]:
    rows = cursor.execute("SELECT event FROM events WHERE at > ? AND kind IN ('said', 'acted') "
                          "ORDER BY id DESC LIMIT ?", (since, MENTION_SCAN)).fetchall()
    events = [event for (text,) in reversed(rows) if (event := checked_event(text, default_channel)) is not None]
    return mentioning(events, nick)[-MAX_MENTIONS:]


def _unread(cursor: Any, account: str) -> list[tuple[str, int]]:
    rows = cursor.execute(
        "SELECT c.name, (SELECT count(*) FROM events e WHERE e.channel = m.channel AND e.kind IN ('said', 'acted') "
        "AND e.at > m.at) FROM read_marks m JOIN channels c ON c.key = m.channel WHERE m.account = ?",
        (account,)).fetchall()
    counts = []
    for name, count in rows:
        try:
            counts.append((check_channel_name(name), int(count)))
        except ChannelNameError:
            continue
    return [(name, count) for name, count in counts if count]


def _forget_notes_before(cursor: Any, when: float, now: float) -> int:
    expired = cursor.execute("SELECT a.nick, n.sender, n.at, n.text FROM notes n JOIN accounts a ON a.key = n.recipient "
                             "WHERE n.at < ? ORDER BY n.id", (when,)).fetchall()
    cursor.execute("DELETE FROM notes WHERE at < ?", (when,))
    for recipient, sender, at, text in expired:
        if sender != CHATD:  # chatd's own notes tell nobody
            told = undelivered(recipient, Note(sender, text, float(at)), now)
            cursor.execute("INSERT INTO notes (recipient, sender, at, text) SELECT key, ?, ?, ? FROM accounts "
                           "WHERE key = ?", (told.sender, told.at, told.text, name_key(sender)))
    return len(expired)


def _answer(work: Deferred[Any], doing: str) -> Deferred[Any]:
    """`work`, whose failure to read or write the file becomes StoreUnavailable, a line a user may read."""
    def unavailable(failure: Failure) -> None:
        failure.trap(sqlite3.Error)
        log.error("the store could not {doing}: {kind}", doing=doing, kind=_kind_of(failure))
        raise StoreUnavailable(f"the store cannot {doing} now ({_kind_of(failure)}): try again later")

    return work.addErrback(unavailable)


def _checked_channel(name: str, topic: str, topic_by: str, topic_at: float, used_at: float) -> KeptChannel | None:
    try:
        name = check_channel_name(name)
    except ChannelNameError:
        return None
    return KeptChannel(name, clean(topic), clean(topic_by), float(topic_at), float(used_at))


def _kind_of(failure: Failure) -> str:
    """A failed write's kind, for the log: "disk full", "read-only", or SQLite's own words."""
    error = failure.value
    text = str(error).lower()
    if "full" in text:
        return "disk full"
    if "readonly" in text or "read-only" in text:
        return "read-only"
    if isinstance(error, sqlite3.Error):
        return f"{type(error).__name__}: {error}"
    return failure.getErrorMessage()
