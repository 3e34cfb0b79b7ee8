"""
Account passwords: argon2id (argon2-cffi), hashed and checked in one
thread of their own, never on the reactor's.

The parameters are OWASP's third equivalent choice for argon2id (12 MiB of
memory, 3 passes, 1 lane): on the 2-core machine chatd is measured on, a
hash or a check takes about 29 ms there, the quickest of OWASP's five
(19 MiB and 2 passes: 37 ms; 46 MiB and 1 pass: 80 ms), for the same
strength.  One thread does all of it, so a storm of password logins uses
one core at most and the chat keeps the other; argon2 releases Python's
lock while it works.  At most MAX_WAITING hashes or checks wait their turn
(1000 at 29 ms: the last waits 29 s, within the default 60 s to log in);
past that, `PasswordsBusy` (the door says so, and the user tries again),
so a flood of logins cannot pile up without bound.

A password is never logged, and never kept anywhere but in the hash.
"""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from twisted.internet.defer import Deferred, fail
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from chatd.core.store import StoreUnavailable

TIME_COST = 3
MEMORY_KIB = 12 * 1024
LANES = 1
MAX_WAITING = 1000


class PasswordsBusy(StoreUnavailable):
    """Too many password checks wait already: try again in a moment (what a user reads)."""

    def __init__(self) -> None:
        super().__init__("too many passwords are being checked at once: try again in a moment")


class Passwords:
    """Hashes and checks passwords in a thread of their own (see the module's docstring)."""

    def __init__(self, reactor: Any, hasher: PasswordHasher | None = None) -> None:
        self._reactor = reactor
        self._hasher = hasher or PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=LANES,
                                                type=Type.ID)
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="chatd-passwords")
        self._waiting = 0

    def start(self) -> None:
        """
        Start the thread, and stop it when the reactor shuts down, whatever
        else happens then (as Twisted does for its own thread pool): a thread
        still running would keep the process from exiting.
        """
        self._pool.start()
        self._reactor.addSystemEventTrigger("during", "shutdown", self.stop)

    def stop(self) -> None:
        if self._pool.started:
            self._pool.stop()

    def hash(self, password: str) -> Deferred[str]:
        """The argon2id hash (PHC string, with its salt and parameters) to keep for `password`."""
        return self._in_thread(self._hasher.hash, password)

    def check(self, kept_hash: str, password: str) -> Deferred[bool]:
        """
        Whether `password` is the one `kept_hash` was made from.  A hash that
        is not one (damaged on disk) checks as False.
        """
        return self._in_thread(self._matches, kept_hash, password)

    def _matches(self, kept_hash: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(kept_hash, password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def outdated(self, kept_hash: str) -> bool:
        """Whether `kept_hash` was made with other parameters (to hash again at the next good login)."""
        try:
            return bool(self._hasher.check_needs_rehash(kept_hash))
        except (InvalidHashError, ValueError):
            return True

    def _in_thread(self, work: Any, *args: Any) -> Deferred[Any]:
        if self._waiting >= MAX_WAITING:
            return fail(PasswordsBusy())
        self._waiting += 1
        done: Deferred[Any] = deferToThreadPool(self._reactor, self._pool, work, *args)

        def finished(result: object) -> object:
            self._waiting -= 1
            return result

        return done.addBoth(finished)
