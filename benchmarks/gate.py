"""
The gate every change on the hot path runs (`benchmarks/run.py --check`):
a short version of each scenario, chatd against chatd before (`--before`,
a git revision), in interleaved rounds, and a failure when any of chatd's
figures is more than MARGIN worse than before's.

Each figure is the median of ROUNDS rounds; within a round the two run one
after the other, in turns that swap each round, so that a slow moment of a
shared machine hits both.  Ratios, not times: on this 2-core machine a
scenario's time swings by tens of percent between minutes, its ratio to
the same scenario run beside it by a few.

    .venv/bin/python benchmarks/run.py --check                 # against run.py's BEFORE
    .venv/bin/python benchmarks/run.py --check --before HEAD~3 # against another revision

It prints one line per measurement, then the table of medians and ratios,
and exits 1 if a figure is worse than allowed or a run lost, duplicated or
reordered a line.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

import run as benchmarks

# How much worse than before a figure may be.
MARGIN = 0.10
ROUNDS = 7
IDLE_USERS = 2_000
LOGIN_STORM = 5_000
# Each run long enough (a few seconds of the server's CPU) that its own
# swings, and the 10 ms steps in which the kernel counts CPU time, stay
# well inside MARGIN; with 200 lines the web and IRC runs took under a
# second, and single rounds of the web check ranged from 0.81x to 1.35x.
FAN_OUT_LINES = 800
# p99 is the slowest few turns of a run: at 20 lines a second, 60 lines (3 s)
# gave p99 ratios from 0.83x to 1.17x between sets of seven rounds of the
# same two commits; 150 lines (7.5 s) give it more turns to be taken from.
LATENCY_LINES = 150

Measure = Callable[[Any, "benchmarks.Chatd"], dict]
# (name, how to measure one server, [(figure, "higher" or "lower" is better)])
CHECKS: list[tuple[str, Measure, list[tuple[str, str]]]] = [
    ("all send (100 clients)",
     lambda generator, chatd: benchmarks.measure_door(
         generator, "telnet", dict(clients=100, senders=100, lines=1000, size=64), 1, chatd),
     [("deliveries_per_second", "higher"), ("server_cpu_us_per_delivery", "lower")]),
    ("latency (200 clients, 10 x 20/s)",
     lambda generator, chatd: benchmarks.measure_door(
         generator, "telnet", dict(clients=200, senders=10, lines=LATENCY_LINES, size=64, rate=20.0), 1, chatd),
     [("p50_ms", "lower"), ("p99_ms", "lower")]),
    ("web: 20 of 500 send",
     lambda generator, chatd: benchmarks.measure_door(
         generator, "web", dict(clients=500, senders=20, lines=FAN_OUT_LINES, size=64), 1, chatd),
     [("server_cpu_us_per_delivery", "lower")]),
    ("irc: 20 of 500 send",
     lambda generator, chatd: benchmarks.measure_door(
         generator, "irc", dict(clients=500, senders=20, lines=FAN_OUT_LINES, size=64), 1, chatd),
     [("server_cpu_us_per_delivery", "lower")]),
    ("tls: all send (100 clients)",
     lambda generator, chatd: benchmarks.measure_door(
         generator, "telnet", dict(clients=100, senders=100, lines=FAN_OUT_LINES // 2, size=64), 1, chatd, tls=True),
     [("server_cpu_us_per_delivery", "lower")]),
    *[(f"idle memory: {door}",
       (lambda door: lambda generator, chatd: benchmarks.measure_door_idle(generator, door, IDLE_USERS, chatd))(door),
       [("kib_per_connection", "lower")]) for door in ("telnet", "irc", "web")],
    (f"log in {LOGIN_STORM}",
     lambda generator, chatd: benchmarks.measure_door_logins(generator, "telnet", LOGIN_STORM, chatd),
     [("server_cpu_ms_per_login", "lower")]),
]


def check(generator: Any, chatd: benchmarks.Chatd, before: benchmarks.Chatd, rounds: int = ROUNDS,
          checks: list[tuple[str, Measure, list[tuple[str, str]]]] = CHECKS) -> bool:
    """Every check, `rounds` times, chatd and before in swapping turns; print the table; True if all hold."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for round_ in range(rounds):
        for name, measure, _ in checks:
            pair = (chatd, before) if round_ % 2 == 0 else (before, chatd)
            for server in pair:
                run = measure(generator, server)
                runs.setdefault((name, server[0]), []).append(run)
                figures = ", ".join(f"{key} {value:.3f}" for key, value in run.items() if isinstance(value, float))
                print(f"  round {round_ + 1} {name:>34} {server[0]:>12}: {figures}  lost {run['lost']} "
                      f"dup {run['duplicated']} reord {run['reordered']}", flush=True)
    print(f"\n| check | figure | chatd | before | chatd / before | allowed | ok |\n|---|---|---|---|---|---|---|")
    ok = True
    for name, _, figures in checks:
        for key, better in figures:
            now, then = (statistics.median(run[key] for run in runs[(name, label)]) for label in (chatd[0], before[0]))
            ratio = now / then if then else float("nan")
            allowed = f">= {1 / (1 + MARGIN):.2f}" if better == "higher" else f"<= {1 + MARGIN:.2f}"
            held = ratio >= 1 / (1 + MARGIN) if better == "higher" else ratio <= 1 + MARGIN
            ok &= held
            print(f"| {name} | {key} | {now:.3f} | {then:.3f} | {ratio:.2f} | {allowed} | {'yes' if held else 'NO'} |")
    correct = all(run["lost"] == run["duplicated"] == run["reordered"] == 0 for runs_ in runs.values() for run in runs_)
    print(f"\ncorrectness (no loss, no duplicate, no reordering): {'yes' if correct else 'NO'}")
    return ok and correct
