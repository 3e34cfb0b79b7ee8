"""
Where chatd's time goes: a flame graph (py-spy) of the server under each
of the benchmark's scenarios, for benchmarks/profiles/.

    .venv/bin/pip install py-spy                                  # once
    .venv/bin/python benchmarks/profile.py                        # this checkout, every scenario
    .venv/bin/python benchmarks/profile.py --before e76454e       # and chatd at e76454e, the same way
    .venv/bin/python benchmarks/profile.py --scenario latency --scenario "all send"

Each scenario runs against a fresh chatd, unthrottled as in run.py, with
the C load generator's clients.  py-spy samples the server (1 000 times a
second, without stopping it, leaving out the time it waits in epoll) from
the moment every client is in until the scenario ends; for a login storm,
the whole storm.  The graphs go to `--out` (benchmarks/profiles/) as
SCENARIO-COMMIT.svg, named by the commit whose code they describe
(`git describe --always --dirty`: profile committed code, so that the name
says what was profiled).  Open one in a browser: every box is a function,
as wide as its share of the samples; click to zoom.

What the graphs of the commits in benchmarks/profiles/ show is in
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from loadgen import CLoadGenerator, compile_c  # noqa: E402

SAMPLES_PER_SECOND = 1000
# Longer than run.py's, so that a graph has thousands of samples.
SCENARIOS: dict[str, dict[str, Any]] = {
    "all send": dict(door="telnet", clients=100, senders=100, lines=1000, size=64),
    "20 of 500 send": dict(door="telnet", clients=500, senders=20, lines=1000, size=64),
    "latency": dict(door="telnet", clients=200, senders=10, lines=100, size=64, rate=20.0),
    "web 20 of 500 send": dict(door="web", clients=500, senders=20, lines=400, size=64),
    "irc 20 of 500 send": dict(door="irc", clients=500, senders=20, lines=1000, size=64),
    "tls all send": dict(door="telnet", tls=True, clients=100, senders=100, lines=400, size=64),
    "log in 5000": dict(door="telnet", storm=5000),
}


def py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("profile.py needs py-spy: .venv/bin/pip install py-spy")
    return found


def commit_of(code: Path) -> str:
    """The commit of the chatd in `code`: a checkout's own, or the one a 'before' build was made from."""
    if (code / ".git").exists():
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=code, capture_output=True,
                              text=True, check=True).stdout.strip()
    found = re.search(r"chatd-before-([0-9a-f]+)$", code.name)
    if found is None:
        raise ValueError(f"which commit is {code}?")
    return found.group(1)[:7]


class Sampling:
    """py-spy recording one process into an SVG until stopped (SIGINT, as Ctrl-C: it then writes the graph)."""

    def __init__(self, pid: int, svg: Path) -> None:
        self.svg = svg
        self.process = subprocess.Popen(
            [py_spy(), "record", "--pid", str(pid), "--rate", str(SAMPLES_PER_SECOND), "--nonblocking",
             "--format", "flamegraph", "--output", str(svg)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def stop(self) -> str:
        """Stop sampling; what py-spy said last (its count of samples)."""
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=60)
        if self.process.returncode or not self.svg.exists():
            raise RuntimeError(f"py-spy failed: {output.strip()}")
        return output.strip().splitlines()[-1]


def profile(generator: CLoadGenerator, name: str, scenario: dict[str, Any], plugin: str, code: Path,
            out: Path) -> Path:
    """One scenario against a fresh chatd from `code`, sampled: the graph's path."""
    scenario = dict(scenario)
    door, tls, storm = scenario.pop("door"), scenario.pop("tls", False), scenario.pop("storm", 0)
    port, web_port, irc_port = run.free_port(), run.free_port(), run.free_port()
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", plugin, "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", str(web_port), "--irc-port", str(irc_port),
               *run.CHATD_UNTHROTTLED]
    target = {"telnet": port, "web": web_port, "irc": irc_port}[door]
    svg = out / f"{name.replace(' ', '-')}-{commit_of(code)}.svg"
    sampling: list[Sampling] = []
    with run.running(run.start(command, target, code)) as server:
        if storm:
            sampling.append(Sampling(server.pid, svg))
            generator.log_in_seconds(target, storm, door)
        else:
            result = generator.fan_out(target, door=door, ready=lambda: sampling.append(Sampling(server.pid, svg)),
                                       **({"tls": True} if tls else {}), **scenario)
            if result.lost or result.duplicated or result.reordered:
                raise RuntimeError(f"{name}: lines lost, duplicated or reordered")
        said = sampling[0].stop()
    print(f"{name:>20} {commit_of(code):>12}: {svg} ({said})", flush=True)
    return svg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="a scenario to profile (again for more; default: all of them)")
    parser.add_argument("--before", default="", help="also profile chatd at this git revision")
    parser.add_argument("--out", default=str(HERE / "profiles"), help="where the SVGs go")
    args = parser.parse_args()
    py_spy()
    build = Path(tempfile.gettempdir()) / "chatd-benchmarks"
    build.mkdir(exist_ok=True)
    binary = compile_c(HERE / "c" / "loadgen.c", build)
    if binary is None:
        raise SystemExit("profile.py needs a C compiler (for c/loadgen.c)")
    generator = CLoadGenerator(binary)
    chatds = [("chatd", run.REPO)]
    if args.before:
        chatds.append(("chatd-before", run.build_before(args.before, build)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.scenario or SCENARIOS:
        for plugin, code in chatds:
            profile(generator, name, SCENARIOS[name], plugin, code, out)


if __name__ == "__main__":
    main()
