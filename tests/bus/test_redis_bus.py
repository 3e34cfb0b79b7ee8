"""
The Redis bus against a real redis-server (the `redis` fixture): nodes in
this process, each a ChatServer with its own RedisBus, and recording
sessions as their users.  Waiting is on the sessions' own deliveries
(`Session.wait_for`) and on the bus's own log line of contact (`in_contact`), each with a
deadline.
"""

from __future__ import annotations

import time

import pytest
import pytest_twisted
from prometheus_client import generate_latest
from twisted.internet import defer, reactor, task
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface import implementer

from chatd.bus.address import RedisAddress
from chatd.bus.redis import HEARTBEAT_SECONDS, NODE_TTL_SECONDS, Contact, RedisBus
from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.events import Joined, Left, Said
from chatd.core.server import ChatServer
from chatd.core.session import ISession
from chatd.core.turn import Turn
from chatd.net.flow import FlowCounts
from chatd.service.metrics import chat_metrics

DEADLINE_SECONDS = 10


@implementer(ISession)
class Session:
    """A user: records what reaches it, and fires waiters whose condition what reached it meets."""

    username = realname = ""
    dialect = "fake"
    lists_members = True
    quiet_lobby = False
    hears_tags = False
    hears_watched = False

    def __init__(self, name, address="127.0.0.1"):
        self.name, self.address = name, address
        self.got: list[object] = []  # events and replies, in the order they came
        self._waiters: list[tuple[object, defer.Deferred]] = []

    def deliver(self, share):
        self._add(share.events)

    def send(self, replies):
        self._add(list(replies))

    def disconnect(self, reason):
        self._add([("disconnected", reason)])

    def _add(self, items):
        self.got.extend(items)
        for waiter in list(self._waiters):
            condition, waiting = waiter
            if condition(self.got):
                self._waiters.remove(waiter)
                waiting.callback(self.got)

    def wait_for(self, condition, timeout=DEADLINE_SECONDS):
        """A Deferred that fires when what reached this session meets `condition` (a test of the list)."""
        if condition(self.got):
            return defer.succeed(self.got)
        waiting = defer.Deferred()
        self._waiters.append((condition, waiting))
        return waiting.addTimeout(timeout, reactor)

    def wait_for_item(self, item, timeout=DEADLINE_SECONDS):
        return self.wait_for(lambda got: item in got, timeout)


class Node:
    """One chatd node of the cluster, without its front doors."""

    def __init__(self, url, name, cluster="test"):
        self.server = ChatServer("lab", reactor, history_size=20, turn=Turn(reactor))
        self.bus = RedisBus(RedisAddress.parse(url), cluster, self.server, reactor, node=name)
        self.server.bus, self.server.node = self.bus, name
        self.bus.start()

    def log_in(self, nick, address="127.0.0.1"):
        session = Session(nick, address)
        self.server.arrive(session)
        self.server.handle(session, c.LogIn(nick))
        return session

    def handle(self, session, command):
        self.server.handle(session, command)

    def leave(self):
        return self.bus.leave()

    def crash(self):
        """As kill -9 would: no word to anyone, the connections just close."""
        self.bus.contact = Contact.STOPPED
        if self.bus._heartbeat.running:
            self.bus._heartbeat.stop()
        return defer.gatherResults([self.bus._commands.disconnect(), self.bus._reader_link.disconnect()])


@pytest.fixture
def nodes(redis):
    started = []

    def make(name, **settings):
        node = Node(redis.url, name, **settings)
        started.append(node)
        return node

    yield make
    for node in started:
        if node.bus.contact is not Contact.STOPPED:
            pytest_twisted.blockon(node.leave())


def in_contact(bus):
    """
    A Deferred that fires once `bus` is in contact with its cluster: at once
    if it is, else after its log line saying so (joined, or back in contact).
    """
    if bus.contact is Contact.IN_CONTACT:
        return defer.succeed(None)
    seen = defer.Deferred()

    def observe(event):
        said = event.get("log_format", "")
        if event.get("node") == bus.node and said.startswith(("cluster: joined", "cluster: back in contact")):
            globalLogPublisher.removeObserver(observe)
            reactor.callLater(0, seen.callback, None)  # once the bus has done what follows its line

    globalLogPublisher.addObserver(observe)
    return seen.addTimeout(DEADLINE_SECONDS, reactor)


def joined(nick):
    return lambda got: any(isinstance(item, Joined) and item.nick == nick for item in got)


@defer.inlineCallbacks
def alice_and_bob(nodes):
    """Nodes a and b in contact, alice on a and bob on b, each knowing of the other."""
    a, b = nodes("a"), nodes("b")
    yield defer.gatherResults([in_contact(a.bus), in_contact(b.bus)])
    alice, bob = a.log_in("alice"), b.log_in("bob")
    yield defer.gatherResults([alice.wait_for(joined("bob")), bob.wait_for(joined("alice"))])
    return a, b, alice, bob


def logged(text, timeout=DEADLINE_SECONDS):
    """A Deferred that fires when chatd logs a line containing `text`."""
    seen = defer.Deferred()

    def observe(event):
        if event.get("log_namespace", "").startswith("chatd") and text in formatEvent(event) and not seen.called:
            globalLogPublisher.removeObserver(observe)
            seen.callback(None)

    globalLogPublisher.addObserver(observe)
    return seen.addTimeout(timeout, reactor)


def said(nick, text):
    return lambda got: any(isinstance(item, Said) and item.nick == nick and item.text == text for item in got)


@pytest_twisted.inlineCallbacks
def test_two_nodes_share_a_channel_and_private_messages(nodes):
    """
    alice on one node reaches bob on another, in public and in private, and a node skips its own events coming
    back.
    """
    a, b, alice, bob = yield alice_and_bob(nodes)
    a.handle(alice, c.Say("hi bob"))
    a.handle(alice, c.Msg("bob", "psst"))
    yield bob.wait_for(said("alice", "hi bob"))
    yield bob.wait_for_item(r.PrivateReceived("alice", "psst"))
    assert sorted(b.server.nicks()) == ["alice", "bob"]
    assert [item for item in alice.got if isinstance(item, Said)] == [], "a node skips its own events coming back"
    assert a.bus.published >= 3 and b.bus.received >= 3


@pytest_twisted.inlineCallbacks
def test_a_node_that_joins_later_knows_who_is_where_and_what_was_said(nodes):
    """A node starting later takes the others' users, channels, topics and history, and holds their nicknames."""
    a = nodes("a")
    yield in_contact(a.bus)
    alice = a.log_in("alice")
    a.handle(alice, c.Join("#lab"))
    a.handle(alice, c.Topic("#lab", "soldering"))
    a.handle(alice, c.Say("first!"))
    yield task.deferLater(reactor, HEARTBEAT_SECONDS * 1.5, lambda: None)  # a's state, written by its heartbeat
    b = nodes("b")
    yield in_contact(b.bus)
    lab = b.server.channel("#lab")
    assert lab.nicks == ("alice",) and lab.topic == "soldering"
    bob = b.log_in("bob")
    b.handle(bob, c.Join("#lab"))
    [joined] = [item for item in bob.got if isinstance(item, r.ChannelJoined)]
    assert joined == r.ChannelJoined("#lab", 2, "soldering", (
        Said("#lab", "alice", "first!", at=pytest.approx(time.time(), abs=5), origin="a"),), ("bob", "@alice"), "alice",
        pytest.approx(time.time(), abs=5))
    other = b.log_in("Alice")
    assert other.got[-1] == r.Error("nickname is taken: Alice", "nickname-taken", "Alice")


@pytest_twisted.inlineCallbacks
def test_a_crashed_node_s_users_leave_once_its_presence_expires(nodes):
    """
    A node that vanishes without a word: its users leave the others with 'Server lost' within the TTL and a
    heartbeat, and their nicknames are free.
    """
    a, b, alice, bob = yield alice_and_bob(nodes)
    yield a.crash()
    crashed = time.monotonic()
    yield bob.wait_for_item(Left("alice", "Server lost", at=pytest.approx(time.time(), abs=10), origin="a"))
    # three heartbeats, the moment until the next look, and this machine's own delays
    assert time.monotonic() - crashed <= NODE_TTL_SECONDS + HEARTBEAT_SECONDS + 1.5
    assert b.server.online("alice") is None
    # and the nickname is free
    again = b.log_in("alice")
    assert isinstance(again.got[0], r.LoggedIn) and again.got[0].nick == "alice"


@pytest_twisted.inlineCallbacks
def test_nothing_is_lost_while_redis_stops_answering(nodes, redis):
    """SIGSTOP of redis-server: both nodes tell their users, keep serving them, and afterwards deliver everything, in order."""
    a, b, alice, bob = yield alice_and_bob(nodes)
    redis.pause()
    try:
        yield alice.wait_for_item(r.ContactLost(), timeout=5)
        yield bob.wait_for_item(r.ContactLost(), timeout=5)
        for number in range(20):
            a.handle(alice, c.Say(f"a{number}"))
            b.handle(bob, c.Say(f"b{number}"))
    finally:
        redis.resume()
    yield alice.wait_for_item(r.ContactRestored(), timeout=10)
    yield bob.wait_for(said("alice", "a19"))
    yield alice.wait_for(said("bob", "b19"))
    assert [item.text for item in bob.got if isinstance(item, Said)] == [f"a{n}" for n in range(20)]
    assert [item.text for item in alice.got if isinstance(item, Said)] == [f"b{n}" for n in range(20)]
    assert alice.got.count(r.ContactLost()) == 1
    assert not any(isinstance(item, Left) for item in alice.got + bob.got), "nobody was taken for gone"


def pause(seconds):
    return task.deferLater(reactor, seconds, lambda: None)


@defer.inlineCallbacks
def talk_through(a, b, alice, bob, lines=12, every=0.25):
    """alice (on a) and bob (on b) each say `lines` lines, one every `every` seconds: a0 ..., b0 ..."""
    for number in range(lines):
        a.handle(alice, c.Say(f"a{number}"))
        b.handle(bob, c.Say(f"b{number}"))
        yield pause(every)


@defer.inlineCallbacks
def everything_arrived_once_in_order(alice, bob, lines=12):
    """Each has the other's lines exactly once and in order (within the deadline)."""
    yield bob.wait_for(said("alice", f"a{lines - 1}"))
    yield alice.wait_for(said("bob", f"b{lines - 1}"))
    assert [item.text for item in bob.got if isinstance(item, Said) and item.nick == "alice"] == [
        f"a{n}" for n in range(lines)]
    assert [item.text for item in alice.got if isinstance(item, Said) and item.nick == "bob"] == [
        f"b{n}" for n in range(lines)]


def told(log_lines, *parts):
    return [line for line in log_lines if all(part in line for part in parts)]


@pytest_twisted.inlineCallbacks
def test_a_full_redis_keeps_what_users_said_and_it_arrives_once_in_order(nodes, redis, log_lines):
    """
    Redis at maxmemory with noeviction answers every XADD with -OOM for 3 s
    while users on two nodes talk: each node logs it once, counts it, tells
    its users once each way, and afterwards every line arrives, once, in order.
    """
    a, b, alice, bob = yield alice_and_bob(nodes)
    redis.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    redis.command("CONFIG", "SET", "maxmemory", "1")
    try:
        yield talk_through(a, b, alice, bob)
        assert a.bus.held > 0 and not a.bus.in_contact, "refused entries are kept, and contact is not claimed"
    finally:
        redis.command("CONFIG", "SET", "maxmemory", "0")
    yield everything_arrived_once_in_order(alice, bob)
    yield alice.wait_for_item(r.ContactRestored())
    yield bob.wait_for_item(r.ContactRestored())
    for user in (alice, bob):
        assert user.got.count(r.ContactLost()) == 1 and user.got.count(r.ContactRestored()) == 1
    assert len(told(log_lines, "answered XADD with -OOM command not allowed")) == 2, "once per node"
    assert len(told(log_lines, "answers XADD again")) == 2
    assert a.bus.errors.counts["OOM"] >= 1 and a.bus.held == 0 and a.bus.dropped == 0
    registry = chat_metrics(a.server, {}, FlowCounts(), a.bus)
    assert b'chatd_bus_errors_total{kind="OOM"}' in generate_latest(registry)


@pytest_twisted.inlineCallbacks
def test_the_stream_s_key_replaced_then_removed_loses_nothing(nodes, redis, log_lines):
    """
    The stream's key holds a string for 3 s (-WRONGTYPE to XADD and to
    XREAD), then is deleted: both nodes write and read on, and every line
    said meanwhile arrives once, in order.
    """
    a, b, alice, bob = yield alice_and_bob(nodes)
    redis.command("DEL", "chatd:test:events")
    redis.command("SET", "chatd:test:events", "not a stream")
    try:
        yield talk_through(a, b, alice, bob)
    finally:
        redis.command("DEL", "chatd:test:events")
    yield everything_arrived_once_in_order(alice, bob)
    assert len(told(log_lines, "answered XADD with -WRONGTYPE")) == 2
    assert len(told(log_lines, "answered XREAD with -WRONGTYPE")) == 2
    assert len(told(log_lines, "answers XREAD again; reading on from where it stopped")) == 2
    assert a.bus.errors.counts["WRONGTYPE"] >= 2 and b.bus.in_contact


@pytest_twisted.inlineCallbacks
def test_a_read_answered_with_an_error_is_read_again_from_where_it_stopped(nodes, redis, log_lines):
    """
    XREAD refused (-NOPERM: the permission taken from the user for 2 s):
    the readers log it once, tell their users, and read again from where
    they stopped, so nothing written meanwhile is skipped.
    """
    a, b, alice, bob = yield alice_and_bob(nodes)
    redis.command("ACL", "SETUSER", "default", "-xread")
    try:
        yield talk_through(a, b, alice, bob, lines=8)
        assert not b.bus.in_contact and b.bus.faults == {"reads"}
    finally:
        redis.command("ACL", "SETUSER", "default", "+xread")
    yield everything_arrived_once_in_order(alice, bob, lines=8)
    yield bob.wait_for_item(r.ContactRestored())
    assert bob.got.count(r.ContactLost()) == 1
    assert len(told(log_lines, "answered XREAD with -NOPERM")) == 2
    assert b.bus.errors.counts["NOPERM"] >= 1


@pytest_twisted.inlineCallbacks
def test_a_redis_restart_without_its_data_is_noticed_and_the_nodes_register_again(nodes, redis):
    """Redis restarted empty: both nodes come back, write their states again and know each other's users."""
    a, b, alice, bob = yield alice_and_bob(nodes)
    redis.kill()
    redis.start()
    yield alice.wait_for_item(r.ContactRestored(), timeout=10)
    yield bob.wait_for_item(r.ContactRestored(), timeout=10)
    a.handle(alice, c.Say("still one chat?"))
    yield bob.wait_for(said("alice", "still one chat?"))
    yield task.deferLater(reactor, HEARTBEAT_SECONDS * 2, lambda: None)
    assert b"alice" in redis.command("HGET", "chatd:test:node:a", "state")
    assert sorted(a.server.nicks()) == ["alice", "bob"], (a.server.nicks(), b.server.nicks(), bob.got, alice.got)
    assert sorted(b.server.nicks()) == ["alice", "bob"], (a.server.nicks(), b.server.nicks(), bob.got, alice.got)


@pytest_twisted.inlineCallbacks
def test_a_node_started_while_redis_is_down_serves_its_users_and_joins_later(nodes, redis):
    """A node started without Redis serves its own users, says so, and joins the cluster once Redis answers."""
    redis.kill()
    a = nodes("a")
    alice = a.log_in("alice")
    bob = a.log_in("bob")
    a.handle(alice, c.Say("alone for now"))
    yield bob.wait_for(said("alice", "alone for now"))
    yield logged("does not answer yet; this node serves its own users meanwhile")
    redis.start()
    b = nodes("b")
    yield defer.gatherResults([in_contact(a.bus), in_contact(b.bus)])
    carol = b.log_in("carol")
    a.handle(alice, c.Say("now together"))
    yield carol.wait_for(said("alice", "now together"))
    assert sorted(b.server.nicks()) == ["alice", "bob", "carol"]


@pytest_twisted.inlineCallbacks
def test_a_wrong_password_is_one_clear_log_line(redis, log_lines):
    """A password Redis refuses is one log line naming the refusal, and the password is never logged."""
    redis.command("CONFIG", "SET", "requirepass", "right")
    server = ChatServer("lab", reactor)
    address = RedisAddress.parse(f"redis://:wrong@127.0.0.1:{redis.port}/0")
    bus = RedisBus(address, "test", server, reactor, node="a")
    bus.start()
    try:
        yield logged("refused this node")
        assert [line for line in log_lines if "refused" in line] == [
            f"cluster: Redis at redis://127.0.0.1:{redis.port}/0 refused this node (WRONGPASS invalid "
            "username-password pair or user is disabled.); this node serves its own users alone"]
        assert not any("wrong" in line for line in log_lines), "the password is never logged"
    finally:
        yield bus.leave()


@pytest_twisted.inlineCallbacks
def test_a_password_and_a_database_from_the_url(nodes, redis):
    """The URL's password and database number are used: the cluster's keys are in that database only."""
    redis.command("CONFIG", "SET", "requirepass", "s3 cret")
    url = f"redis://:s3%20cret@127.0.0.1:{redis.port}/3"
    a, b = Node(url, "a"), Node(url, "b")
    try:
        yield defer.gatherResults([in_contact(a.bus), in_contact(b.bus)])
        alice, bob = a.log_in("alice"), b.log_in("bob")
        a.handle(alice, c.Say("in database 3"))
        yield bob.wait_for(said("alice", "in database 3"))
        assert "chatd:test:events" in redis.cli("-a", "s3 cret", "-n", "3", "KEYS", "chatd:*").split()
        assert redis.cli("-a", "s3 cret", "-n", "0", "KEYS", "chatd:*").split() == []
    finally:
        yield defer.gatherResults([a.leave(), b.leave()])


@pytest_twisted.inlineCallbacks
def test_a_cluster_over_tls(tmp_path, monkeypatch):
    """rediss://: the server's certificate checked against the trusted authorities (here the test's own CA)."""
    from tests.redis_server import TLSRedisServer

    directory = tmp_path / "tls"
    directory.mkdir()
    redis = TLSRedisServer(directory)
    monkeypatch.setenv("SSL_CERT_FILE", str(redis.ca))  # OpenSSL's default trust, which Twisted's TLS uses
    a, b = Node(redis.url, "a"), Node(redis.url, "b")
    try:
        yield defer.gatherResults([in_contact(a.bus), in_contact(b.bus)])
        alice, bob = a.log_in("alice"), b.log_in("bob")
        a.handle(alice, c.Say("over TLS"))
        yield bob.wait_for(said("alice", "over TLS"))
    finally:
        yield defer.gatherResults([a.leave(), b.leave()])
        redis.stop()


@pytest_twisted.inlineCallbacks
def test_a_redis_whose_certificate_is_not_trusted_is_one_clear_log_line(tmp_path, monkeypatch, log_lines):
    """rediss:// to a Redis whose certificate no trusted authority signed: one log line saying why, and no contact."""
    from tests.redis_server import TLSRedisServer, make_tls_files

    directory, elsewhere = tmp_path / "tls", tmp_path / "other"
    directory.mkdir()
    elsewhere.mkdir()
    redis = TLSRedisServer(directory)
    monkeypatch.setenv("SSL_CERT_FILE", str(make_tls_files(elsewhere)[0]))  # another authority
    node = Node(redis.url, "a")
    try:
        yield logged("certificate verify failed")
        assert [line for line in log_lines if "failed" in line] == [
            f"cluster: connecting to Redis at {redis.url} failed (TLS: certificate verify failed); retrying"]
        assert not node.bus.in_contact
    finally:
        yield node.leave()
        redis.stop()


def test_redis_urls():
    """--cluster URLs parse into their parts, print without the password, and bad ones say what is wrong."""
    assert RedisAddress.parse("redis://lab.example") == RedisAddress("lab.example")
    parsed = RedisAddress.parse("rediss://chat:s%40cret@[::1]:7000/3")
    assert (parsed.host, parsed.port, parsed.db, parsed.username, parsed.password, parsed.tls) == (
        "::1", 7000, 3, "chat", "s@cret", True)
    assert str(parsed) == "rediss://chat@[::1]:7000/3", "the log never shows the password"
    for bad, says in [("http://x", "not a redis:// or rediss:// URL"), ("redis://x:99999", "port"),
                      ("redis:///0", "no host"), ("redis://x/zero", "database"), ("redis://x/0?a=b", "nothing may")]:
        with pytest.raises(ValueError, match=says):
            RedisAddress.parse(bad)

