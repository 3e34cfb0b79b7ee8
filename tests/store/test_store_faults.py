"""
A full store, as the chat lives it: the real SQLite store behind a real
ChatServer (recording fake sessions), its file made full with SQLite's
max_page_count (which fails a write as a full disk does, SQLITE_FULL).
Users online hear once that history is not being saved, the chat goes on,
/metrics says so, and once there is room again, everyone hears it and
nothing said meanwhile is lost.
"""

import pytest_twisted
from prometheus_client import generate_latest
from twisted.enterprise import adbapi
from twisted.internet import reactor
from twisted.internet.task import Clock

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.server import ChatServer
from chatd.service.metrics import chat_metrics
from chatd.net.flow import FlowCounts
from chatd.store.sqlite import RETRY_SECONDS, SQLiteStore
from tests.fakes import Session


def replies_of(log, name):
    return [reply for who, kind, replies in log if who == name and kind == "replies" for reply in replies]


@pytest_twisted.inlineCallbacks
def test_a_full_store_is_told_once_the_chat_goes_on_and_nothing_is_lost(tmp_path):
    """The store full: users hear it once, lines still reach them, /metrics shows 0; room again: all kept, 1."""
    pools = []

    def pool(*args, **options):
        pools.append(adbapi.ConnectionPool(*args, **options))
        return pools[-1]

    retries = Clock()
    store = SQLiteStore(tmp_path / "chatd.sqlite3", reactor, "#lobby", clock=retries, pool=pool)
    store.start()
    server = ChatServer("lab", Clock(), store=store)
    metrics = chat_metrics(server, {}, FlowCounts())
    log = []
    alice, bob = Session("alice", log), Session("bob", log)
    try:
        for session in (alice, bob):
            server.arrive(session)
            server.handle(session, c.LogIn(session.name))
        server.handle(alice, c.Say("before"))
        yield store.history("#lobby", 1)  # written: one writer, in order
        [[pages]] = yield pools[0].runQuery("PRAGMA page_count")
        yield pools[0].runOperation(f"PRAGMA max_page_count = {pages}")
        log.clear()
        server.handle(alice, c.Say("while full " + "x" * 20_000))
        server.handle(alice, c.Say("and more"))
        yield store.history("#lobby", 1)  # the write was tried, and failed
        assert replies_of(log, "bob") == [r.HistoryNotKept()]
        assert [events[0].text[:10] for who, kind, events in log if who == "bob" and kind == "events"] == [
            "while full", "and more"]  # the chat went on
        assert b"chatd_store_healthy 0.0" in generate_latest(metrics)
        yield pools[0].runOperation("PRAGMA max_page_count = 1073741823")
        retries.advance(RETRY_SECONDS)
        kept = yield store.history("#lobby", 10)
        assert [event.text[:10] for event in kept] == ["before", "while full", "and more"]
        assert replies_of(log, "bob")[-1] == r.HistoryKeptAgain()
        assert b"chatd_store_healthy 1.0" in generate_latest(metrics)
    finally:
        yield store.close()
