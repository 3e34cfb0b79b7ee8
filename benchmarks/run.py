"""
Run the fan-out benchmarks against chatd and the baselines, interleaved, and
print a table of medians, ratios (same run) and the targets.

    .venv/bin/python benchmarks/run.py                 # full run
    .venv/bin/python benchmarks/run.py --quick         # a smaller, faster one
    .venv/bin/python benchmarks/run.py --instructions  # chatd against before, in instructions (valgrind)
    .venv/bin/python benchmarks/run.py --check         # the gate of a hot-path change (gate.py)
    .venv/bin/python benchmarks/run.py --passwords-only  # a storm of password logins, and others' latency

Servers: chatd (twistd, flood control and send queue set high enough not to
throttle the benchmark), chatd as it was before the channels work (built
from --before, a git revision, in a temporary directory), the naive Twisted
chat, the minimal C chat when there is a C compiler, and the Node.js chat
when `node` is installed.  The
load comes from c/loadgen.c (the Python generator without a C compiler, or
with --python-generator).  Everything runs on 127.0.0.1 and stops by itself.
With valgrind installed, a full run ends with instructions.py's counts:
chatd's own work per login and per line against chatd before's, which do
not swing as times on a shared machine do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import instructions  # noqa: E402
import loadgen as python_generator  # noqa: E402
from loadgen import CLoadGenerator, compile_c  # noqa: E402

from stress import rss_kib  # noqa: E402

# A change must keep every scenario within this of chatd before (medians of interleaved runs).
BEFORE_RATIO = 0.95
Chatd = tuple[str, str, Path]  # a chatd to run: its label in the tables, its twistd plugin, its code

CHATD_UNTHROTTLED = [
    "--rate", "1000000", "--burst", "1000000", "--flood-queue", "1000000", "--sendq", str(256 * 1024 * 1024),
    "--max-per-ip", "100000", "--max-clients", "100000", "--login-timeout", "600", "--echo-port", "0",
]

# The "chatd before" column: chatd as it was before the change being
# measured.  Now the end of the DNS-SD issue, before issue 24's work on
# speed and memory (23ec6ff, the end of the structure, is the one TLS was
# measured against; a1dac47, the end of the cluster, the structure;
# a1f1db0, the end of the IRC door, the cluster; eaa1096, the end of the
# channels work, the web and IRC doors; 963cd8b, before channels, the
# channels work).
BEFORE = "e76454e"

SCENARIOS = {
    "all send": dict(clients=100, senders=100, lines=200, size=64),
    "20 of 500 send": dict(clients=500, senders=20, lines=200, size=64),
    "latency": dict(clients=200, senders=10, lines=100, size=64, rate=20.0),
    # Client i in channel #ch(i % 10), two senders in each.  Servers without
    # channels send every line to everyone; the clients count their own
    # channel's lines only, so the same deliveries are compared.
    "10 channels of 50": dict(clients=500, senders=20, lines=1000, size=64, channels=10),
}
# The web and IRC front doors beside telnet, on chatd alone: the same
# clients in one channel, over WebSocket, over IRC and over telnet, each on a
# fresh chatd, in the same run (c/loadgen.c speaks all three).
DOOR_SCENARIOS = {
    "doors: 20 of 500 send": dict(clients=500, senders=20, lines=200, size=64),
    "doors: latency": dict(clients=200, senders=10, lines=100, size=64, rate=20.0),
}
QUICK_DOORS = {
    "doors: 20 of 500 send": dict(clients=100, senders=10, lines=50, size=64),
    "doors: latency": dict(clients=50, senders=5, lines=20, size=64, rate=20.0),
}
# Targets (issue 24): a door's fan-out costs at most this many times
# telnet's per delivery (server CPU time).
DOOR_TARGETS = {"web": 1.3, "irc": 1.1}
# TLS clients beside plain ones (issue 20): telnet clients on the chat port,
# over TLS (unwrapped there, as `openssl s_client` would be) or not, each on
# a fresh chatd, in the same run; and a login storm of each.
TLS_SCENARIOS = {
    "tls: all send": dict(clients=100, senders=100, lines=200, size=64),
    "tls: latency": dict(clients=200, senders=10, lines=100, size=64, rate=20.0),
}
QUICK_TLS = {
    "tls: all send": dict(clients=30, senders=30, lines=50, size=64),
    "tls: latency": dict(clients=50, senders=5, lines=20, size=64, rate=20.0),
}
TLS_LOGIN_STORM = 1_000
QUICK_TLS_LOGIN_STORM = 100
# Targets, TLS against plain: server CPU per delivery, p99 latency, and the storm's time.
TLS_TARGETS = {"server_cpu_us_per_delivery": 3.0, "p99_ms": 1.5, "login_seconds": 3.0}
# Several nodes through Redis (issue 13), against one node under the same
# load, in the same run.  Two load generator processes, one per node, each
# driving every other client: half of every channel on each node.  Latency
# is sampled on lines from the other process's senders only: with two
# nodes, the deliveries that cross from one node to the other.
CLUSTER_SCENARIOS = {
    "cluster: latency": dict(clients=200, senders=10, lines=100, size=64, rate=20.0),
    "cluster: 20 of 500 send": dict(clients=500, senders=20, lines=200, size=64),
}
QUICK_CLUSTER = {
    "cluster: latency": dict(clients=50, senders=4, lines=20, size=64, rate=20.0),
    "cluster: 20 of 500 send": dict(clients=100, senders=10, lines=50, size=64),
}
# "one node": chatd alone, both generator processes on its port; "two
# nodes": two chatd --cluster, a generator process on each; "two workers":
# chatd --workers 2 (two nodes on one port; the kernel spreads the clients).
CLUSTER_LAYOUTS = ("one node", "two nodes", "two workers")
# Targets: cross-node p50 adds under 1 ms; deliveries/s per node at least
# 0.7 of one node's.
CLUSTER_P50_ADDED_MS = 1.0
CLUSTER_PER_NODE_RATIO = 0.7
# A storm of password logins (issue 21): registered users logging in at
# once, each with its password (argon2id, checked in chatd's one password
# thread), while 200 others chat as in "latency".  Target: those others'
# p99 latency within 2x of the same chat without the storm, same run.
PASSWORD_STORM = 1_000
QUICK_PASSWORD_STORM = 100
PASSWORD_STORM_SCENARIO = dict(clients=200, senders=10, lines=100, size=64, rate=20.0)
QUICK_PASSWORD_STORM_SCENARIO = dict(clients=50, senders=5, lines=20, size=64, rate=20.0)
PASSWORD_STORM_P99_TARGET = 2.0
STORM_PASSWORD = "storm password"
IDLE_CONNECTIONS = 10_000  # also the "log in 10000" run
LOGIN_STORM = 5_000

QUICK = {
    "all send": dict(clients=30, senders=30, lines=50, size=64),
    "20 of 500 send": dict(clients=100, senders=10, lines=50, size=64),
    "latency": dict(clients=50, senders=5, lines=20, size=64, rate=20.0),
    "10 channels of 50": dict(clients=100, senders=10, lines=50, size=64, channels=5),
}
QUICK_IDLE_CONNECTIONS = 500
QUICK_LOGIN_STORM = 250

# Servers whose clients join channels (the others are one room).
WITH_CHANNELS = {"chatd"}

# Memory per idle user, on every door (issue 24).
IDLE_KIB_TARGET = 3.0
# The issues' targets: (baseline, comparison, value) for chatd's median.
# Issue 24's, against the C reference: fan-out at 0.8x C (and above C with
# 20 senders of 500), latency within 1.2x C at p99 and 1.3x at p50, 3 KiB
# per idle user, and a login's server CPU within 2x the naive server's;
# against chatd before, as the gate (gate.py) allows.
TARGETS: dict[str, list[tuple[str | None, str, float]]] = {
    "all send": [("C", ">=", 0.8), ("chatd before", ">=", 0.9)],
    "20 of 500 send": [("C", ">=", 1.0), ("chatd before", ">=", 0.9)],
    "latency": [("C", "<=", 1.2), ("chatd before", "<=", 1.1)],
    "latency p50": [("C", "<=", 1.3), ("chatd before", "<=", 1.1)],
    "10 channels of 50": [],
    "idle memory": [(None, "<=", IDLE_KIB_TARGET)],
    "log in 5000": [],
    "log in 5000 cpu": [("naive twisted", "<=", 2.0)],
    "log in 10000": [],
    "udp echo": [("C", ">=", 0.9)],
}

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_before(revision: str, build: Path) -> Path:
    """
    chatd at `revision`, extracted into `build`, its twistd plugin renamed
    (file and name) `chatd-before` so that it never meets this checkout's.
    """
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", f"{revision}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    target = build / f"chatd-before-{commit[:12]}"
    if not target.exists():
        partial = build / f"partial-{commit[:12]}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "chatd", "twisted"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(partial)], input=archive, check=True)
        plugins = partial / "twisted" / "plugins"
        plugin = plugins / "chatd_plugin.py"
        (plugins / "chatd_before_plugin.py").write_text(plugin.read_text().replace('"chatd",\n)', '"chatd-before",\n)'))
        plugin.unlink()
        partial.rename(target)
    return target


def server_commands(port: int, build: Path, before: Path | None = None) -> dict[str, tuple[list[str], Path]]:
    """Each server's command and the directory its Python code comes from."""
    twistd = str(Path(sys.executable).with_name("twistd"))
    chatd_args = ["--port", str(port), "--interface", "127.0.0.1", *CHATD_UNTHROTTLED]
    # Its web page and IRC port on any free port (8080 and 6667 may be taken; chatd before has neither).
    commands = {"chatd": ([twistd, "-n", "--pidfile=", "chatd", *chatd_args, "--web-port", "0", "--irc-port", "0"],
                          REPO)}
    if before is not None:
        commands["chatd before"] = ([twistd, "-n", "--pidfile=", "chatd-before", *chatd_args], before)
    commands["naive twisted"] = ([sys.executable, str(HERE / "naive_twisted_chat.py"), str(port)], REPO)
    c_chat = compile_c(HERE / "c" / "chat_server.c", build)
    if c_chat:
        commands["C"] = ([str(c_chat), str(port)], REPO)
    if shutil.which("node"):
        commands["node"] = (["node", str(HERE / "node_chat.js"), str(port)], REPO)
    return commands


def echo_commands(port: int, build: Path) -> dict[str, list[str]]:
    """chatd's echo service (rate limit raised for the benchmark) and, with a C compiler, the C echo."""
    twistd = str(Path(sys.executable).with_name("twistd"))
    commands = {
        "chatd": [twistd, "-n", "--pidfile=", "chatd", "--port", "0", "--interface", "127.0.0.1",
                  "--echo-port", str(port), "--echo-rate", "1000000"],
    }
    c_echo = compile_c(HERE / "c" / "udp_echo.c", build)
    if c_echo:
        commands["C"] = [str(c_echo), str(port)]
    return commands


class Server(subprocess.Popen):
    """A server process with a state directory of its own, removed once the server has stopped."""

    state = ""

    def stop(self, kill: bool = False) -> None:
        """Stop it (SIGTERM, as an operator would; SIGKILL with `kill`), wait, and remove its state directory."""
        if kill:
            self.kill()
        else:
            self.terminate()
        self.wait(30)
        shutil.rmtree(self.state, ignore_errors=True)


def spawn(command: list[str], code: Path = REPO) -> Server:
    """
    A server process running the chatd in `code` (this checkout by default),
    its output discarded, and a state directory of its own (a chatd's
    certificate and store, which start empty: no history from an earlier run),
    removed when it stops (`Server.stop`).
    """
    states = Path(tempfile.gettempdir()) / "chatd-benchmarks"
    states.mkdir(exist_ok=True)
    state = tempfile.mkdtemp(dir=states, prefix="state-")
    env = dict(os.environ, PYTHONPATH=str(code) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               XDG_STATE_HOME=state)
    process = Server(command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    process.state = state
    return process


def start_udp(command: list[str], port: int) -> Server:
    """Start a UDP echo server and wait until it echoes."""
    process = spawn(command)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            probe.sendto(b"ping", ("127.0.0.1", port))
            try:
                probe.recvfrom(64)
                return process
            except OSError:
                continue  # not listening yet: the probe timed out or was refused
    process.stop(kill=True)
    raise RuntimeError(f"{command[0]} did not echo")


@contextmanager
def running(process: Server) -> Iterator[Server]:
    """A started server, stopped (SIGTERM, as an operator would) when the block ends."""
    try:
        yield process
    finally:
        process.stop()


def measure_echo(generator: Any, name: str, command: list[str], port: int, seconds: float) -> dict:
    with running(start_udp(command, port)):
        return {"server": name, "echoes_per_second": generator.udp_echo(port, seconds),
                "lost": 0, "duplicated": 0, "reordered": 0}


def start(command: list[str], port: int, code: Path = REPO) -> Server:
    process = spawn(command, code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.05)  # a polled readiness check: these baselines print nothing we wait on
    process.stop(kill=True)
    raise RuntimeError(f"{command[0]} did not start")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


def measure_idle(generator: Any, name: str, command: list[str], code: Path, port: int, count: int) -> dict:
    """Memory per idle connection, and the time the `count` logins took."""
    with running(start(command, port, code)) as process:
        began = time.monotonic()
        per_connection = generator.idle_connections(port, count, lambda: rss_kib(process.pid))
        return {"server": name, "kib_per_connection": per_connection, "connections": count,
                "login_seconds": time.monotonic() - began, "lost": 0, "duplicated": 0, "reordered": 0}


# After a login storm, how long to watch the server's CPU: the summary of
# the storm's joins comes 5 s after the first (--quiet-joins).
SUMMARY_WINDOW_SECONDS = 6.0


@contextmanager
def redis_server(build: Path) -> Iterator[tuple[int, int]]:
    """Debian's redis-server on a free loopback port, in its own directory, saving nothing: (port, pid)."""
    port = free_port()
    directory = Path(tempfile.mkdtemp(dir=build, prefix="redis-"))
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(directory), "--logfile", ""], stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:  # its own word that it is ready
            if "Ready to accept connections" in line:
                break
        else:
            raise RuntimeError("redis-server did not start")
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(30)
        shutil.rmtree(directory, ignore_errors=True)


def process_tree(pid: int) -> list[int]:
    """`pid` and its children (the workers of --workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(child) for child in children)]


def measure_cluster(generator: Any, layout: str, scenario: dict, build: Path, chatd: Chatd = ("chatd", "chatd", REPO)
                    ) -> dict:
    """
    One fan-out scenario on one of CLUSTER_LAYOUTS, with a fresh
    redis-server: deliveries/s, cross-node latency, and the CPU time of the
    chatd processes and of Redis, counted once every client is in.
    """
    label, plugin, code = chatd
    twistd = str(Path(sys.executable).with_name("twistd"))
    base = [twistd, "-n", "--pidfile=", plugin, "--interface", "127.0.0.1", "--web-port", "0", "--irc-port", "0",
            *CHATD_UNTHROTTLED]
    with redis_server(build) as (redis_port, redis_pid):
        cluster = ["--cluster", f"redis://127.0.0.1:{redis_port}/0"]
        if layout == "one node":
            ports = [free_port()] * 2
            commands = [[*base, "--port", str(ports[0])]]
        elif layout == "two nodes":
            ports = [free_port(), free_port()]
            commands = [[*base, "--port", str(port), *cluster] for port in ports]
        else:
            ports = [free_port()] * 2
            commands = [[*base, "--port", str(ports[0]), *cluster, "--workers", "2"]]
        processes = [start(command, port, code) for command, port in zip(commands, ports)]
        try:
            pids: list[int] = []
            marks: list[float] = []

            def ready() -> None:
                pids.extend(pid for process in processes for pid in process_tree(process.pid))
                marks.extend([sum(cpu_seconds(pid) for pid in pids), cpu_seconds(redis_pid)])

            result = generator.fan_out(ports[0], processes=2, ports=ports, others_only=True, ready=ready, **scenario)
            chatd_cpu = sum(cpu_seconds(pid) for pid in pids) - marks[0]
            return {
                "server": f"{label} {layout}",
                "deliveries_per_second": result.deliveries_per_second,
                "p50_ms": result.percentile(0.5), "p99_ms": result.percentile(0.99), "max_ms": result.percentile(1.0),
                "lost": result.lost, "duplicated": result.duplicated, "reordered": result.reordered,
                "server_cpu_seconds": chatd_cpu, "redis_cpu_seconds": cpu_seconds(redis_pid) - marks[1],
                "server_cpu_us_per_delivery": chatd_cpu / result.deliveries * 1e6 if result.deliveries else float("nan"),
                "seconds": result.seconds,
            }
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.stop()


def print_before_table(runs: list[dict]) -> None:
    """
    The door and cluster scenarios, chatd beside chatd before: deliveries/s,
    CPU per delivery and p99, medians of interleaved runs.  The bound
    (BEFORE_RATIO) is on CPU per delivery, and on deliveries/s or, in a
    latency scenario (whose rate is its senders'), on p99.
    """
    print()
    print("| scenario | chatd, chatd before: M deliveries/s | ratio | CPU us per delivery | ratio (before / chatd) | "
          f"p99 ms | ratio (before / chatd) | >= {BEFORE_RATIO:g}x |")
    print("|---|---|---|---|---|---|---|---|")
    for run in runs:
        run.setdefault("_key", (run["scenario"], run["server"].removeprefix("chatd before ").removeprefix("chatd ")))
    shown = dict.fromkeys(run["_key"] for run in runs if run["server"].startswith("chatd before ")
                          and "deliveries_per_second" in run)
    for scenario, what in shown:
        now, then = (median_of(runs, scenario, f"{label} {what}", "deliveries_per_second")
                     for label in ("chatd", "chatd before"))
        cost_now, cost_then = (median_of(runs, scenario, f"{label} {what}", "server_cpu_us_per_delivery")
                               for label in ("chatd", "chatd before"))
        rate, cost = now / then, cost_then / cost_now
        late_now, late_then = (median_of(runs, scenario, f"{label} {what}", "p99_ms") for label in ("chatd", "chatd before"))
        lateness = late_then / late_now if "latency" in scenario else rate  # a latency scenario's rate is its senders'
        print(f"| {scenario}, {what} | {now / 1e6:.3f}, {then / 1e6:.3f} | {rate:.2f}x | {cost_now:.3f}, "
              f"{cost_then:.3f} | {cost:.2f}x | {late_now:.2f}, {late_then:.2f} | {late_then / late_now:.2f}x | "
              f"{'yes' if min(lateness, cost) >= BEFORE_RATIO else 'NO'} |")
    storms = dict.fromkeys(run["_key"][1] for run in runs if run["scenario"] == "doors: log in"
                           and run["server"].startswith("chatd before "))
    for what in storms:
        now, then = (median_of(runs, "doors: log in", f"{label} {what}", "login_seconds")
                     for label in ("chatd", "chatd before"))
        print(f"| login storm, {what}: seconds | {now:.2f}, {then:.2f} | {then / now:.2f}x | - | - | - | - | "
              f"{'yes' if then / now >= BEFORE_RATIO else 'NO'} |")
    for run in runs:
        run.pop("_key", None)


def print_instruction_table(counts: dict[str, dict[str, float]]) -> None:
    """chatd's instructions per login and per line beside chatd before's (instructions.py), and the bound."""
    print()
    print(f"| scenario | chatd, chatd before: k instructions per step | ratio (before / chatd) | >= {BEFORE_RATIO:g}x |")
    print("|---|---|---|---|")
    for scenario, (unit, _, _) in instructions.SCENARIOS.items():
        now, then = counts[scenario]["chatd"], counts[scenario]["chatd before"]
        print(f"| {scenario} (per {unit}) | {now / 1e3:.1f}, {then / 1e3:.1f} | {then / now:.3f}x | "
              f"{'yes' if then / now >= BEFORE_RATIO else 'NO'} |")


def median_of(runs: list[dict], scenario: str, server: str, key: str) -> float:
    """The median of `key` over the runs of `server` in `scenario`."""
    return statistics.median(run[key] for run in runs if run["scenario"] == scenario and run["server"] == server)


def check_correct(runs: list[dict], scenarios: dict, what: str) -> None:
    """Print whether every run of these scenarios got every line once and in order; exit 1 if not."""
    checked = [run for run in runs if run["scenario"] in scenarios]
    correct = all(run["lost"] == run["duplicated"] == run["reordered"] == 0 for run in checked)
    print(f"\ncorrectness of the {what} runs (no loss, no duplicate, no reordering): {'yes' if correct else 'NO'}")
    if not correct:
        raise SystemExit(1)


def print_cluster_table(scenarios: dict, runs: list[dict]) -> None:
    """Two nodes and two workers beside one node, with the issue's targets."""
    def median(scenario: str, layout: str, key: str) -> float:
        return median_of(runs, scenario, f"chatd {layout}", key)

    print()
    print("| scenario | layout | M deliveries/s | per node / one node | p50 ms | p99 ms | chatd CPU us per delivery "
          "| Redis CPU s | target | met |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        if not any(run["scenario"] == scenario for run in runs):
            continue
        alone = {key: median(scenario, "one node", key) for key in ("deliveries_per_second", "p50_ms")}
        for layout in CLUSTER_LAYOUTS:
            values = {key: median(scenario, layout, key) for key in (
                "deliveries_per_second", "p50_ms", "p99_ms", "server_cpu_us_per_delivery", "redis_cpu_seconds")}
            nodes = 1 if layout == "one node" else 2
            per_node = values["deliveries_per_second"] / nodes / alone["deliveries_per_second"]
            target, met = "", ""
            if layout == "two nodes" and "latency" in scenario:
                added = values["p50_ms"] - alone["p50_ms"]
                target, met = f"p50 + < {CLUSTER_P50_ADDED_MS:g} ms (+{added:.2f})", (
                    "yes" if added < CLUSTER_P50_ADDED_MS else "NO")
            elif layout == "two nodes":
                target, met = f"per node >= {CLUSTER_PER_NODE_RATIO:g}x", (
                    "yes" if per_node >= CLUSTER_PER_NODE_RATIO else "NO")
            print(f"| {scenario} | {layout} | {values['deliveries_per_second'] / 1e6:.3f} | {per_node:.2f}x | "
                  f"{values['p50_ms']:.2f} | {values['p99_ms']:.2f} | {values['server_cpu_us_per_delivery']:.3f} | "
                  f"{values['redis_cpu_seconds']:.2f} | {target} | {met} |")
    check_correct(runs, scenarios, "cluster")


def measure_door_idle(generator: Any, door: str, count: int, chatd: Chatd = ("chatd", "chatd", REPO)) -> dict:
    """Memory per idle user logged in through one front door (the server's RSS, `count` of them)."""
    label, plugin, code = chatd
    port, irc_port, web_port = free_port(), free_port(), free_port()
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", plugin, "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", str(web_port), "--irc-port", str(irc_port),
               *CHATD_UNTHROTTLED]
    door_port = {"irc": irc_port, "web": web_port}.get(door, port)
    with running(start(command, door_port, code)) as process:
        per_connection = generator.idle_connections(door_port, count, lambda: rss_kib(process.pid), door)
        return {"server": f"{label} {door}", "kib_per_connection": per_connection, "connections": count,
                "lost": 0, "duplicated": 0, "reordered": 0}


def measure_door_logins(generator: Any, door: str, count: int, chatd: Chatd = ("chatd", "chatd", REPO),
                        greeting_first: bool = False) -> dict:
    """
    A login storm into one chatd on one front door: the seconds until every
    client is in, and the server's CPU time in the window after it, when the
    big channel's summary goes out (to IRC clients, as a JOIN line for each
    who came).  With `greeting_first`, telnet clients read the greeting
    before they send their nickname, as people do (the load generator's
    otherwise type at once, as scripts do, and are answered at once).
    """
    label, plugin, code = chatd
    port, irc_port = free_port(), free_port()
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", plugin, "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", "0", "--irc-port", str(irc_port), *CHATD_UNTHROTTLED]
    with running(start(command, irc_port if door == "irc" else port, code)) as process:  # the door's own port
        marks: list[float] = [cpu_seconds(process.pid)]

        def after() -> None:
            marks.append(cpu_seconds(process.pid))
            time.sleep(SUMMARY_WINDOW_SECONDS)  # a measurement window, not a wait for something
            marks.append(cpu_seconds(process.pid))

        seconds = generator.log_in_seconds(irc_port if door == "irc" else port, count, door, after,
                                           greeting_first=greeting_first)
        return {"server": f"{label} {door}{', greeting first' if greeting_first else ''}", "login_seconds": seconds, "summary_cpu_seconds": marks[2] - marks[1],
                "server_cpu_ms_per_login": (marks[1] - marks[0]) / count * 1e3,
                "connections": count, "lost": 0, "duplicated": 0, "reordered": 0}


def measure_tls_logins(generator: Any, count: int, tls: bool) -> dict:
    """A login storm of telnet clients on the chat port, over TLS or not: its seconds, and the server's CPU time."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", "chatd", "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", "0", "--irc-port", "0", "--web-tls-port", "0",
               "--irc-tls-port", "0", *CHATD_UNTHROTTLED]
    with running(start(command, port)) as process:
        cpu = cpu_seconds(process.pid)
        seconds = generator.log_in_seconds(port, count, tls=tls)
        return {"server": f"chatd telnet{' TLS' if tls else ''}", "login_seconds": seconds,
                "server_cpu_ms_per_login": (cpu_seconds(process.pid) - cpu) / count * 1e3,
                "connections": count, "lost": 0, "duplicated": 0, "reordered": 0}


def registered_state(count: int, build: Path) -> Path:
    """
    A state directory whose store holds `count` registered nicknames,
    storm0 ... storm(count-1), each with STORM_PASSWORD: hashed once, with
    chatd's own argon2id parameters (a hash holds its salt, and one serves
    them all).
    """
    from argon2 import PasswordHasher, Type

    from chatd.store.passwords import LANES, MEMORY_KIB, TIME_COST
    from chatd.store.sqlite import STORE_FILE, check

    state = Path(tempfile.mkdtemp(dir=build, prefix="passwords-"))
    path = state / STORE_FILE
    check(path)
    kept_hash = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=LANES,
                               type=Type.ID).hash(STORM_PASSWORD)
    with sqlite3.connect(path) as connection:
        now = time.time()  # used now: not expired (--account-expiry-days)
        connection.executemany("INSERT INTO accounts (key, nick, hash, registered_at, seen_at) VALUES (?, ?, ?, ?, ?)",
                               [(f"storm{number}", f"storm{number}", kept_hash, now, now) for number in range(count)])
    connection.close()
    return state


async def _password_storm(port: int, count: int) -> tuple[float, int]:
    """`count` registered users log in at once over telnet, each with its password: (seconds, busy answers)."""
    busy = 0

    async def one(number: int) -> asyncio.StreamWriter:
        nonlocal busy
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readuntil(b"nickname:\r\n")
        writer.write(f"storm{number}\r\n".encode())
        while True:
            line = await reader.readuntil(b"\r\n")
            if b"password:" in line:
                writer.write(STORM_PASSWORD.encode() + b"\r\n")
            elif b"try again in a moment" in line:
                busy += 1  # the password thread's queue was full: asked again, and answered again
            elif b"*** Hello" in line:  # (after IAC WILL ECHO, the prompt's one telnet request)
                return writer

    began = time.monotonic()
    writers = await asyncio.wait_for(asyncio.gather(*(one(number) for number in range(count))), 600)
    seconds = time.monotonic() - began
    for writer in writers:
        writer.close()
    return seconds, busy


def measure_password_storm(generator: Any, count: int, scenario: dict, storm: bool, build: Path) -> dict:
    """
    The latency scenario on a chatd whose store holds `count` accounts:
    with `storm`, they all log in with their passwords as it starts.  The
    others' latency, the storm's seconds, and the server's CPU time.
    """
    port = free_port()
    state = registered_state(count, build)
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", "chatd", "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", "0", "--irc-port", "0", "--state-dir", str(state),
               *CHATD_UNTHROTTLED]
    with running(start(command, port)) as process:
        cpu = cpu_seconds(process.pid)
        stormed: dict[str, Any] = {}
        threads: list[threading.Thread] = []

        def ready() -> None:
            if storm:
                thread = threading.Thread(target=lambda: stormed.update(
                    zip(("seconds", "busy"), asyncio.run(_password_storm(port, count)))))
                thread.start()
                threads.append(thread)

        result = generator.fan_out(port, ready=ready, **scenario)
        for thread in threads:
            thread.join(600)
        shutil.rmtree(state, ignore_errors=True)
        if storm and "seconds" not in stormed:
            raise RuntimeError("the password storm did not finish")
        return {"server": "chatd, storm" if storm else "chatd, no storm", "p50_ms": result.percentile(0.5),
                "p99_ms": result.percentile(0.99), "max_ms": result.percentile(1.0),
                "deliveries_per_second": result.deliveries_per_second, "lost": result.lost,
                "duplicated": result.duplicated, "reordered": result.reordered,
                "storm_seconds": stormed.get("seconds", 0.0), "busy_answers": stormed.get("busy", 0),
                "server_cpu_seconds": cpu_seconds(process.pid) - cpu}


def print_password_table(runs: list[dict], count: int) -> None:
    stormed = [run for run in runs if run["scenario"] == "password storm"]
    check_correct(stormed, {"password storm": None}, "password storm")
    quiet, storm = (median_of(stormed, "password storm", server, "p99_ms")
                    for server in ("chatd, no storm", "chatd, storm"))
    seconds = statistics.median(run["storm_seconds"] for run in stormed if run["server"] == "chatd, storm")
    busy = max(run["busy_answers"] for run in stormed if run["server"] == "chatd, storm")
    ratio = storm / quiet
    print(f"\npassword storm: {count} registered users log in with their passwords while 200 others chat")
    print(f"  the others' p99 latency: {quiet:.2f} ms without the storm, {storm:.2f} ms with it: {ratio:.2f}x "
          f"(target <= {PASSWORD_STORM_P99_TARGET:.1f}x) {'ok' if ratio <= PASSWORD_STORM_P99_TARGET else 'MISSED'}")
    print(f"  the storm: {seconds:.1f} s for {count} logins ({seconds / count * 1e3:.1f} ms each, one password "
          f"thread); 'try again' answers: {busy}")


def print_tls_table(scenarios: dict, runs: list[dict]) -> None:
    """TLS clients against plain ones (telnet on the chat port), medians of the same run's rounds."""
    def median(scenario: str, server: str, key: str) -> float:
        return median_of(runs, scenario, server, key)

    print()
    print("| scenario | measure | TLS | plain | TLS / plain | target | met |")
    print("|---|---|---|---|---|---|---|")
    rows = [(scenario, key) for scenario in scenarios for key in ("server_cpu_us_per_delivery", "p50_ms", "p99_ms")]
    rows.append(("tls: log in", "login_seconds"))
    rows.append(("tls: log in", "server_cpu_ms_per_login"))
    for scenario, key in rows:
        if not any(run["scenario"] == scenario for run in runs):
            continue
        tls, plain = median(scenario, "chatd telnet TLS", key), median(scenario, "chatd telnet", key)
        ratio = tls / plain
        target = TLS_TARGETS.get(key)
        met = "" if target is None else ("yes" if ratio <= target else "NO")
        print(f"| {scenario} | {key} | {tls:.3f} | {plain:.3f} | {ratio:.2f}x | "
              f"{'' if target is None else f'<= {target:g}x'} | {met} |")
    check_correct(runs, scenarios, "TLS")


def measure_logins(generator: Any, name: str, command: list[str], code: Path, port: int, count: int) -> dict:
    """
    A storm of `count` logins: its seconds, and the server's CPU time per
    login, read while the clients are still in (their leaving is not a login).
    """
    with running(start(command, port, code)) as process:
        marks = [cpu_seconds(process.pid)]
        seconds = generator.log_in_seconds(port, count, after=lambda: marks.append(cpu_seconds(process.pid)))
        return {"server": name, "login_seconds": seconds, "connections": count,
                "server_cpu_ms_per_login": (marks[1] - marks[0]) / count * 1e3,
                "lost": 0, "duplicated": 0, "reordered": 0}


def measure(generator: Any, name: str, command: list[str], code: Path, port: int, scenario: dict,
            processes: int) -> dict:
    with running(start(command, port, code)) as process:
        cpu = cpu_seconds(process.pid)
        if "channels" in scenario:
            scenario = dict(scenario, join=name in WITH_CHANNELS)
        result = generator.fan_out(port, processes=processes, **scenario)
        return {
            "server": name,
            "deliveries_per_second": result.deliveries_per_second,
            "p50_ms": result.percentile(0.5), "p90_ms": result.percentile(0.9),
            "p99_ms": result.percentile(0.99), "max_ms": result.percentile(1.0),
            "lost": result.lost, "duplicated": result.duplicated, "reordered": result.reordered,
            "server_cpu_seconds": cpu_seconds(process.pid) - cpu,
            "server_rss_mib": rss_mib(process.pid),
            "generator_cpu_seconds": result.generator_cpu_seconds,
            "seconds": result.seconds,
        }


def measure_door(generator: Any, door: str, scenario: dict, processes: int, chatd: Chatd = ("chatd", "chatd", REPO),
                 tls: bool = False) -> dict:
    """
    One fan-out scenario against a fresh chatd, its clients on one front
    door: "telnet", "web" or "irc"; with `tls`, over TLS on that door's port.
    """
    label, plugin, code = chatd
    port, web_port, irc_port = free_port(), free_port(), free_port()
    command = [str(Path(sys.executable).with_name("twistd")), "-n", "--pidfile=", plugin, "--port", str(port),
               "--interface", "127.0.0.1", "--web-port", str(web_port), "--irc-port", str(irc_port),
               *CHATD_UNTHROTTLED]
    target = {"telnet": port, "web": web_port, "irc": irc_port}[door]
    with running(start(command, target, code)) as process:  # ready when the door's own port is
        logged_in: list[float] = []  # the server's CPU time once every client is in: the count starts there
        result = generator.fan_out(target, processes=processes, door=door,
                                   ready=lambda: logged_in.append(cpu_seconds(process.pid)),
                                   **({"tls": True} if tls else {}), **scenario)
        cpu = cpu_seconds(process.pid) - logged_in[0]
        return {
            "server": f"{label} {door}{' TLS' if tls else ''}",
            "deliveries_per_second": result.deliveries_per_second,
            "server_cpu_us_per_delivery": cpu / result.deliveries * 1e6 if result.deliveries else float("nan"),
            "p50_ms": result.percentile(0.5), "p99_ms": result.percentile(0.99), "max_ms": result.percentile(1.0),
            "lost": result.lost, "duplicated": result.duplicated, "reordered": result.reordered,
            "server_cpu_seconds": cpu, "seconds": result.seconds,
        }


def print_door_table(scenarios: dict, runs: list[dict]) -> None:
    """
    The web and IRC doors beside telnet.  The targets are on the server's
    CPU time per delivery (the cost of fan-out, what the issues ask about),
    counted from when every client is logged in; deliveries/s also depend on
    how fast the load generator reads each kind of client.
    """
    def median(scenario: str, door: str, key: str) -> float:
        return median_of(runs, scenario, f"chatd {door}", key)

    print()
    print("| scenario | door | M deliveries/s (telnet) | server CPU us per delivery (telnet) | CPU per delivery "
          "/ telnet's | p50 ms (telnet) | p99 ms (telnet) | target | met |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario in scenarios:
        for door, target in DOOR_TARGETS.items():
            if not any(run["scenario"] == scenario and run["server"] == f"chatd {door}" for run in runs):
                continue
            rates, costs, p50, p99 = ({name: median(scenario, name, key) for name in (door, "telnet")} for key in (
                "deliveries_per_second", "server_cpu_us_per_delivery", "p50_ms", "p99_ms"))
            ratio = costs[door] / costs["telnet"]
            print(f"| {scenario} | {door} | {rates[door] / 1e6:.3f} ({rates['telnet'] / 1e6:.3f}) | "
                  f"{costs[door]:.3f} ({costs['telnet']:.3f}) | {ratio:.2f}x | {p50[door]:.2f} ({p50['telnet']:.2f}) | "
                  f"{p99[door]:.2f} ({p99['telnet']:.2f}) | <= {target:g}x | {'yes' if ratio <= target else 'NO'} |")
    idle = {door: [run["kib_per_connection"] for run in runs
                   if run["scenario"] == "doors: idle memory" and run["server"] == f"chatd {door}"]
            for door in ("web", "irc", "telnet")}
    if idle["telnet"]:
        print("\n| idle memory | KiB per user | target | met |\n|---|---|---|---|")
        for door, values in idle.items():
            value = statistics.median(values)
            print(f"| {door} | {value:.2f} | <= {IDLE_KIB_TARGET:g} | {'yes' if value <= IDLE_KIB_TARGET else 'NO'} |")
    storms = {door: [run for run in runs if run["scenario"] == "doors: log in" and run["server"] == f"chatd {door}"]
              for door in ("irc", "telnet")}
    if storms["irc"]:
        irc, telnet = ({key: statistics.median(run[key] for run in storms[door])
                        for key in ("login_seconds", "summary_cpu_seconds")} for door in ("irc", "telnet"))
        print(f"\nlogin storm of {storms['irc'][0]['connections']}: IRC {irc['login_seconds']:.2f} s, then "
              f"{irc['summary_cpu_seconds']:.2f} s CPU for the summary's JOIN lines; telnet "
              f"{telnet['login_seconds']:.2f} s, then {telnet['summary_cpu_seconds']:.2f} s")
    waiting = [run for run in runs if run["scenario"] == "doors: log in" and run["server"].endswith("greeting first")]
    if waiting and storms["telnet"]:
        print(f"the telnet storm, clients typing at once: "
              f"{statistics.median(run['login_seconds'] for run in storms['telnet']):.2f} s, "
              f"{statistics.median(run['server_cpu_ms_per_login'] for run in storms['telnet']):.3f} ms CPU per "
              f"login; reading the greeting first: {statistics.median(run['login_seconds'] for run in waiting):.2f} s, "
              f"{statistics.median(run['server_cpu_ms_per_login'] for run in waiting):.3f} ms CPU per login")
    check_correct(runs, scenarios, "door")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller scenarios")
    parser.add_argument("--repetitions", type=int, default=None,
                        help="rounds of every scenario (default 3; with --check, gate.py's ROUNDS)")
    parser.add_argument("--results", default=str(HERE / "results.json"))
    parser.add_argument("--processes", type=int, default=1, help="load generator processes")
    parser.add_argument("--python-generator", action="store_true", help="use the Python load generator")
    parser.add_argument("--doors-only", action="store_true",
                        help="only the front-door scenarios (web and IRC beside telnet)")
    parser.add_argument("--tls-only", action="store_true",
                        help="only the TLS scenarios (TLS clients beside plain ones, and their login storms)")
    parser.add_argument("--cluster-only", action="store_true",
                        help="only the cluster scenarios (two nodes and two workers beside one node, with Redis)")
    parser.add_argument("--before", default=BEFORE,
                        help=f"git revision of the 'chatd before' column (default {BEFORE}); '' leaves it out")
    parser.add_argument("--passwords-only", action="store_true",
                        help="only the storm of password logins, against the same chat without it")
    parser.add_argument("--check", action="store_true",
                        help="the gate of every change on the hot path: a short version of each scenario against "
                             "chatd before, failing when any figure is more than 10%% worse (see gate.py)")
    parser.add_argument("--instructions", action="store_true",
                        help="only the instruction counts (valgrind): chatd's work per login and per line "
                             "against chatd before's")
    args = parser.parse_args()
    build = Path(tempfile.gettempdir()) / "chatd-benchmarks"
    build.mkdir(exist_ok=True)
    before = build_before(args.before, build) if args.before else None
    if args.check:
        import gate

        c_generator = compile_c(HERE / "c" / "loadgen.c", build)
        if before is None or c_generator is None:
            raise SystemExit("--check needs a 'chatd before' (--before) and a C compiler (for c/loadgen.c)")
        passed = gate.check(CLoadGenerator(c_generator), ("chatd", "chatd", REPO),
                            ("chatd before", "chatd-before", before), args.repetitions or gate.ROUNDS)
        raise SystemExit(0 if passed else 1)
    args.repetitions = args.repetitions or 3
    if args.instructions:
        if before is None or not instructions.available():
            raise SystemExit("--instructions needs valgrind and a 'chatd before' (--before)")
        print_instruction_table(instructions.measure({"chatd": REPO, "chatd before": before}))
        return
    # chatd, and chatd before, for the door and cluster scenarios: (label, twistd plugin, code).
    chatds: list[Chatd] = [("chatd", "chatd", REPO)] + ([("chatd before", "chatd-before", before)] if before else [])
    c_generator = None if args.python_generator else compile_c(HERE / "c" / "loadgen.c", build)
    generator: Any = CLoadGenerator(c_generator) if c_generator else python_generator
    print(f"load generator: {'C' if c_generator else 'Python'}, {args.processes} process(es)", flush=True)
    scenarios = QUICK if args.quick else SCENARIOS
    idle = QUICK_IDLE_CONNECTIONS if args.quick else IDLE_CONNECTIONS
    runs: list[dict] = []
    cluster_scenarios = QUICK_CLUSTER if args.quick else CLUSTER_SCENARIOS
    can_cluster = c_generator is not None and shutil.which("redis-server") is not None
    tls_scenarios = QUICK_TLS if args.quick else TLS_SCENARIOS
    password_storm = QUICK_PASSWORD_STORM if args.quick else PASSWORD_STORM
    for repetition in range(args.repetitions):
        if args.passwords_only:
            for storm in (True, False):  # interleaved
                run = measure_password_storm(generator, password_storm, QUICK_PASSWORD_STORM_SCENARIO if args.quick
                                             else PASSWORD_STORM_SCENARIO, storm, build)
                run.update(scenario="password storm", repetition=repetition)
                runs.append(run)
                print(f"  {'password storm':>15} {run['server']:>16}: latency p50/99/max {run['p50_ms']:.2f}/"
                      f"{run['p99_ms']:.2f}/{run['max_ms']:.2f} ms, storm {run['storm_seconds']:.1f} s "
                      f"('try again': {run['busy_answers']}), server cpu {run['server_cpu_seconds']:.2f} s  "
                      f"lost {run['lost']} dup {run['duplicated']} reord {run['reordered']}", flush=True)
            continue
        if c_generator and not args.doors_only and not args.cluster_only:
            for scenario_name, scenario in tls_scenarios.items():
                for tls in (True, False):  # interleaved
                    run = measure_door(generator, "telnet", scenario, args.processes, tls=tls)
                    run.update(scenario=scenario_name, repetition=repetition)
                    runs.append(run)
                    print(f"  {scenario_name:>20} {run['server']:>17}: {run['deliveries_per_second'] / 1e6:6.3f} M/s, "
                          f"server {run['server_cpu_us_per_delivery']:.3f} us CPU per delivery, "
                          f"latency p50/99/max {run['p50_ms']:.2f}/{run['p99_ms']:.2f}/{run['max_ms']:.2f} ms  "
                          f"lost {run['lost']} dup {run['duplicated']} reord {run['reordered']}", flush=True)
            storm = QUICK_TLS_LOGIN_STORM if args.quick else TLS_LOGIN_STORM
            for tls in (True, False):
                run = measure_tls_logins(generator, storm, tls)
                run.update(scenario="tls: log in", repetition=repetition)
                runs.append(run)
                print(f"  {'tls: log in ' + str(storm):>20} {run['server']:>17}: {run['login_seconds']:.2f} s, "
                      f"{run['server_cpu_ms_per_login']:.3f} ms server CPU per login", flush=True)
        elif not c_generator and repetition == 0:
            print("  tls: left out (TLS clients need c/loadgen.c, and so a C compiler and OpenSSL's headers)")
        if args.tls_only:
            continue
        for scenario_name, scenario in (cluster_scenarios if not args.doors_only else {}).items():
            if not can_cluster:
                print(f"  {scenario_name}: left out (it needs c/loadgen.c, so a C compiler, and redis-server)")
                continue
            for layout, chatd in ((layout, chatd) for layout in CLUSTER_LAYOUTS for chatd in chatds):  # interleaved
                run = measure_cluster(generator, layout, scenario, build, chatd)
                run.update(scenario=scenario_name, repetition=repetition)
                runs.append(run)
                print(f"  {scenario_name:>24} {run['server']:>18}: {run['deliveries_per_second'] / 1e6:6.3f} M/s, "
                      f"cross-node latency p50/99/max {run['p50_ms']:.2f}/{run['p99_ms']:.2f}/{run['max_ms']:.2f} ms, "
                      f"chatd {run['server_cpu_us_per_delivery']:.3f} us CPU per delivery, redis "
                      f"{run['redis_cpu_seconds']:.2f} s  lost {run['lost']} dup {run['duplicated']} "
                      f"reord {run['reordered']}", flush=True)
        if args.cluster_only:
            continue
        for scenario_name, scenario in ({} if args.doors_only else scenarios).items():
            port = free_port()
            for server, (command, code) in server_commands(port, build, before).items():  # interleaved
                run = measure(generator, server, command, code, port, scenario, args.processes)
                run.update(scenario=scenario_name, repetition=repetition)
                runs.append(run)
                print(f"  {scenario_name:>15} {server:>14}: {run['deliveries_per_second'] / 1e6:6.3f} M/s "
                      f"latency p50/90/99/max {run['p50_ms']:.1f}/{run['p90_ms']:.1f}/{run['p99_ms']:.1f}/"
                      f"{run['max_ms']:.1f} ms  lost {run['lost']} dup {run['duplicated']} "
                      f"reord {run['reordered']}  server cpu {run['server_cpu_seconds']:.2f} s, "
                      f"generator cpu {run['generator_cpu_seconds']:.2f} s in {run['seconds']:.2f} s", flush=True)
        door_scenarios = QUICK_DOORS if args.quick else DOOR_SCENARIOS
        for scenario_name, scenario in door_scenarios.items():
            if not c_generator:
                print(f"  {scenario_name}: left out (web and IRC clients need c/loadgen.c, and so a C compiler)")
                continue
            for door, chatd in ((door, chatd) for door in ("web", "irc", "telnet") for chatd in chatds):  # interleaved
                run = measure_door(generator, door, scenario, args.processes, chatd)
                run.update(scenario=scenario_name, repetition=repetition)
                runs.append(run)
                print(f"  {scenario_name:>20} {run['server']:>12}: {run['deliveries_per_second'] / 1e6:6.3f} M/s, "
                      f"server {run['server_cpu_us_per_delivery']:.3f} us CPU per delivery, "
                      f"latency p50/99/max {run['p50_ms']:.1f}/{run['p99_ms']:.1f}/{run['max_ms']:.1f} ms  "
                      f"lost {run['lost']} dup {run['duplicated']} reord {run['reordered']}  "
                      f"server cpu {run['server_cpu_seconds']:.2f} s in {run['seconds']:.2f} s", flush=True)
        if c_generator:  # memory per idle user, by the door they came in through
            for door, chatd in ((door, chatd) for door in ("web", "irc", "telnet") for chatd in chatds):
                run = measure_door_idle(generator, door, idle, chatd)
                run.update(scenario="doors: idle memory", repetition=repetition)
                runs.append(run)
                print(f"  {'doors: idle memory':>20} {run['server']:>18}: {run['kib_per_connection']:.2f} KiB per "
                      f"idle user ({idle} logged in)", flush=True)
        storm = QUICK_LOGIN_STORM if args.quick else LOGIN_STORM
        if c_generator:  # IRC clients in a storm, beside telnet ones: their member lists cost NAMES and summaries
            for door, chatd in ((door, chatd) for door in ("irc", "telnet") for chatd in chatds):
                run = measure_door_logins(generator, door, storm, chatd)
                run.update(scenario="doors: log in", repetition=repetition)
                runs.append(run)
                print(f"  {'doors: log in ' + str(storm):>15} {run['server']:>14}: {run['login_seconds']:.2f} s, then "
                      f"{run['summary_cpu_seconds']:.2f} s CPU for the summary", flush=True)
            # People at a telnet prompt read the greeting, sent after 50 ms of silence, before they type.
            run = measure_door_logins(generator, "telnet", storm, greeting_first=True)
            run.update(scenario="doors: log in", repetition=repetition)
            runs.append(run)
            print(f"  {'doors: log in ' + str(storm):>15} {run['server']:>14}: {run['login_seconds']:.2f} s, "
                  f"{run['server_cpu_ms_per_login']:.3f} ms CPU per login", flush=True)
        if args.doors_only:
            continue
        port = free_port()
        for server, (command, code) in server_commands(port, build, before).items():
            run = measure_logins(generator, server, command, code, port, storm)
            run.update(scenario=f"log in {LOGIN_STORM}", repetition=repetition)
            runs.append(run)
            print(f"  {'log in ' + str(storm):>15} {server:>14}: {run['login_seconds']:.2f} s, "
                  f"{run['server_cpu_ms_per_login']:.3f} ms CPU per login", flush=True)
        port = free_port()
        for server, (command, code) in server_commands(port, build, before).items():
            run = measure_idle(generator, server, command, code, port, idle)
            run.update(scenario="idle memory", repetition=repetition)
            runs.append(run)
            runs.append({**run, "scenario": f"log in {IDLE_CONNECTIONS}"})
            print(f"  {'idle memory':>15} {server:>14}: {run['kib_per_connection']:.2f} KiB per connection "
                  f"({idle} logged in, in {run['login_seconds']:.2f} s)", flush=True)
        port = free_port()
        for server, command in echo_commands(port, build).items():
            run = measure_echo(generator, server, command, port, 1.0 if args.quick else 3.0)
            run.update(scenario="udp echo", repetition=repetition)
            runs.append(run)
            print(f"  {'udp echo':>15} {server:>14}: {run['echoes_per_second'] / 1e3:.1f} k echoes/s", flush=True)
    Path(args.results).write_text(json.dumps(
        {"command": " ".join(["benchmarks/run.py", *sys.argv[1:]]), "machine": machine(),
         "generator": "C" if c_generator else "Python", "processes": args.processes,
         "scenarios": scenarios, "cluster_scenarios": cluster_scenarios, "idle_connections": idle,
         "runs": runs}, indent=1))
    if args.passwords_only:
        print_password_table(runs, password_storm)
        return
    if any(run["scenario"].startswith("tls: ") for run in runs):
        print_tls_table(tls_scenarios, runs)
    if args.tls_only:
        return
    if not args.doors_only and not args.cluster_only:
        print_table(scenarios, [run for run in runs if not run["scenario"].startswith(("doors: ", "cluster: ", "tls: "))])
    if not args.cluster_only:
        print_door_table(QUICK_DOORS if args.quick else DOOR_SCENARIOS, runs)
    if not args.doors_only:
        print_cluster_table(cluster_scenarios, runs)
    if before is not None:
        print_before_table(runs)
    if before is not None and not args.quick and not args.doors_only and not args.cluster_only:
        if instructions.available():
            print_instruction_table(instructions.measure({"chatd": REPO, "chatd before": before}))
        else:
            print("\ninstruction counts: left out (they need valgrind)")
    if args.quick:
        print("(--quick: scenarios smaller than the ones the targets are set for; it checks the machinery, "
              "not the speed)")


def machine() -> dict[str, Any]:
    """What the figures were measured on, for the results file."""
    import platform

    import twisted

    def version(command: list[str]) -> str | None:
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=10).stdout.splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return None

    models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
              if line.startswith("model name")]
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
        "cpu": models[0] if models else platform.machine(),
        "kernel": platform.release(), "python": platform.python_version(), "twisted": twisted.__version__,
        "node": version(["node", "--version"]), "cc": version(["cc", "--version"]),
    }


def print_table(scenarios: dict, runs: list[dict]) -> None:
    servers = list(dict.fromkeys(run["server"] for run in runs))  # chatd first

    def median(scenario: str, server: str, key: str) -> float:
        return median_of(runs, scenario, server, key)

    print()
    baselines = ("chatd before", "naive twisted", "C")
    print("| scenario | " + " | ".join(servers) + " | chatd / before | chatd / naive | chatd / C | targets | met |")
    print("|---|" + "---|" * (len(servers) + 5))
    rows = [*scenarios, "idle memory", f"log in {LOGIN_STORM}", f"log in {LOGIN_STORM} cpu",
            f"log in {IDLE_CONNECTIONS}", "udp echo"]
    if "latency" in rows:
        rows.insert(rows.index("latency") + 1, "latency p50")
    for row in rows:
        scenario = row.removesuffix(" p50").removesuffix(" cpu")  # the runs the row reads
        if row == "latency":
            key, unit, scale = "p99_ms", "ms p99", 1
        elif row == "latency p50":
            key, unit, scale = "p50_ms", "ms p50", 1
        elif row.endswith(" cpu"):
            key, unit, scale = "server_cpu_ms_per_login", "server CPU ms per login", 1
        elif scenario == "idle memory":
            key, unit, scale = "kib_per_connection", "KiB per idle connection", 1
        elif scenario.startswith("log in"):
            key, unit, scale = "login_seconds", "s", 1
        elif scenario == "udp echo":
            key, unit, scale = "echoes_per_second", "k echoes/s", 1e3
        else:
            key, unit, scale = "deliveries_per_second", "M deliveries/s", 1e6
        present = [server for server in servers if any(r["scenario"] == scenario and r["server"] == server for r in runs)]
        values = {server: median(scenario, server, key) / scale for server in present}
        cells = " | ".join(f"{values[server]:.3f}" if server in values else "-" for server in servers)
        ratios = {baseline: values["chatd"] / values[baseline] if values.get(baseline) else None
                  for baseline in baselines}
        goals, verdicts = [], []
        for baseline, comparison, target in TARGETS[row]:
            measured = values["chatd"] if baseline is None else ratios[baseline]
            verdicts.append("-" if measured is None else "yes" if (
                measured >= target if comparison == ">=" else measured <= target) else "NO")
            goals.append(f"{comparison} {target:g} KiB" if baseline is None else f"{comparison} {target:g}x {baseline}")
        shown = " | ".join("-" if ratio is None else f"{ratio:.2f}x" for ratio in ratios.values())
        print(f"| {scenario} ({unit}) | {cells} | {shown} | {'; '.join(goals) or '-'} | "
              f"{', '.join(verdicts) or '-'} |")
    correct = all(run["lost"] == run["duplicated"] == run["reordered"] == 0 for run in runs)
    print(f"\ncorrectness (every run: no loss, no duplicate, no reordering): {'yes' if correct else 'NO'}")
    if not correct:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
