"""
benchmarks/stress.py: a bounded stress run of chatd on loopback.

    .venv/bin/python benchmarks/stress.py --clients 500 --seconds 30

It starts its own chatd (twistd, on 127.0.0.1, an ephemeral port) and
connects a mix of clients, each from its own loopback address:

    well-behaved  log in, send numbered lines at a gentle rate, read everything
    flooder       log in, then send as fast as TCP lets it
    slow reader   log in, then never read again
    resetter      connect, send half a line, reset; again and again
    half-closer   connect, say a line, send EOF, read until closed; again

When the time is up, each well-behaved client sends a last "done" line and
waits for everyone else's.  The report says, for every pair of well-behaved
clients, whether each line arrived once and in order, and the server's peak
memory.  It exits 1 if any line was lost, duplicated or reordered.
Everything is bounded: at most 5000 clients and 600 seconds, loopback only.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from twisted.internet import defer, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import LineReceiver
from twisted.python import usage

REPO = Path(__file__).resolve().parent.parent

MAX_CLIENTS = 5000
MAX_SECONDS = 600
TOTAL_MESSAGES_PER_SECOND = 100.0  # shared by the well-behaved clients
DRAIN_TIMEOUT_SECONDS = 60.0
KINDS = ("well-behaved", "flooder", "slow reader", "resetter", "half-closer")


class Options(usage.Options):
    synopsis = "[--clients N] [--seconds S] [--json]"
    optParameters = [
        ["clients", "c", "500", f"Clients in all (4 to {MAX_CLIENTS}); 60% well-behaved, 10% of each other kind."],
        ["seconds", "s", "30", f"How long the well-behaved clients talk (1 to {MAX_SECONDS})."],
    ]
    optFlags = [["json", "j", "Print the report as one JSON object."]]

    def postOptions(self) -> None:
        for name, low, high in (("clients", 4, MAX_CLIENTS), ("seconds", 1, MAX_SECONDS)):
            text = self[name]
            if not str(text).isdigit() or not low <= int(text) <= high:
                raise usage.UsageError(f"--{name}: {text!r} is not a whole number from {low} to {high}")
            self[name] = int(text)


def source_address(index: int) -> str:
    """A loopback address of its own for client `index` (127.2.0.1, 127.2.0.2, ...)."""
    return f"127.2.{index // 250}.{index % 250 + 1}"


class ChatClient(LineReceiver):
    delimiter = b"\r\n"
    MAX_LENGTH = 1 << 20
    transport: Any  # a TCP transport, once connected

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.joined: defer.Deferred[None] = defer.Deferred()
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.sendLine(self.nick.encode())

    def lineReceived(self, line: bytes) -> None:
        if not self.joined.called and line.startswith(b"*** Hello "):
            self.joined.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        if not self.joined.called:
            self.joined.errback(ConnectionError(f"{self.nick} was closed before joining"))
        self.closed.callback(None)


class WellBehaved(ChatClient):
    """Sends numbered lines; records, per sender, the numbers it receives."""

    def __init__(self, nick: str) -> None:
        super().__init__(nick)
        self.received: dict[str, list[int]] = defaultdict(list)
        self.done_from: set[str] = set()
        self.all_done: defer.Deferred[None] | None = None
        self.expect_done_from: set[str] = set()
        self.sent = 0

    def say_next(self) -> None:
        self.sendLine(f"{self.nick} {self.sent}".encode())
        self.sent += 1

    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if not line.startswith(b"<wb"):
            return
        sender, _, text = line[1:].decode(errors="replace").partition("> ")
        _, _, number = text.partition(" ")
        if number == "done":
            self.done_from.add(sender)
            if self.all_done is not None and self.expect_done_from <= self.done_from and not self.all_done.called:
                self.all_done.callback(None)
        elif number.isdigit():
            self.received[sender].append(int(number))


class Flooder(ChatClient):
    def flood(self, reactor: Any) -> None:
        self._burst = b"".join(b"flood %d\r\n" % index for index in range(200))
        self._loop = task.LoopingCall(self._write)
        self._loop.clock = reactor
        self._loop.start(0.01)

    def _write(self) -> None:
        if self.transport is not None and self.connected:
            self.transport.write(self._burst)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


class SlowReader(ChatClient):
    def lineReceived(self, line: bytes) -> None:
        super().lineReceived(line)
        if self.joined.called:
            self.transport.pauseProducing()  # never read again


class OneShot(protocol.Protocol):
    """A resetter or a half-closer: one connection's worth of misbehaviour."""

    transport: Any  # a TCP transport, once connected

    def __init__(self, nick: str, half_close: bool) -> None:
        self.nick = nick
        self.half_close = half_close
        self.closed: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        if self.half_close:
            self.transport.write(f"{self.nick}\r\nhello from {self.nick}\r\n".encode())
            self.transport.loseWriteConnection()
        else:
            self.transport.write(b"half a line that never ends")
            self.transport.abortConnection()

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


@defer.inlineCallbacks
def start_server(reactor: Any, workdir: Path, clients: int) -> Any:
    """twistd -n chatd on 127.0.0.1; fires with (process transport, port) once it listens."""
    listening: defer.Deferred[None] = defer.Deferred()

    class Watch(protocol.ProcessProtocol):
        def __init__(self) -> None:
            self.output = b""
            self.ended: defer.Deferred[int] = defer.Deferred()

        def outReceived(self, data: bytes) -> None:
            self.output += data
            if b"chat room listening on" in self.output and not listening.called:
                listening.callback(None)

        def processEnded(self, reason: Any) -> None:
            if not listening.called:
                listening.errback(RuntimeError("chatd ended before listening:\n" + self.output.decode(errors="replace")))
            self.ended.callback(reason.value.exitCode)

    twistd = Path(sys.executable).with_name("twistd")
    port_file = workdir / "port"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    watch = Watch()
    process = reactor.spawnProcess(
        watch, str(twistd),
        [str(twistd), "-n", "--pidfile=", "chatd", "--port", "0", "--interface", "127.0.0.1",
         "--port-file", str(port_file), "--echo-port", "0", "--max-clients", str(clients + 100),
         "--login-timeout", str(MAX_SECONDS * 2), "--state-dir", str(workdir / "state")],
        env=env, path=str(workdir),
    )
    yield listening
    return process, watch, int(port_file.read_text())


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@defer.inlineCallbacks
def run(reactor: Any, clients: int, seconds: int, workdir: Path) -> Any:
    process, watch, port = yield start_server(reactor, workdir, clients)
    peak = [rss_kib(process.pid)]
    sampler = task.LoopingCall(lambda: peak.__setitem__(0, max(peak[0], rss_kib(process.pid))))
    sampler.clock = reactor
    sampler.start(0.25)

    def endpoint(index: int) -> TCP4ClientEndpoint:
        return TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=10, bindAddress=(source_address(index), 0))

    counts = {kind: max(1, clients // 10) for kind in KINDS[1:]}
    counts["well-behaved"] = clients - sum(counts.values())
    index = 0
    well_behaved: list[WellBehaved] = []
    others: list[ChatClient] = []
    for kind in KINDS:
        for _ in range(counts[kind] if kind in ("well-behaved", "flooder", "slow reader") else 0):
            nick = {"well-behaved": "wb", "flooder": "flood", "slow reader": "slow"}[kind] + str(index)
            client = {"well-behaved": WellBehaved, "flooder": Flooder, "slow reader": SlowReader}[kind](nick)
            yield connectProtocol(endpoint(index), client)
            if isinstance(client, WellBehaved):
                well_behaved.append(client)
            else:
                others.append(client)
            index += 1
    yield defer.gatherResults([client.joined for client in well_behaved + others])

    # The repeat offenders, each on a loop of its own until the time is up.
    stopping = False

    @defer.inlineCallbacks
    def misbehave(index: int, half_close: bool) -> Any:
        while not stopping:
            one = OneShot(f"hc{index}", half_close)
            try:
                yield connectProtocol(endpoint(index), one)
                yield one.closed
            except Exception:
                pass
            yield task.deferLater(reactor, 0.2, lambda: None)

    loops = []
    for kind, half_close in (("resetter", False), ("half-closer", True)):
        for _ in range(counts[kind]):
            loops.append(misbehave(index, half_close))
            index += 1
    for client in others:
        if isinstance(client, Flooder):
            client.flood(reactor)

    per_client_interval = len(well_behaved) / TOTAL_MESSAGES_PER_SECOND
    talkers = []
    for offset, client in enumerate(well_behaved):
        loop = task.LoopingCall(client.say_next)
        loop.clock = reactor
        talkers.append(loop)
        reactor.callLater(offset * per_client_interval / len(well_behaved), loop.start, per_client_interval)
    yield task.deferLater(reactor, seconds, lambda: None)
    for loop in talkers:
        if loop.running:
            loop.stop()
    stopping = True
    for client in others:
        if isinstance(client, Flooder):
            client.stop()

    names = {client.nick for client in well_behaved}
    for client in well_behaved:
        client.expect_done_from = names - {client.nick}
        all_done: defer.Deferred[None] = defer.Deferred()
        client.all_done = all_done
        if client.expect_done_from <= client.done_from:
            all_done.callback(None)
    for client in well_behaved:
        client.sendLine(f"{client.nick} done".encode())
    drained = defer.gatherResults([client.all_done for client in well_behaved if client.all_done is not None])
    drained.addTimeout(DRAIN_TIMEOUT_SECONDS, reactor)
    drained_in_time = True
    try:
        yield drained
    except defer.TimeoutError:
        drained_in_time = False
    yield defer.DeferredList(loops)
    sampler.stop()

    expected = lost = duplicated = reordered = 0
    for receiver in well_behaved:
        for sender in well_behaved:
            if sender is receiver:
                continue
            got = receiver.received.get(sender.nick, [])
            expected += sender.sent
            lost += len(set(range(sender.sent)) - set(got))
            duplicated += len(got) - len(set(got))
            reordered += sum(1 for a, b in zip(got, got[1:], strict=False) if b < a)

    for client in well_behaved + others:
        client.transport.abortConnection() if client.transport is not None else None
    process.signalProcess("TERM")
    exit_status = yield watch.ended
    return {
        "clients": counts,
        "seconds": seconds,
        "messages_sent": sum(client.sent for client in well_behaved),
        "deliveries_expected": expected,
        "lost": lost,
        "duplicated": duplicated,
        "reordered": reordered,
        "drained_in_time": drained_in_time,
        "server_peak_rss_kib": peak[0],
        "server_exit_status": exit_status,
    }


def describe(report: dict[str, Any]) -> str:
    kinds = ", ".join(f"{count} {kind}" for kind, count in report["clients"].items())
    return (
        f"{kinds}; {report['seconds']} s\n"
        f"well-behaved: {report['messages_sent']} lines sent, {report['deliveries_expected']} deliveries expected: "
        f"{report['lost']} lost, {report['duplicated']} duplicated, {report['reordered']} reordered"
        f"{'' if report['drained_in_time'] else ' (not all delivered in time)'}\n"
        f"server: peak RSS {report['server_peak_rss_kib'] / 1024:.1f} MiB, exit status {report['server_exit_status']}"
    )


def main(argv: list[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as problem:
        sys.stderr.write(f"stress.py: {problem}\n")
        raise SystemExit(2) from None

    def go(reactor: Any) -> Any:
        workdir = Path(tempfile.mkdtemp(prefix="chatd-stress-"))
        return run(reactor, options["clients"], options["seconds"], workdir).addCallback(report)

    def report(result: dict[str, Any]) -> None:
        print(json.dumps(result) if options["json"] else describe(result), flush=True)
        if result["lost"] or result["duplicated"] or result["reordered"] or not result["drained_in_time"]:
            raise SystemExit(1)

    task.react(go)


if __name__ == "__main__":
    main()
