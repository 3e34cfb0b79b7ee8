"""
The benchmarks' gate (benchmarks/gate.py, `run.py --check`): its verdict
on figures given by fake measurements, so what passes and what fails is
tested without timing anything.
"""

import sys

from tests.chatd_process import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import gate  # noqa: E402

CHATD, BEFORE = ("chatd", "chatd", REPO), ("chatd before", "chatd-before", REPO)


def checks(now, then, key="server_cpu_us_per_delivery", better="lower"):
    """One check whose measure gives chatd `now` and chatd before `then`, in every round."""

    def measure(generator, server):
        return {key: now if server is CHATD else then, "lost": 0, "duplicated": 0, "reordered": 0}

    return [("a scenario", measure, [(key, better)])]


def test_a_figure_within_ten_percent_of_before_passes():
    """5% more CPU per delivery, or 5% fewer deliveries a second, is inside the margin."""
    assert gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(1.05, 1.0))
    assert gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(0.95, 1.0, "deliveries_per_second", "higher"))


def test_a_figure_more_than_ten_percent_worse_fails():
    """15% more CPU per delivery, or 15% fewer deliveries a second, fails the gate."""
    assert not gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(1.15, 1.0))
    assert not gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(0.85, 1.0, "deliveries_per_second", "higher"))


def test_better_is_never_a_failure():
    """Half the CPU, or twice the deliveries, passes."""
    assert gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(0.5, 1.0))
    assert gate.check(None, CHATD, BEFORE, rounds=3, checks=checks(2.0, 1.0, "deliveries_per_second", "higher"))


def test_a_lost_line_fails_whatever_the_figures():
    """Correctness first: a run that lost a line fails the gate even at equal figures."""

    def measure(generator, server):
        return {"p99_ms": 1.0, "lost": 1 if server is CHATD else 0, "duplicated": 0, "reordered": 0}

    assert not gate.check(None, CHATD, BEFORE, rounds=1, checks=[("a scenario", measure, [("p99_ms", "lower")])])


def test_the_median_of_the_rounds_decides():
    """One slow round of five (a busy moment of the machine) does not fail the gate."""
    figures = iter([1.0, 1.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])

    def measure(generator, server):
        return {"p99_ms": next(figures), "lost": 0, "duplicated": 0, "reordered": 0}

    assert gate.check(None, CHATD, BEFORE, rounds=5, checks=[("a scenario", measure, [("p99_ms", "lower")])])
