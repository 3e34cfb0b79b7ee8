"""
The turn: what happens in one reactor turn reaches each member together.

The chat server begins a turn whenever something happens to it (a command,
a departure, another node's events), and its events wait until the turn
ends: a delayed call due at once, which runs right after the reactor
turn's reads.  Then the turn's events go out together, one delivery per
member (the server's `fan_out` step), and after them whatever else waits
for the end of the turn (each connection's output: `then` steps).  No
latency is added: Twisted writes on the next poll either way, and this
runs just before it.

Nobody outside the core begins, holds or ends a turn for the chat: the
server does it at each of its entry points, so order is kept by
construction.  (The connection runtime asks for the end of the turn only
for its own output: `later`.)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime


class Turn:
    """One reactor turn at a time, as the chat sees it."""

    __slots__ = ("_clock", "_fan_out_seconds", "_fan_out", "_then", "_call", "held", "ending")

    def __init__(self, clock: IReactorTime, fan_out_seconds: Callable[[float], None] | None = None) -> None:
        self._clock = clock
        self._fan_out_seconds = fan_out_seconds  # told how long each turn's fan-out took (/metrics)
        self._fan_out: Callable[[], None] | None = None
        self._then: list[Callable[[], None]] = []
        self._call: IDelayedCall | None = None
        self.held = False  # the chat's events wait for the end of this turn
        self.ending = False  # the end's steps are running: what comes now goes out at once

    def fan_out(self, step: Callable[[], None]) -> None:
        """The chat server's step at the end of each turn that began: its events go out."""
        if self._fan_out is not None:
            raise ValueError("a turn serves one chat server")
        self._fan_out = step

    def then(self, step: Callable[[], None]) -> None:
        """A step at the end of every turn, after the fan-out (each connection's output)."""
        self._then.append(step)

    def begin(self) -> None:
        """Something happens to the chat this turn: its events wait for the end."""
        if not self.held and not self.ending:
            self.held = True
            if self._call is None:
                self._call = self._clock.callLater(0, self.end)

    def later(self) -> None:
        """Output waits for the end of this turn (the chat's events do not wait for it)."""
        if self._call is None:
            self._call = self._clock.callLater(0, self.end)

    def end(self) -> None:
        """The end of the turn: the chat's events go out, then the `then` steps."""
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        held, self.held = self.held, False
        self.ending = True
        try:
            if held and self._fan_out is not None:
                if self._fan_out_seconds is None:
                    self._fan_out()
                else:
                    started = time.perf_counter()
                    self._fan_out()
                    self._fan_out_seconds(time.perf_counter() - started)
            for step in self._then:
                step()
        finally:
            self.ending = False
