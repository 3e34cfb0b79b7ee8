"""Keep-alive on a door's shared timer wheel (chatd.net.keepalive), with a fake clock."""

from twisted.internet.task import Clock

from chatd.net.keepalive import KeepAlive, TimerWheel


class Peer:
    """A connection as keep-alive sees it: what it was asked to do, in order."""

    def __init__(self, calls, name="peer"):
        self.calls, self.name = calls, name

    def ping_peer(self):
        self.calls.append((self.name, "ping"))

    def peer_silent(self):
        self.calls.append((self.name, "silent"))


def test_a_silent_peer_is_pinged_after_an_interval_and_gone_after_two():
    """Nothing heard for 60 s: a ping; still nothing for 60 s more: silent, and nothing after that."""
    clock, calls = Clock(), []
    KeepAlive(TimerWheel(clock), 60, Peer(calls))
    clock.advance(59)
    assert calls == []
    clock.advance(1)
    assert calls == [("peer", "ping")]
    clock.advance(60)
    assert calls == [("peer", "ping"), ("peer", "silent")]
    clock.advance(600)
    assert len(calls) == 2


def test_a_peer_that_speaks_is_never_pinged():
    """Heard within each interval: no ping, ever."""
    clock, calls = Clock(), []
    keepalive = KeepAlive(TimerWheel(clock), 60, Peer(calls))
    for _ in range(10):
        keepalive.heard = True
        clock.advance(60)
    assert calls == []


def test_a_pinged_peer_that_answers_stays():
    """Pinged, then heard before the next interval: not silent, and pinged again only after a new silence."""
    clock, calls = Clock(), []
    keepalive = KeepAlive(TimerWheel(clock), 60, Peer(calls))
    clock.advance(60)
    keepalive.heard = True
    clock.advance(60)
    assert calls == [("peer", "ping")]
    clock.advance(60)
    assert calls == [("peer", "ping"), ("peer", "ping")]


def test_stopped_keepalive_says_nothing_more():
    """A closed connection's keep-alive is stopped: it is neither pinged nor called silent."""
    clock, calls = Clock(), []
    keepalive = KeepAlive(TimerWheel(clock), 60, Peer(calls))
    keepalive.stop()
    clock.advance(600)
    assert calls == []


def test_many_connections_share_one_timer_and_a_failing_one_hurts_none():
    """A thousand connections: one pending DelayedCall; one whose ping raises does not stop the others'."""
    clock, calls = Clock(), []

    class Broken(Peer):
        def ping_peer(self):
            raise RuntimeError("a broken connection")

    wheel = TimerWheel(clock)
    KeepAlive(wheel, 60, Broken(calls, "broken"))
    for index in range(1000):
        KeepAlive(wheel, 60, Peer(calls, index))
        clock.advance(0.01)
    assert len(clock.getDelayedCalls()) == 1
    clock.advance(61)  # the last was scheduled at 9.99 s: due at second 70
    assert sorted(name for name, what in calls if what == "ping") == list(range(1000))


def test_the_wheel_is_never_early_and_stops_when_empty():
    """An entry due in 0.5 s is told at the next whole second, not before; an empty wheel holds no timer."""
    clock, told = Clock(), []

    class Entry:
        def due(self):
            told.append(clock.seconds())

    clock.advance(10.2)
    wheel = TimerWheel(clock)
    wheel.schedule(Entry(), 0.5)
    clock.advance(0.5)
    assert told == []
    clock.advance(0.3)
    assert told == [11.0]
    assert clock.getDelayedCalls() == [] and len(wheel) == 0


def test_an_entry_cancelled_by_one_told_before_it_in_the_same_second_is_not_told():
    """
    The wheel tells a second's entries one by one: one that an entry told
    before it cancels (a login timeout whose user chose a nickname
    meanwhile) is not told.  Two entries of one second that each cancel
    the other: only the first is told.  And one scheduled meanwhile for
    that same second is told on the next tick, once.
    """
    clock, told = Clock(), []
    wheel = TimerWheel(clock)
    seconds = {}

    class Entry:
        def __init__(self, name, then):
            self.name, self.then = name, then

        def due(self):
            told.append(self.name)
            self.then()

    late = Entry("late", lambda: None)
    a = Entry("a", lambda: (wheel.cancel(b, seconds["b"]), wheel.schedule(late, 0)))
    b = Entry("b", lambda: (wheel.cancel(a, seconds["a"]), wheel.schedule(late, 0)))
    seconds["a"], seconds["b"] = wheel.schedule(a, 60), wheel.schedule(b, 60)
    clock.advance(60)
    clock.advance(0)
    assert len([name for name in told if name in ("a", "b")]) == 1
    assert told.count("late") == 1
