"""
The machinery of benchmarks/instructions.py, which counts chatd's
instructions per login and per line under valgrind: its clock and its
scenarios (run here without valgrind; the counts are never asserted).
"""

import sys

from tests.chatd_process import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import instructions  # noqa: E402


def test_the_heap_clock_runs_calls_in_time_order_and_honours_cancel_and_reset():
    """Due calls run in time order; a cancelled one never runs; a reset one runs at its new time."""
    clock = instructions.HeapClock()
    ran = []
    clock.callLater(2, ran.append, "two")
    clock.callLater(1, ran.append, "one")
    cancelled = clock.callLater(1.5, ran.append, "cancelled")
    later = clock.callLater(0.5, ran.append, "moved later")
    earlier = clock.callLater(10, ran.append, "moved earlier")
    cancelled.cancel()
    later.reset(2.5)
    earlier.reset(0.25)
    clock.advance(1.75)
    assert ran == ["moved earlier", "one"]
    clock.advance(1)
    assert ran == ["moved earlier", "one", "two", "moved later"]
    assert clock.getDelayedCalls() == []
    clock.advance(100)
    assert ran == ["moved earlier", "one", "two", "moved later"]


def test_every_scenario_does_its_steps_on_this_checkout():
    """Each scenario the counts are made of does what it counts: its logins, or its lines said in #lobby."""
    for scenario, (unit, _, _) in instructions.SCENARIOS.items():
        server = instructions.run(REPO, scenario, 40)
        if unit == "login":
            assert server.count == 40, scenario
        else:
            assert (server.count, server.messages) == (instructions.USERS, 40), scenario


def test_the_scenarios_doors_share_one_chat_and_deliver():
    """A line said by a telnet user of the scenarios' doors reaches an IRC user of the same chat."""
    clock = instructions.HeapClock()
    telnet, irc = instructions.doors(REPO, clock, quiet_limits=True)
    _, alice = instructions.connect(telnet, 1, instructions.login(1, irc=False))
    bob_transport, _ = instructions.connect(irc, 2, instructions.login(2, irc=True))
    clock.advance(0)
    bob_transport.clear()
    alice.dataReceived(b"hello there\r\n")
    clock.advance(0)
    assert bob_transport.value() == b":c1!c1@chatd PRIVMSG #lobby :hello there\r\n"
