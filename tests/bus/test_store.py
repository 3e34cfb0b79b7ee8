"""
The cluster's store (chatd.bus.store) against a real redis-server (the
`redis` fixture): two stores stand for two nodes.  A nickname registers on
exactly one when both try at once, and both learn of it; a note left
through one is taken through the other, once; history, mentions and read
marks are shared; a Redis that refuses writes is told once and loses
nothing; what another program wrote there is checked.
"""

from __future__ import annotations

import subprocess

import pytest
import pytest_twisted
from argon2 import PasswordHasher
from twisted.internet import defer, reactor, task

from chatd.bus.address import RedisAddress
from chatd.bus.store import RedisStore
from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.events import Acted, Said
from chatd.core.server import ChatServer
from chatd.core.store import KeptAccount, Note, Taken
from chatd.store.passwords import Passwords
from tests.bus.test_redis_bus import DEADLINE_SECONDS, Session
from tests.redis_server import REDIS_CLI


def store_on(redis, clock=None):
    store = RedisStore(RedisAddress.parse(redis.url), "test", reactor, Passwords(reactor, PasswordHasher(
        time_cost=1, memory_cost=8, parallelism=1)), "#lobby", clock)
    store.start()
    return store


def cli(redis, *command):
    return subprocess.run([REDIS_CLI, "-p", str(redis.port), *command], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def two(redis):
    stores = [store_on(redis), store_on(redis)]
    yield stores
    for store in stores:
        pytest_twisted.blockon(store.close())


@pytest_twisted.inlineCallbacks
def test_a_nickname_registers_on_exactly_one_node_when_two_try_at_once(two):
    """Both nodes register "alice" in the same turn: one succeeds, the other is Taken; the password is the winner's."""
    first, second = two
    yield defer.gatherResults([first.in_contact(), second.in_contact()])
    results = yield defer.DeferredList([first.register("alice", "first's password", 1.0),
                                        second.register("Alice", "second's password", 1.0)], consumeErrors=True)
    assert sorted(ok for ok, _ in results) == [False, True]
    [lost] = [result for ok, result in results if not ok]
    assert lost.check(Taken)
    winner = "first's password" if results[0][0] else "second's password"
    for store in two:
        assert (yield store.check_password("ALICE", winner)) is True


class Watched:
    """A callback that keeps what it was called with, and fires waiters whose condition that meets."""

    def __init__(self):
        self.calls = []
        self._waiters = []

    def __call__(self, value):
        self.calls.append(value)
        for waiter in list(self._waiters):
            condition, waiting = waiter
            if condition(self.calls):
                self._waiters.remove(waiter)
                waiting.callback(self.calls)

    def wait_for(self, condition, timeout=DEADLINE_SECONDS):
        if condition(self.calls):
            return defer.succeed(self.calls)
        waiting = defer.Deferred()
        self._waiters.append((condition, waiting))
        return waiting.addTimeout(timeout, reactor)


@pytest_twisted.inlineCallbacks
def test_every_node_learns_of_registrations_and_departures(two, redis):
    """A registration through one node reaches the other's core (accounts_changed), and so does its unregistering."""
    first, second = two
    seen = second.accounts_changed = Watched()
    yield defer.gatherResults([first.in_contact(), second.in_contact()])
    yield first.register("alice", "correct horse", 1.0)
    yield seen.wait_for(lambda calls: calls[-1:] == [[KeptAccount("alice", None)]])
    first.left("alice", 5.0)
    yield seen.wait_for(lambda calls: calls[-1] == [KeptAccount("alice", 5.0)])
    yield first.unregister("alice")
    yield seen.wait_for(lambda calls: calls[-1] == [])


@pytest_twisted.inlineCallbacks
def test_a_note_left_on_one_node_is_taken_on_the_other_once(two):
    """leave_note through one node, take_notes through the other: given once, and at most MAX_NOTES wait."""
    first, second = two
    yield defer.gatherResults([first.in_contact(), second.in_contact()])
    assert (yield first.leave_note("bob", Note("alice", "for nobody", 1.0))) is False  # bob is not registered
    yield first.register("bob", "correct horse", 1.0)
    now = reactor.seconds()
    assert (yield first.leave_note("Bob", Note("alice", "the key is\x1b[2J under the mat", now))) is True
    assert (yield second.take_notes("bob")) == [Note("alice", "the key is under the mat", now)]
    assert (yield second.take_notes("bob")) == []


@pytest_twisted.inlineCallbacks
def test_history_mentions_and_read_marks_are_the_clusters(two):
    """Lines recorded by each node are one channel's history on both; mentions and unread counts come from it."""
    first, second = two
    yield defer.gatherResults([first.in_contact(), second.in_contact()])
    yield first.register("bob", "correct horse", 1.0)
    first.record([Said("#Lab", "alice", "bob: lunch?", at=10.0)])
    yield first.history("#lab", 1)  # a read writes what waits first
    second.record([Acted("#lab", "carol", "waves at bob", at=11.0), Said("#lab", "carol", "bobcat", at=12.0)])
    history = yield second.history("#LAB", 10)
    assert [event.text for event in history] == ["bob: lunch?", "waves at bob", "bobcat"]
    assert [event.text for event in (yield first.history("#lab", 10, before=11.0))] == ["bob: lunch?"]
    assert [event.text for event in (yield first.mentions("bob", 10.5))] == ["waves at bob"]
    first.mark_read("bob", "#lab", 10.5)
    first.mark_read("bob", "#lab", 9.0)  # an older mark, from another device, does not move it back
    assert (yield first.unread("bob")) == [("#lab", 2)]  # after the marks: one connection, in order
    assert (yield first.forget_before(11.5)) == 2
    assert [event.text for event in (yield second.history("#lab", 10))] == ["bobcat"]


@pytest_twisted.inlineCallbacks
def test_a_redis_that_refuses_writes_is_told_once_and_loses_nothing(redis):
    """Redis out of memory (maxmemory 1, noeviction): the store is unhealthy once; with room again, all is kept."""
    clock = task.Clock()  # the flushes' and retries' time; Redis answers in the reactor's
    store = store_on(redis, clock)
    health = Watched()
    store.watch(health)
    try:
        yield store.in_contact()
        cli(redis, "CONFIG", "SET", "maxmemory-policy", "noeviction")
        cli(redis, "CONFIG", "SET", "maxmemory", "1")
        store.record([Said("#lab", "alice", "one", at=1.0)])
        clock.advance(0.1)  # the write is tried, and refused
        yield health.wait_for(lambda calls: calls == [False])
        store.record([Said("#lab", "alice", "two", at=2.0)])
        cli(redis, "CONFIG", "SET", "maxmemory", "0")
        clock.advance(0.5)  # the retry
        yield health.wait_for(lambda calls: calls == [False, True])
        assert [event.text for event in (yield store.history("#lab", 10))] == ["one", "two"]
        assert store.errors.counts == {"OOM": 1}
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_what_another_program_wrote_is_checked(redis):
    """An account that is no nickname, garbage in a history list and control bytes are left out or cleaned."""
    store = store_on(redis)
    seen = store.accounts_changed = Watched()
    try:
        cli(redis, "HSET", "chatd:test:accounts", "eve", '{"nick": "e ve", "hash": "x"}', "mallory", "not json",
            "bob", '{"nick": "bob", "hash": "$argon2id$x", "left_at": 3}')
        cli(redis, "INCR", "chatd:test:accounts:version")
        cli(redis, "RPUSH", "chatd:test:history:#lab", "garbage",
            '{"ts": 1, "event": "said", "channel": "#lab", "nick": "eve", "text": "hi\\u001b]0;owned\\u0007"}')
        yield store.in_contact()
        yield seen.wait_for(lambda calls: calls)
        assert seen.calls[-1] == [KeptAccount("bob", 3.0)]
        assert [(event.nick, event.text) for event in (yield store.history("#lab", 10))] == [("eve", "hi")]
    finally:
        yield store.close()


@pytest_twisted.inlineCallbacks
def test_a_user_holding_a_nickname_registered_elsewhere_meanwhile_becomes_a_guest(redis):
    """Node 2 learns that alice was registered on node 1 while its own unidentified alice was online: alice_1 now."""
    first, second = store_on(redis), store_on(redis)
    server = ChatServer("lab", reactor, store=second)
    second.accounts_changed = server.accounts_changed
    alice = Session("alice")
    try:
        yield defer.gatherResults([first.in_contact(), second.in_contact()])
        server.arrive(alice)
        server.handle(alice, c.LogIn("alice"))
        yield first.register("alice", "correct horse", 1.0)
        yield alice.wait_for_item(r.GuestNickname("alice", "alice_1"))
        assert server.nick_of(alice) == "alice_1"
    finally:
        yield first.close()
        yield second.close()


@pytest_twisted.inlineCallbacks
def test_a_note_nobody_took_in_time_is_forgotten_and_its_registered_sender_told(two):
    """forget_notes_before, in the cluster: the old notes go; a registered sender gets chatd's note saying so."""
    first, second = two
    yield defer.gatherResults([first.in_contact(), second.in_contact()])
    for nick in ("bob", "alice"):
        yield first.register(nick, "correct horse", 1.0)
    now = reactor.seconds()
    yield first.leave_note("bob", Note("alice", "lunch?", now - 100))
    yield first.leave_note("bob", Note("stranger", "hello", now - 90))
    yield first.leave_note("bob", Note("alice", "still there?", now))
    assert (yield second.forget_notes_before(now - 50)) == 2
    assert [note.text for note in (yield first.take_notes("bob"))] == ["still there?"]
    [told] = yield first.take_notes("alice")
    assert told.sender == "chatd" and told.text.startswith("your message to bob of ")
