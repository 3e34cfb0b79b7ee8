"""
chatd.store.passwords with argon2-cffi and its own thread (the real reactor):
a password checks against its hash and no other does, the work is never on
the reactor's thread, and the queue of waiting work is bounded.
"""

import threading

import pytest
import pytest_twisted
from argon2 import PasswordHasher
from twisted.internet import reactor
from twisted.internet.defer import DeferredList

from chatd.store.passwords import LANES, MAX_WAITING, MEMORY_KIB, TIME_COST, Passwords, PasswordsBusy


@pytest.fixture
def passwords():
    made = Passwords(reactor)
    made.start()
    yield made
    made.stop()


@pytest_twisted.inlineCallbacks
def test_a_password_checks_against_its_hash_and_no_other_does(passwords):
    """argon2id with chatd's parameters; the wrong password, and a damaged hash, check as False."""
    kept = yield passwords.hash("correct horse battery")
    assert kept.startswith(f"$argon2id$v=19$m={MEMORY_KIB},t={TIME_COST},p={LANES}$")
    assert "correct horse" not in kept
    assert (yield passwords.check(kept, "correct horse battery")) is True
    assert (yield passwords.check(kept, "correct horse batterY")) is False
    assert (yield passwords.check("$argon2id$v=19$damaged", "correct horse battery")) is False
    assert not passwords.outdated(kept)
    assert passwords.outdated(PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("x" * 8))


@pytest_twisted.inlineCallbacks
def test_hashing_happens_in_its_own_thread_never_the_reactors(passwords):
    """The hasher runs in the passwords' thread; the reactor's thread only gets the result."""
    threads = []

    class Recording(PasswordHasher):
        def hash(self, password, **options):
            threads.append(threading.current_thread())
            return super().hash(password, **options)

    own = Passwords(reactor, Recording(time_cost=1, memory_cost=8192, parallelism=1))
    own.start()
    try:
        yield own.hash("correct horse battery")
    finally:
        own.stop()
    assert threads and threads[0] is not threading.main_thread() and "chatd-passwords" in threads[0].name


@pytest_twisted.inlineCallbacks
def test_past_max_waiting_more_work_is_refused_at_once_and_the_rest_is_done(passwords):
    """A flood of checks: MAX_WAITING wait their turn; the next is PasswordsBusy at once; later ones go again."""
    cheap = Passwords(reactor, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))
    cheap.start()
    try:
        waiting = [cheap.hash("correct horse battery") for _ in range(MAX_WAITING)]
        with pytest.raises(PasswordsBusy):
            yield cheap.hash("one too many")
        results = yield DeferredList(waiting, consumeErrors=True)
        assert all(ok for ok, _ in results)
        assert (yield cheap.hash("after the flood")).startswith("$argon2id$")
    finally:
        cheap.stop()



def test_the_password_thread_stops_when_the_reactor_shuts_down():
    """
    Started, the password thread stops at the reactor's shutdown whatever
    else happens then: a thread left running keeps the process from exiting
    (chatd once stayed alive after "Server Shut Down").  Stopping twice is harmless.
    """
    triggers = []

    class Reactor:
        def addSystemEventTrigger(self, phase, event, callable):
            triggers.append((phase, event, callable))

    passwords = Passwords(Reactor())
    passwords.start()
    [(phase, event, stop)] = triggers
    assert (phase, event) == ("during", "shutdown")
    assert passwords._pool.started
    stop()
    assert not passwords._pool.started and not any(thread.is_alive() for thread in passwords._pool.threads)
    passwords.stop()
