"""
Instructions per login and per line, chatd against chatd before: a
measure of the server's own work that does not swing.

On a shared 2-core machine the socket benchmarks of run.py swing by about
9% between two runs of the same code (an A/A run: benchmarks/README.md),
so they cannot show that a change keeps within 5% of before.  This does:
each scenario runs in one process, on in-memory transports (Twisted's
StringTransport) and a deterministic clock, under valgrind's callgrind,
which counts the instructions executed.  Two sizes of each scenario are
counted and subtracted, so start-up and imports cancel out; the counts are
the same from one run to the next (PYTHONHASHSEED is fixed).

What it leaves out is the same for both: the kernel's side of the sockets
(chatd before and chatd make the same system calls per login and per
delivery), and waiting.

    .venv/bin/python benchmarks/run.py --instructions          # these only
    .venv/bin/python benchmarks/instructions.py CODE SCENARIO SIZE   # one count's process (what run.py runs)

Scenarios:
  telnet login   connections that each send a nickname, a reactor turn each
  irc login      the same with NICK and USER (each gets NAMES of the lobby:
                 its cost grows with the lobby, so the storm is smaller)
  telnet line    100 telnet users, 20 of them sending 5 lines a read, a turn
                 per 10 reads: the cost of one line read and delivered to 99
  irc line       the same with IRC users
"""

from __future__ import annotations

import heapq
import itertools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from zope.interface import implementer

# scenario: (unit, the smaller size, the larger), in units of the scenario's step.
SCENARIOS = {
    "telnet login": ("login", 2000, 4000),
    "irc login": ("login", 200, 400),
    "telnet line": ("line", 400, 1200),
    "irc line": ("line", 400, 1200),
}
USERS = 100
SENDERS = 20
LINES_PER_READ = 5


@implementer(IReactorTime)
class HeapClock:
    """
    A deterministic clock (IReactorTime) with a heap of delayed calls, as
    Twisted's reactors have: task.Clock sorts its whole list on every
    callLater, which would make a storm of connections that each keep a
    timer (IRC's keep-alive) cost the square of its size, and hide the
    code's own cost in it.  Cancelled and moved calls are dropped lazily,
    as the reactor does.
    """

    def __init__(self) -> None:
        self.rightNow = 0.0
        self._heap: list[tuple[float, int, Any]] = []
        self._order = itertools.count()

    def seconds(self) -> float:
        return self.rightNow

    def callLater(self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object) -> IDelayedCall:
        from twisted.internet.base import DelayedCall

        call = DelayedCall(self.rightNow + delay, callable, args, kwargs, lambda call: None, self._push,
                           seconds=self.seconds)
        self._push(call)
        return call

    def getDelayedCalls(self) -> list[Any]:
        return [call for when, _, call in self._heap if call.active() and when == call.time]

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            when, _, call = heapq.heappop(heap)
            if call.cancelled or call.called or when != call.time:
                continue  # cancelled, or moved earlier (pushed again)
            if call.delayed_time:  # moved later
                call.activate_delay()
                self._push(call)
                continue
            call.called = 1
            call.func(*call.args, **call.kw)

    def _push(self, call: Any) -> None:
        heapq.heappush(self._heap, (call.time, next(self._order), call))


def doors(code: Path, clock: HeapClock, quiet_limits: bool) -> tuple[Any, Any]:
    """
    A telnet door and an IRC door on one chat server, from the chatd in
    `code`: this one, or chatd before.
    """
    sys.path.insert(0, str(code))
    from chatd.core.server import ChatServer
    from chatd.core.turn import Turn
    from chatd.irc.protocol import IrcDoor
    from chatd.net.door import Settings
    from chatd.net.limits import ConnectionLimits
    from chatd.telnet.protocol import TelnetDoor

    server = ChatServer("lab", clock, turn=Turn(clock))
    settings = Settings("lab")
    if quiet_limits:  # the line scenarios: no flood gate holding lines back
        settings = Settings("lab", rate_lines_per_second=1e9, rate_burst_lines=10**9, flood_queue_lines=10**6)
    limits = ConnectionLimits(10**6, 10**6)
    return TelnetDoor(server, settings, clock, limits), IrcDoor(server, settings, clock, limits)


def connect(door: Any, index: int, first: bytes) -> tuple[Any, Any]:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import StringTransport

    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 10000 + index % 50000))
    connection = door.buildProtocol(transport.getPeer())
    connection.makeConnection(transport)
    connection.dataReceived(first)
    return transport, connection


def login(index: int, irc: bool) -> bytes:
    return b"NICK c%d\r\nUSER c%d 0 * :c%d\r\n" % (index, index, index) if irc else b"c%d\r\n" % index


def run(code: Path, scenario: str, size: int, tune_gc: bool = False) -> Any:
    """
    One scenario of `size` steps (logins, or lines), in this process; with
    `tune_gc`, Python's collector set as both chatds' twistd plugins set it
    (chatd.service.tap), which a process of its own should.  Returns the
    chat server, for a test to see that the steps were done.
    """
    import gc

    clock = HeapClock()
    unit, _, _ = SCENARIOS[scenario]
    telnet, irc = doors(code, clock, quiet_limits=unit == "line")
    if tune_gc:
        gc.set_threshold(10_000, 20, 10)
        gc.freeze()
    door, is_irc = (irc, True) if scenario.startswith("irc") else (telnet, False)
    if unit == "login":
        for index in range(size):
            transport, _ = connect(door, index, login(index, is_irc))
            clock.advance(0)
            transport.clear()
        return telnet.server
    users = []
    for index in range(USERS):
        users.append(connect(door, index, login(index, is_irc)))
        clock.advance(0)
    for transport, _ in users:
        transport.clear()
    say = b"PRIVMSG #lobby :hello there %d %d\r\n" if is_irc else b"hello there %d %d\r\n"
    lines = 0
    for round_ in itertools.count():
        for sender in range(SENDERS):
            users[sender][1].dataReceived(b"".join(say % (round_, j) for j in range(LINES_PER_READ)))
            lines += LINES_PER_READ
            if sender % 10 == 9:
                clock.advance(0)
                for transport, _ in users:
                    transport.clear()
            if lines >= size:
                return telnet.server


def count(code: Path, scenario: str, size: int) -> int:
    """Instructions executed by one process running `scenario` at `size`."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
               str(code), scenario, str(size)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"},
                            timeout=1800)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode or found is None:
        raise RuntimeError(f"{scenario} in {code} failed: {result.stderr[-2000:]}")
    return int(found.group(1))


def available() -> bool:
    return shutil.which("valgrind") is not None


def measure(chatds: dict[str, Path], report: Any = print) -> dict[str, dict[str, float]]:
    """Instructions per step of every scenario, for each chatd: {scenario: {label: instructions}}."""
    results: dict[str, dict[str, float]] = {}
    for scenario, (unit, small, large) in SCENARIOS.items():
        for label, code in chatds.items():
            per_step = (count(code, scenario, large) - count(code, scenario, small)) / (large - small)
            results.setdefault(scenario, {})[label] = per_step
            report(f"  {'instructions: ' + scenario:>28} {label:>14}: {per_step / 1e3:9.1f} k per {unit}", flush=True)
    return results


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), tune_gc=True)
