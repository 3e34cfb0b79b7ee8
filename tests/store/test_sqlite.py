"""
chatd.store.sqlite against real SQLite files in the test's directory, its
writes and reads in adbapi's thread as in chatd (the real reactor): what is
kept comes back after the store is closed and opened again, bad files are
one line each, and a write that fails waits and goes through later.
"""

import sqlite3

import pytest
import pytest_twisted
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.task import Clock

from argon2 import PasswordHasher

from chatd.core.events import Acted, Joined, Said, TopicChanged, Whispered, to_json
from chatd.core.store import MAX_NOTES, NOTE_DAYS, KeptAccount, Note, Taken
from chatd.store.passwords import Passwords
from chatd.store.sqlite import (APPLICATION_ID, MIGRATIONS, RETRY_SECONDS, ROWS_PER_INSERT, SCHEMA_VERSION, SQLiteStore,
                                StoreError, check, kept_at_start)


def store_at(path):
    store = SQLiteStore(path, reactor, "#lobby")
    store.start()
    return store


@pytest_twisted.inlineCallbacks
def test_a_channels_messages_actions_and_topic_come_back_after_a_restart(tmp_path):
    """
    Said, Acted and TopicChanged are kept, in order, per channel, a
    message with its msgid and tags; joins and private messages are not.
    """
    path = tmp_path / "chatd.sqlite3"
    store = store_at(path)
    store.record([Said("#lobby", "alice", "hi", at=100.0), Joined("#lobby", "bob", 2, at=101.0),
                  Whispered("alice", "bob", "secret", at=102.0)])
    store.record([Acted("#Lab", "bob", "waves", at=103.0), TopicChanged("#lab", "bob", "robots", at=104.0)])
    store.record([Said("#lobby", "bob", "hello", at=105.0, msgid="ab12-3", tags="account=bob;+draft/reply=x")])
    yield store.close()

    again = store_at(path)
    try:
        assert (yield again.history("#lobby", 10)) == [Said("#lobby", "alice", "hi", at=100.0),
                                                       Said("#lobby", "bob", "hello", at=105.0)]
        assert (yield again.history("#LAB", 10)) == [Acted("#Lab", "bob", "waves", at=103.0),
                                                     TopicChanged("#lab", "bob", "robots", at=104.0)]
        [latest] = yield again.history("#lobby", 1)
        assert latest == Said("#lobby", "bob", "hello", at=105.0)
        assert (latest.msgid, latest.tags) == ("ab12-3", "account=bob;+draft/reply=x")
        assert (yield again.history("#lobby", 10, before=105.0)) == [Said("#lobby", "alice", "hi", at=100.0)]
    finally:
        yield again.close()
    # What the chat gets at its next start: each channel's topic, then its last lines; the last used last.
    assert kept_at_start(path, 1, 10, "#lobby") == {
        "#lab": [TopicChanged("#lab", "bob", "robots", at=104.0), Acted("#Lab", "bob", "waves", at=103.0)],
        "#lobby": [Said("#lobby", "bob", "hello", at=105.0)]}
    assert list(kept_at_start(path, 1, 1, "#lobby")) == ["#lobby"]  # at most max_channels, the most recent


@pytest_twisted.inlineCallbacks
def test_a_write_of_more_events_than_one_insert_takes_keeps_them_all_in_order(tmp_path):
    """A write bigger than ROWS_PER_INSERT (one turn of a busy chat) is kept whole, in the order said."""
    path = tmp_path / "chatd.sqlite3"
    store = store_at(path)
    said = [Said("#lobby" if number % 3 else "#lab", f"u{number % 7}", f"line {number}", at=100.0 + number)
            for number in range(2 * ROWS_PER_INSERT + 1)]
    store.record(said)
    yield store.close()
    again = store_at(path)
    try:
        assert (yield again.history("#lobby", len(said))) == [event for event in said if event.channel == "#lobby"]
        assert (yield again.history("#lab", len(said))) == [event for event in said if event.channel == "#lab"]
    finally:
        yield again.close()


@pytest_twisted.inlineCallbacks
def test_old_history_is_forgotten(tmp_path):
    """forget_before (--history-days) removes what happened before the time given, and says how much."""
    store = store_at(tmp_path / "chatd.sqlite3")
    try:
        store.record([Said("#lobby", "alice", "old", at=10.0), Said("#lobby", "alice", "new", at=20.0)])
        yield store.history("#lobby", 1)  # the write before is done by then: one writer, in order
        assert (yield store.forget_before(15.0)) == 1
        assert (yield store.history("#lobby", 10)) == [Said("#lobby", "alice", "new", at=20.0)]
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_what_comes_back_from_disk_is_checked(tmp_path):
    """Control bytes written into the file by someone else are cleaned; a row that is no channel's is left out."""
    path = tmp_path / "chatd.sqlite3"
    check(path)
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO events (channel, at, kind, event) VALUES ('#lobby', 1, 'said', ?)",
                           ('{"ts": 1, "event": "said", "channel": "#lobby", "nick": "eve\\u001b[2J", '
                            '"text": "hi\\u0007\\u001b]0;owned\\u0007"}',))
        connection.execute("INSERT INTO events (channel, at, kind, event) VALUES ('#lobby', 2, 'said', ?)",
                           ('{"ts": 2, "event": "said", "channel": "not a channel", "nick": "eve", "text": "x"}',))
        connection.execute("INSERT INTO events (channel, at, kind, event) VALUES ('#lobby', 3, 'said', 'garbage')")
        connection.execute("INSERT INTO channels (key, name, topic, used_at) VALUES ('#x', '#x', 'a\u001b[31mb', 1)")
        connection.execute("INSERT INTO channels (key, name, used_at) VALUES ('y z', 'y z', 2)")
        connection.execute("INSERT INTO channels (key, name, used_at) VALUES ('#lobby', '#lobby', 3)")
    assert kept_at_start(path, 10, 10, "#lobby") == {"#x": [TopicChanged("#x", "", "ab", at=0.0)],
                                                     "#lobby": [Said("#lobby", "eve", "hi", at=1.0)]}
    store = store_at(path)
    try:
        assert (yield store.history("#lobby", 10)) == [Said("#lobby", "eve", "hi", at=1.0)]
    finally:
        yield store.close()


def test_a_new_store_is_chatds_in_wal_mode_with_the_current_schema(tmp_path):
    """check makes the file: chatd's mark, the schema version, the write-ahead log."""
    path = tmp_path / "chatd.sqlite3"
    check(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    check(path)  # and opens it again as it is


def test_a_file_that_is_not_chatds_store_is_one_line_naming_it(tmp_path):
    """Garbage, another program's database and a newer chatd's store are refused, and left as they were."""
    garbage = tmp_path / "garbage.sqlite3"
    garbage.write_bytes(b"not a database at all, " * 100)
    foreign = tmp_path / "foreign.sqlite3"
    with sqlite3.connect(foreign) as connection:
        connection.execute("CREATE TABLE recipes (name TEXT)")
    newer = tmp_path / "newer.sqlite3"
    check(newer)
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    for path, said in ((garbage, "not a SQLite database, or damaged"),
                       (foreign, "another program's database, not chatd's store"),
                       (newer, f"made by a newer chatd (schema {SCHEMA_VERSION + 1}")):
        before = path.read_bytes()
        with pytest.raises(StoreError) as refused:
            check(path)
        assert str(refused.value).startswith(f"{path}: {said}") and "\n" not in str(refused.value)
        assert path.read_bytes() == before


@pytest_twisted.inlineCallbacks
def test_a_write_that_fails_waits_and_goes_through_once_it_can(tmp_path, log_lines):
    """
    The store full (SQLite's max_page_count, which fails a write as a full
    disk does, SQLITE_FULL): the write fails and is logged once, by kind;
    the events wait and more join them; once there is room again they are
    all kept, in order.
    """
    pools = []

    def pool(*args, **options):
        pools.append(adbapi.ConnectionPool(*args, **options))
        return pools[-1]

    clock = Clock()  # the retries' time; the store's thread is the reactor's
    store = SQLiteStore(tmp_path / "chatd.sqlite3", reactor, "#lobby", clock=clock, pool=pool)
    store.start()
    try:
        store.record([Said("#lobby", "alice", "one", at=1.0)])
        # A read writes what waits first; each query runs after the writes before it, in the store's one
        # thread, and answers after their results.
        assert [event.text for event in (yield store.history("#lobby", 10))] == ["one"]
        [[pages]] = yield pools[0].runQuery("PRAGMA page_count")
        yield pools[0].runOperation(f"PRAGMA max_page_count = {pages}")
        store.record([Said("#lobby", "alice", "two " + "x" * 20_000, at=2.0)])
        store.record([Said("#lobby", "alice", "three", at=3.0)])
        assert [event.text for event in (yield store.history("#lobby", 10))] == ["one"]  # the rest wait
        assert not store.healthy
        yield pools[0].runOperation("PRAGMA max_page_count = 1073741823")
        clock.advance(RETRY_SECONDS)
        assert [event.text[:5] for event in (yield store.history("#lobby", 10))] == ["one", "two x", "three"]
        assert store.healthy
        assert [line for line in log_lines if "cannot be written" in line] == [
            f"the store at {tmp_path / 'chatd.sqlite3'} cannot be written (disk full); what was said waits, and is "
            "written once it can be"]
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_closing_does_not_wait_for_a_store_that_cannot_be_written(tmp_path, log_lines):
    """chatd stopping with the store full: close() ends at once, saying how many events were not kept."""
    pools = []

    def pool(*args, **options):
        pools.append(adbapi.ConnectionPool(*args, **options))
        return pools[-1]

    store = SQLiteStore(tmp_path / "chatd.sqlite3", reactor, "#lobby", clock=Clock(), pool=pool)
    store.start()
    store.record([Said("#lobby", "alice", "one", at=1.0)])
    yield store.history("#lobby", 1)
    [[pages]] = yield pools[0].runQuery("PRAGMA page_count")
    yield pools[0].runOperation(f"PRAGMA max_page_count = {pages}")
    store.record([Said("#lobby", "alice", "two " + "x" * 20_000, at=2.0)])
    yield store.close()  # returns, though the write failed
    assert log_lines[-1].endswith("could not be written (disk full): 1 event(s) were not kept")


def cheap_store_at(path):
    """A store whose passwords are hashed with argon2's cheapest parameters: the tests check keeping, not strength."""
    store = SQLiteStore(path, reactor, "#lobby", passwords=Passwords(reactor, PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1)))
    store.start()
    return store


@pytest_twisted.inlineCallbacks
def test_an_account_is_kept_with_its_password_hash_and_no_password(tmp_path):
    """register keeps the nickname and an argon2id hash (never the password); check, change and unregister use it."""
    path = tmp_path / "chatd.sqlite3"
    store = cheap_store_at(path)
    try:
        yield store.register("Alice", "correct horse", 100.0)
        with pytest.raises(Taken):
            yield store.register("ALICE", "another one", 101.0)
        assert (yield store.check_password("alice", "correct horse")) is True
        assert (yield store.check_password("alice", "wrong horse")) is False
        assert (yield store.check_password("nobody", "correct horse")) is False
        yield store.change_password("alice", "battery staple")
        assert (yield store.check_password("alice", "battery staple")) is True
        store.left("alice", 200.0)
        [[kept_hash]] = yield store._connection.runQuery("SELECT hash FROM accounts")
        assert kept_hash.startswith("$argon2id$") and "battery" not in kept_hash
    finally:
        yield store.close()
    assert b"battery staple" not in path.read_bytes()
    again = cheap_store_at(path)
    try:
        assert again.accounts() == [KeptAccount("Alice", 200.0)]
        yield again.unregister("alice")
        assert again.accounts() == []
    finally:
        yield again.close()


@pytest_twisted.inlineCallbacks
def test_notes_are_kept_up_to_the_limit_and_taken_once(tmp_path):
    """At most MAX_NOTES notes wait for one account; take_notes gives them, oldest first, once; unregister drops them."""
    store = cheap_store_at(tmp_path / "chatd.sqlite3")
    try:
        yield store.register("bob", "correct horse", 1.0)
        for number in range(MAX_NOTES):
            assert (yield store.leave_note("Bob", Note("alice", f"note {number}", float(number)))) is True
        assert (yield store.leave_note("bob", Note("alice", "one too many", 500.0))) is False
        taken = yield store.take_notes("BOB")
        assert [note.text for note in taken] == [f"note {number}" for number in range(MAX_NOTES)]
        assert (yield store.take_notes("bob")) == []
        yield store.leave_note("bob", Note("alice", "old\x1b[2J", 5.0))
        assert (yield store.forget_notes_before(4.0)) == 0
        assert (yield store.take_notes("bob")) == [Note("alice", "old", 5.0)]  # cleaned, as a line typed is
        yield store.leave_note("bob", Note("alice", "for nobody", 6.0))
        yield store.unregister("bob")
        yield store.register("bob", "correct horse", 7.0)
        assert (yield store.take_notes("bob")) == []
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_mentions_are_found_in_the_history_since_a_time(tmp_path):
    """mentions: the kept messages since a time that name the nickname as a word, said by others."""
    store = cheap_store_at(tmp_path / "chatd.sqlite3")
    try:
        store.record([Said("#lab", "alice", "bob: hi", at=1.0), Said("#lab", "alice", "BOB, later", at=3.0),
                      Acted("#lobby", "carol", "waves at bob", at=4.0), Said("#lab", "bob", "I am bob", at=5.0),
                      Said("#lab", "alice", "bobby is not him", at=6.0)])
        found = yield store.mentions("bob", 2.0)
        assert found == [Said("#lab", "alice", "BOB, later", at=3.0), Acted("#lobby", "carol", "waves at bob", at=4.0)]
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_accounts_unused_for_long_expire_but_not_those_online(tmp_path):
    """expire_accounts forgets the accounts not seen since the time given, except those online; it names them."""
    store = cheap_store_at(tmp_path / "chatd.sqlite3")
    try:
        for nick, at in (("old", 1.0), ("online", 1.0), ("recent", 50.0)):
            yield store.register(nick, "correct horse", at)
        assert (yield store.expire_accounts(10.0, ["Online"])) == ["old"]
        assert sorted(account.nick for account in store.accounts()) == ["online", "recent"]
    finally:
        yield store.close()


def test_a_store_of_the_first_schema_is_migrated_keeping_its_history(tmp_path):
    """A file made by the first release (schema 1) gains the accounts and notes tables, and keeps what it had."""
    path = tmp_path / "chatd.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.executescript(f"{MIGRATIONS[0]}; PRAGMA user_version = 1; PRAGMA application_id = {APPLICATION_ID};")
        connection.execute("INSERT INTO events (channel, at, kind, event) VALUES ('#lobby', 1, 'said', ?)",
                           (to_json(Said("#lobby", "alice", "from before", at=1.0), exact_time=True),))
    connection.close()
    check(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert connection.execute("SELECT count(*) FROM accounts").fetchone()[0] == 0
    connection.close()
    assert kept_at_start(path, 10, 10, "#lobby") == {}  # no channels row in the old file: history stays in events


@pytest_twisted.inlineCallbacks
def test_unread_counts_are_the_messages_since_each_channels_read_mark(tmp_path):
    """mark_read keeps the latest mark per account and channel; unread counts the messages said after it."""
    store = cheap_store_at(tmp_path / "chatd.sqlite3")
    try:
        yield store.register("bob", "correct horse", 1.0)
        store.record([Said("#Lab", "alice", "one", at=10.0), Said("#lab", "alice", "two", at=20.0),
                      Acted("#lab", "alice", "waves", at=30.0), Said("#lobby", "alice", "x", at=5.0)])
        store.mark_read("bob", "#lab", 15.0)
        store.mark_read("bob", "#lab", 12.0)  # an older mark (another device) does not move it back
        store.mark_read("bob", "#lobby", 50.0)
        assert (yield store.unread("BOB")) == [("#lab", 2)]
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_a_note_nobody_took_in_time_is_forgotten_and_its_registered_sender_told(tmp_path):
    """forget_notes_before: the old notes go; a sender who is registered gets chatd's note saying so, others nothing."""
    store = cheap_store_at(tmp_path / "chatd.sqlite3")
    try:
        for nick in ("bob", "alice"):
            yield store.register(nick, "correct horse", 1.0)
        yield store.leave_note("bob", Note("alice", "lunch?", 10.0))
        yield store.leave_note("bob", Note("stranger", "hello", 11.0))
        yield store.leave_note("bob", Note("alice", "still there?", 100.0))
        assert (yield store.forget_notes_before(50.0)) == 2
        assert [note.text for note in (yield store.take_notes("bob"))] == ["still there?"]
        [told] = yield store.take_notes("alice")
        assert told.sender == "chatd"
        assert told.text.startswith("your message to bob of ") and told.text.endswith(
            f"was not delivered: they did not log in within {NOTE_DAYS} days")
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_a_founders_channel_keeps_its_modes_across_a_restart(tmp_path):
    """keep_channel writes a channel's modes; a store opened again reads them back, checked (bad rows left out)."""
    from chatd.core.modes import ChannelState

    path = tmp_path / "chatd.sqlite3"
    kept = ChannelState("#Lab", "int", "solder", 12, (("b", "*!*@10.0.0.7", "alice", 5.0),), "alice", 1.0, 2.0)
    store = cheap_store_at(path)
    try:
        store.keep_channel(kept)
        store.keep_channel(ChannelState("#lab", "int", "solder", 12, kept.masks, "alice", 1.0, 3.0))  # the latest wins
        yield store.history("#lab", 1)  # after what was written before it, in the store's one connection
    finally:
        yield store.close()
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO channels (key, name, used_at, modes) VALUES ('#bad', '#bad', 1, 'nonsense')")
    connection.close()
    again = cheap_store_at(path)
    try:
        assert again.kept_channels() == [ChannelState("#lab", "int", "solder", 12, kept.masks, "alice", 1.0, 3.0)]
    finally:
        yield again.close()
