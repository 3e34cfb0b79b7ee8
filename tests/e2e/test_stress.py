"""A short run of the stress tool (benchmarks/stress.py) as a correctness test."""

import json
import subprocess
import sys

from tests.chatd_process import REPO, environment


def test_short_stress_run_loses_nothing(tmp_path):
    """Flooders, slow readers, resetters and half-closers: every well-behaved client gets every line once, in order."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "stress.py"), "--clients", "40", "--seconds", "3", "--json"],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["clients"] == {"flooder": 4, "slow reader": 4, "resetter": 4, "half-closer": 4, "well-behaved": 24}
    assert report["messages_sent"] > 0
    assert report["deliveries_expected"] == report["messages_sent"] * 23
    assert (report["lost"], report["duplicated"], report["reordered"]) == (0, 0, 0)
    assert report["drained_in_time"] is True
    assert report["server_exit_status"] == 0


def test_stress_options_are_bounded(tmp_path):
    """The tool refuses runs beyond its bounds."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "stress.py"), "--clients", "100000"],
        cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "stress.py: --clients: '100000' is not a whole number from 4 to 5000\n"
