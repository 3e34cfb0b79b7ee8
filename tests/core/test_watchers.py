"""Watching nicknames (chatd.core.watchers, IRC's MONITOR) through the server, on one node and across a cluster."""

from chatd.core import commands as c
from chatd.core import replies as r
from chatd.core.watchers import MAX_WATCHED
from tests.core.test_mirror import Wire, log_in


def told(log, name):
    return [reply for who, kind, items in log if who == name and kind == "replies" for reply in items
            if isinstance(reply, (r.WatchedOnline, r.WatchedOffline, r.WatchListFull))]


def test_a_watcher_hears_of_logins_renames_and_departures_here_and_on_other_nodes():
    """
    Who is online now, then each change: a login on another node, a rename
    there (none for a change of case only), a quit; none after Unwatch.
    """
    log, wire = [], Wire()
    a, b = wire.node("a"), wire.node("b")
    alice = log_in(a, log, "alice")
    a.handle(alice, c.Watch(("bob", "carol")))
    a.turn.end()
    assert told(log, "alice") == [r.WatchedOffline(("bob", "carol"))]
    bob = log_in(b, log, "bob")
    wire.deliver()
    b.handle(bob, c.Nick("BOB"))
    wire.deliver()
    b.handle(bob, c.Nick("robert"))
    wire.deliver()
    b.handle(bob, c.Quit())
    wire.deliver()
    assert told(log, "alice")[1:] == [r.WatchedOnline(("bob",)), r.WatchedOffline(("BOB",))]
    a.handle(alice, c.Unwatch())
    log_in(b, log, "carol")
    wire.deliver()
    assert len(told(log, "alice")) == 3


def test_a_watch_list_has_a_bound():
    """Past MAX_WATCHED nicknames, the rest are refused and said so."""
    log, wire = [], Wire()
    a = wire.node("a")
    alice = log_in(a, log, "alice")
    a.handle(alice, c.Watch(tuple(f"n{number}" for number in range(MAX_WATCHED + 2))))
    a.turn.end()
    assert told(log, "alice")[-1] == r.WatchListFull((f"n{MAX_WATCHED}", f"n{MAX_WATCHED + 1}"))
