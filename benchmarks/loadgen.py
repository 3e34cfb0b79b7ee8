"""
The load generators for chat fan-out benchmarks (loopback only, bounded):
`CLoadGenerator` drives c/loadgen.c, which is fast enough not to be the
limit, and also speaks chatd's WebSocket and IRC; the functions below are the same
generator (telnet only) in Python, used where there is no C compiler and by
the test suite.

N clients log in (first line: nickname, then wait for "*** Hello"); the
first K of them each send M lines of B bytes, as fast as the server takes
them or at R lines/s each.  With C channels, client i is in channel i % C
and counts only the lines of senders in its own channel; `join` says the
server has channels (each client then sends "/join #chK" and waits for
"*** You joined"); without, the server sends every line to everyone and the
clients skip the other channels' lines.  Every client checks that each sender's lines
arrive exactly once and in order, and samples the delivery latency (each
line carries its send time, from the system-wide monotonic clock).

The hot loop is written not to be the bottleneck: one non-blocking socket
per client in a selectors loop, lines parsed a whole read at a time by one
regular expression, and the generator's own CPU time reported.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import resource
import selectors
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LINE = re.compile(rb"^<c(\d+)> m \d+ (\d+) (\d+) ", re.MULTILINE)  # not history lines: "[12:00] <c1> ..."
LATENCY_SAMPLE_EVERY = 8


@dataclass
class Client:
    index: int
    sock: socket.socket
    buffer: bytes = b""
    next_seq: dict[int, int] = field(default_factory=dict)
    received: int = 0
    outgoing: bytearray = field(default_factory=bytearray)
    to_send: int = 0
    sent: int = 0


@dataclass
class Result:
    deliveries: int
    expected: int
    lost: int
    duplicated: int
    reordered: int
    seconds: float
    latencies_ms: list[float]
    generator_cpu_seconds: float

    @property
    def deliveries_per_second(self) -> float:
        return self.deliveries / self.seconds if self.seconds else 0.0

    @classmethod
    def combined(cls, parts: list[Result]) -> Result:
        """The result of several generator processes that ran together."""
        return cls(
            deliveries=sum(part.deliveries for part in parts),
            expected=sum(part.expected for part in parts),
            lost=sum(part.lost for part in parts),
            duplicated=sum(part.duplicated for part in parts),
            reordered=sum(part.reordered for part in parts),
            seconds=max(part.seconds for part in parts),
            latencies_ms=[latency for part in parts for latency in part.latencies_ms],
            generator_cpu_seconds=sum(part.generator_cpu_seconds for part in parts),
        )

    def percentile(self, fraction: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _connect(port: int, index: int) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return Client(index, sock)


def _login(clients: list[Client]) -> None:
    for client in clients:
        client.sock.sendall(b"c%d\r\n" % client.index)
    for client in clients:
        while b"*** Hello" not in client.buffer:
            chunk = client.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"client {client.index} closed during login")
            client.buffer += chunk
            if b"*** Hello" not in client.buffer and b"*** Error" in client.buffer:
                raise ConnectionError(f"client {client.index} refused during login: {client.buffer!r}")
        client.buffer = client.buffer[client.buffer.index(b"*** Hello") :].split(b"\n", 1)[1]
        client.sock.setblocking(False)


def _join_channels(clients: list[Client], channels: int) -> None:
    for client in clients:
        client.sock.setblocking(True)
        client.sock.sendall(b"/join #ch%d\r\n" % (client.index % channels))
    for client in clients:
        while b"*** You joined" not in client.buffer:
            if b"*** Error" in client.buffer:
                raise ConnectionError(f"client {client.index} refused a channel: {client.buffer!r}")
            chunk = client.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"client {client.index} closed while joining")
            client.buffer += chunk
        client.buffer = client.buffer[client.buffer.index(b"*** You joined"):]
        while b"\n" not in client.buffer:
            client.buffer += client.sock.recv(65536)
        client.buffer = client.buffer.split(b"\n", 1)[1]
        client.sock.setblocking(False)


def fan_out(
    port: int,
    clients: int,
    senders: int,
    lines: int,
    size: int = 64,
    rate: float | None = None,
    timeout: float = 120.0,
    processes: int = 1,
    channels: int = 0,
    join: bool = False,
) -> Result:
    """
    Run one fan-out scenario against a chat server on 127.0.0.1:port, with
    the clients spread over `processes` generator processes (client i in
    process i % processes), which log in, wait for each other, then start.
    """
    if processes <= 1:
        return _run_clients(port, list(range(clients)), clients, senders, lines, size, rate, timeout, None,
                            channels, join)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [
        context.Process(
            target=_worker,
            args=(results, port, list(range(worker, clients, processes)), clients, senders, lines, size, rate, timeout, barrier,
                  channels, join),
        )
        for worker in range(processes)
    ]
    for worker in workers:
        worker.start()
    parts = [results.get(timeout=timeout + 60) for _ in workers]
    for worker in workers:
        worker.join(10)
    return Result.combined(parts)



def _worker(results: Any, *args: Any) -> None:
    results.put(_run_clients(*args))


def _run_clients(
    port: int,
    indices: list[int],
    clients: int,
    senders: int,
    lines: int,
    size: int,
    rate: float | None,
    timeout: float,
    barrier: Any,
    channels: int = 0,
    join: bool = False,
) -> Result:
    """The clients with these indices; the first `senders` indices of all clients send."""
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    everyone = [_connect(port, index) for index in indices]
    _login(everyone)
    if channels and join:
        _join_channels(everyone, channels)
    if barrier is not None:
        barrier.wait()
    selector = selectors.DefaultSelector()
    for client in everyone:
        selector.register(client.sock, selectors.EVENT_READ, client)
    talkers = [client for client in everyone if client.index < senders]
    for client in talkers:
        client.to_send = lines
    def same_channel(sender: int, receiver: int) -> bool:
        return not channels or sender % channels == receiver % channels

    expected = sum(lines for client in everyone for sender in range(senders)
                   if sender != client.index and same_channel(sender, client.index))
    latencies: list[float] = []
    deliveries = lost = duplicated = reordered = 0
    start = time.monotonic()
    deadline = start + timeout
    padding = max(0, size - 40)

    def make_lines(client: Client, count: int) -> None:
        now = time.monotonic_ns()
        for _ in range(count):
            client.outgoing += b"m %d %d %d %s\r\n" % (client.index, client.sent, now, b"x" * padding)
            client.sent += 1

    while deliveries < expected and time.monotonic() < deadline:
        now = time.monotonic()
        for client in talkers:
            if client.sent < client.to_send and len(client.outgoing) < 65536:
                due = client.to_send - client.sent if rate is None else min(
                    client.to_send - client.sent, int((now - start) * rate) + 1 - client.sent)
                if due > 0:
                    make_lines(client, min(due, 256))
            if client.outgoing:
                try:
                    written = client.sock.send(client.outgoing)
                    del client.outgoing[:written]
                except BlockingIOError:
                    pass
        for key, _ in selector.select(timeout=0.001 if rate is not None else 0.01):
            client = key.data
            try:
                chunk = client.sock.recv(1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError(f"server closed client {client.index}")
            data = client.buffer + chunk
            cut = data.rfind(b"\n") + 1
            client.buffer = data[cut:]
            arrived = time.monotonic_ns()
            for sender_text, seq_text, sent_ns in LINE.findall(data, 0, cut):
                sender, seq = int(sender_text), int(seq_text)
                if not same_channel(sender, client.index):
                    continue  # another channel's line, from a server without channels
                want = client.next_seq.get(sender, 0)
                if seq == want:
                    client.next_seq[sender] = seq + 1
                elif seq > want:
                    lost += seq - want
                    client.next_seq[sender] = seq + 1
                elif seq < want:
                    duplicated += 1
                    reordered += 1
                deliveries += 1
                if seq % LATENCY_SAMPLE_EVERY == 0:
                    latencies.append((arrived - int(sent_ns)) / 1e6)
    seconds = time.monotonic() - start
    missing = expected - deliveries
    for client in everyone:
        client.sock.close()
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
    return Result(deliveries, expected, lost + max(0, missing - lost), duplicated, reordered, seconds, latencies, cpu)


@contextmanager
def _logged_in(port: int, count: int) -> Iterator[None]:
    """`count` clients connected and logged in, a batch at a time, for the block; then they leave."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    clients: list[Client] = []
    try:
        for start in range(0, count, 250):
            batch = [_connect(port, index) for index in range(start, min(count, start + 250))]
            _login(batch)
            clients += batch
        yield
    finally:
        for client in clients:
            client.sock.close()


def idle_connections(port: int, count: int, rss_kib: Any) -> float:
    """
    Log in `count` clients that then stay idle, and return the server's
    resident memory per connection in KiB (`rss_kib()` reads the server's).
    """
    before = rss_kib()
    with _logged_in(port, count):
        return (rss_kib() - before) / count


def log_in_seconds(port: int, count: int, after: Callable[[], None] | None = None) -> float:
    """Seconds to connect and log in `count` clients, who then leave; `after` runs while they are still in."""
    start = time.monotonic()
    with _logged_in(port, count):
        seconds = time.monotonic() - start
        if after is not None:
            after()
        return seconds


def udp_echo(port: int, seconds: float = 3.0, in_flight: int = 64, size: int = 64) -> float:
    """Echoes per second from a UDP echo server on 127.0.0.1:port, `in_flight` datagrams outstanding."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1.0)
    payload = b"e" * size
    for _ in range(in_flight):
        sock.send(payload)
    echoes = 0
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            try:
                sock.recv(2048)
            except socket.timeout:
                for _ in range(in_flight):  # a datagram was lost: refill the window
                    sock.send(payload)
                continue
            echoes += 1
            sock.send(payload)
    finally:
        sock.close()
    return echoes / seconds


def compile_c(source: Path, build: Path) -> Path | None:
    """
    `source` compiled into the directory `build` with the system's C
    compiler, or None without one.  A source that includes OpenSSL's
    headers (c/loadgen.c, for its TLS clients) is linked with OpenSSL.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    binary = build / source.stem
    libraries = ["-lssl", "-lcrypto"] if "#include <openssl/" in source.read_text() else []
    if not binary.exists() or binary.stat().st_mtime < source.stat().st_mtime:
        subprocess.run([compiler, "-O2", "-o", str(binary), str(source), *libraries], check=True)
    return binary


@dataclass
class CLoadGenerator:
    """c/loadgen.c: the same scenarios and checks as the Python generator, in C."""

    binary: Path

    def fan_out(self, port: int, clients: int, senders: int, lines: int, size: int = 64,
                rate: float | None = None, timeout: float = 120.0, processes: int = 1, channels: int = 0,
                join: bool = False, door: str = "telnet", ready: Callable[[], None] | None = None,
                ports: list[int] | None = None, others_only: bool = False, tls: bool = False) -> Result:
        """
        Like `fan_out`: client i in process i % processes; all log in, then
        all start together (`ready` is called just before).  With `door`
        "web" or "irc", over chatd's WebSocket or its IRC port (`port` is
        that door's; one channel), which only this generator speaks.  With
        `ports`, process i connects to ports[i % len(ports)] (the nodes of a
        cluster); with `others_only`, latency is sampled only on lines from
        senders of other processes (so, on different nodes, cross-node).
        With `tls`, every client speaks TLS on that port.
        """
        if door != "telnet" and channels:
            raise ValueError("the web and IRC clients are all in one channel")
        workers = [
            subprocess.Popen(
                [str(self.binary), "chat", str(ports[worker % len(ports)] if ports else port), str(clients),
                 str(senders), str(lines), str(size),
                 str(rate or 0), str(timeout), str(worker), str(processes), str(channels), str(int(join)),
                 *([door] if door != "telnet" else [])],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                env={**os.environ, "LOADGEN_OTHERS_ONLY": "1" if others_only else "0", "LOADGEN_TLS": str(int(tls))})
            for worker in range(processes)
        ]
        try:
            for worker in workers:  # every one logged in
                if worker.stdout.readline().strip() != "ready":
                    raise RuntimeError("the C load generator failed to log in")
            if ready is not None:
                ready()
            for worker in workers:
                worker.stdin.write("go\n")
                worker.stdin.flush()
            parts = [json.loads(worker.communicate(timeout=timeout + 60)[0]) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        return Result.combined([Result(**part) for part in parts])  # the JSON has Result's fields

    @contextmanager
    def _logged_in(self, port: int, count: int, door: str = "telnet", tls: bool = False,
                   greeting_first: bool = False) -> Iterator[None]:
        """
        Like `_logged_in`: c/loadgen.c holds the clients until its stdin
        closes (IRC clients with `door` "irc"; over TLS with `tls`; telnet
        clients that wait for the greeting before their nickname with
        `greeting_first`).
        """
        holder = subprocess.Popen([str(self.binary), "idle", str(port), str(count), *([door] if door != "telnet" else [])],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "LOADGEN_TLS": str(int(tls)),
                                       "LOADGEN_GREETING_FIRST": str(int(greeting_first))})
        try:
            if holder.stdout.readline().strip() != "ready":
                raise RuntimeError("the C load generator failed to log in")
            yield
        finally:
            holder.stdin.close()  # it lets go of its connections and ends
            holder.wait(30)

    def idle_connections(self, port: int, count: int, rss_kib: Any, door: str = "telnet") -> float:
        """Like `idle_connections` (over IRC or the WebSocket with `door` "irc" or "web": `port` is that door's)."""
        before = rss_kib()
        with self._logged_in(port, count, door):
            return (rss_kib() - before) / count

    def log_in_seconds(self, port: int, count: int, door: str = "telnet",
                       after: Callable[[], None] | None = None, tls: bool = False,
                       greeting_first: bool = False) -> float:
        """
        Like `log_in_seconds` (over IRC with `door` "irc"; over TLS with
        `tls`; as people at a telnet prompt, who read the greeting before
        they type, with `greeting_first`); `after` runs while the clients
        are still in.
        """
        start = time.monotonic()
        with self._logged_in(port, count, door, tls, greeting_first):
            seconds = time.monotonic() - start
            if after is not None:
                after()
            return seconds

    def udp_echo(self, port: int, seconds: float = 3.0, in_flight: int = 64, size: int = 64) -> float:
        """Like `udp_echo`."""
        finished = subprocess.run([str(self.binary), "udp", str(port), str(seconds), str(in_flight), str(size)],
                                  capture_output=True, text=True, check=True, timeout=seconds + 30)
        return float(finished.stdout)


def main() -> None:
    """One fan-out run against a chat server already listening on 127.0.0.1."""
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clients", type=int, default=100, help="N clients log in")
    parser.add_argument("--senders", type=int, default=10, help="K of them send")
    parser.add_argument("--lines", type=int, default=200, help="M lines each")
    parser.add_argument("--size", type=int, default=64, help="of B bytes")
    parser.add_argument("--rate", type=float, default=None, help="R lines/s per sender (default: as fast as taken)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--python", action="store_true", help="the Python generator, not c/loadgen.c")
    args = parser.parse_args()
    binary = None if args.python else compile_c(Path(__file__).parent / "c" / "loadgen.c",
                                                Path(tempfile.gettempdir()))
    generator: Any = CLoadGenerator(binary) if binary else None
    run = generator.fan_out if generator else fan_out
    result = run(args.port, args.clients, args.senders, args.lines, args.size, args.rate, processes=args.processes)
    print(f"{result.deliveries} of {result.expected} deliveries in {result.seconds:.2f} s: "
          f"{result.deliveries_per_second / 1e6:.3f} M/s; latency ms p50 {result.percentile(0.5):.2f} "
          f"p90 {result.percentile(0.9):.2f} p99 {result.percentile(0.99):.2f} max {result.percentile(1.0):.2f}; "
          f"lost {result.lost}, duplicated {result.duplicated}, reordered {result.reordered}; "
          f"generator CPU {result.generator_cpu_seconds:.2f} s ({'Python' if generator is None else 'C'})")
    raise SystemExit(0 if result.lost == result.duplicated == result.reordered == 0 else 1)


if __name__ == "__main__":
    main()
