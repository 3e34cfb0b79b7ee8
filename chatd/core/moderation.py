"""
Moderation: operators, bans, and the slowing of password guesses.  Pure:
time comes from an injected clock.

An operator (after /oper PASSWORD, the password from --oper-password-file)
can /kick a user, /ban a nickname's address or an address for some minutes
(0: until restart), /unban an address and list the /bans.  Banned addresses
are refused when they connect.  A failed /oper makes that address wait
before its next try: 1 s, then 2, 4, ... up to a minute.
"""

from __future__ import annotations

import hmac
import math
import time

from attrs import define, field
from twisted.internet.interfaces import IReactorTime

MAX_GUESS_WAIT_SECONDS = 60.0


@define
class Moderation:
    password: str | None
    clock: IReactorTime
    _operators: set[object] = field(factory=set)
    _bans: dict[str, float | None] = field(factory=dict)  # address -> until (unix time), None: until restart
    _failures: dict[str, tuple[int, float]] = field(factory=dict)  # address -> (failures, may try again at)

    @property
    def enabled(self) -> bool:
        return self.password is not None

    # -- operators

    def is_operator(self, member: object) -> bool:
        return member in self._operators

    def try_password(self, member: object, address: str, guess: str) -> str | None:
        """Make `member` an operator if `guess` is right; else the reason it is not."""
        now = self.clock.seconds()
        failures, not_before = self._failures.get(address, (0, 0.0))
        if now < not_before:
            return f"too many attempts, wait {math.ceil(not_before - now)} s"
        if self.password is not None and hmac.compare_digest(guess.encode(), self.password.encode()):
            self._failures.pop(address, None)
            self._operators.add(member)
            return None
        failures += 1
        self._failures[address] = (failures, now + min(MAX_GUESS_WAIT_SECONDS, 2.0 ** (failures - 1)))
        return "wrong password"

    def forget(self, member: object) -> None:
        self._operators.discard(member)

    # -- bans

    def ban(self, address: str, minutes: float) -> None:
        self.ban_until(address, None if minutes == 0 else self.clock.seconds() + minutes * 60)

    def ban_until(self, address: str, until: float | None) -> None:
        """Ban `address` until `until` (unix time; None: until restart)."""
        self._bans[address] = until

    def in_force(self) -> list[tuple[str, float | None]]:
        """Each ban in force: (address, until), as ban_until takes it."""
        return [(address, self._bans[address]) for address in sorted(self._bans) if self.is_banned(address)]

    def unban(self, address: str) -> bool:
        return self._bans.pop(address, False) is not False

    def is_banned(self, address: str) -> bool:
        if address not in self._bans:
            return False
        until = self._bans[address]
        if until is not None and until <= self.clock.seconds():
            del self._bans[address]
            return False
        return True

    def bans(self) -> list[str]:
        """Each ban, as `ADDRESS (until HH:MM)` or `ADDRESS (until restart)`, sorted by address."""
        shown = []
        for address in sorted(self._bans):
            if self.is_banned(address):
                until = self._bans[address]
                when = "restart" if until is None else time.strftime("%H:%M", time.localtime(until))
                shown.append(f"{address} (until {when})")
        return shown
