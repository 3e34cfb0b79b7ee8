"""
`--workers N`: N chatd processes on one host, accepting on the same ports
(SO_REUSEPORT, so the kernel spreads connections among them) and sharing
one chat as nodes of the cluster (`--cluster`).

    twistd chatd --workers 2 --cluster redis://...      the parent: holds the ports, runs the echo
      +- twistd chatd ... --worker 1                     each worker: a whole chatd node
      +- twistd chatd ... --worker 2

The parent finds the ports with the usual fallback rules and keeps each
one bound, without listening, with SO_REUSEPORT: another program cannot
take the port, and connections reach only the workers, which bind the same
port with SO_REUSEPORT and listen.  (A program of the same user that also
sets SO_REUSEPORT on that very port could join the group; the parent
checks with a plain bind first, so none held it when chatd started.)

The parent starts the workers, says where the chat listens once every
worker does, starts again a worker that dies, and on SIGTERM (or SIGINT)
stops them all gracefully and waits for them.  A worker reads its standard
input, a pipe from the parent: when the parent is gone (even killed), the
worker stops too.  Worker 1 also announces (--multicast, --broadcast) and
keeps the transcript; the others do neither.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory, Protocol, ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from chatd.net.addresses import format_address
from chatd.net.twisted_private import adopt_stream_port, listen_tcp, set_connection_options
from chatd.service.listening import (
    LISTEN_BACKLOG,
    ListenError,
    TCPBinding,
    format_ports,
    write_port_file,
)

log = Logger()

READY_FD = 3  # a worker writes "ready" here once it listens
RESTART_SECONDS = 1.0
MAX_RESTART_SECONDS = 30.0
# A worker that ran this long before dying is started again after RESTART_SECONDS;
# one that dies sooner waits twice as long as the last time.
STEADY_SECONDS = 10.0
STOP_WAIT_SECONDS = 15.0  # after SIGTERM, before SIGKILL (beyond --shutdown-grace)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class SharedPortBinding(TCPBinding):
    """A worker's listener: the port its parent holds, shared with the other workers through SO_REUSEPORT."""

    kind = ""

    def __init__(self, reactor: Any, factory: Factory[Any]) -> None:
        super().__init__(listen_tcp(reactor), factory)
        self._reactor = reactor

    def listen(self, port: int, interface: str) -> IListeningPort:
        family = _family(interface)
        shared = socket.socket(family, socket.SOCK_STREAM)
        try:
            shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            shared.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            set_connection_options(shared)
            shared.bind((interface, port))
            shared.listen(LISTEN_BACKLOG)
            shared.setblocking(False)
            return adopt_stream_port(self._reactor, shared.fileno(), family, self._gate)
        except OSError as error:
            raise CannotListenError(interface, port, error) from None
        finally:
            shared.close()  # the reactor has its own copy

    def is_own(self, listening: IListeningPort, host: str, timeout: float) -> bool:
        # The parent made sure no other program held the port.  (A connection
        # to it may reach a sibling worker, so the usual check cannot be made.)
        return True


def reserve_port(interface: str, candidates: Sequence[int], what: str) -> tuple[socket.socket, str]:
    """
    The first of `candidates` no program holds on `interface`, bound (not
    listening) with SO_REUSEPORT so the workers can share it; and the line
    that says so.  ListenError if every one is taken.
    """
    taken: list[int] = []
    kind = "" if what == "chat room" else f"{what} "
    for index, port in enumerate(candidates):
        following = candidates[index + 1] if index + 1 < len(candidates) else None
        onward = f"; trying {following}" if following is not None else ""
        family = _family(interface)
        with socket.socket(family, socket.SOCK_STREAM) as probe:  # a plain bind: fails if anyone holds the port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((interface, port))
            except OSError as error:
                if error.errno in (errno.EADDRINUSE, errno.EACCES):
                    state = "in use" if error.errno == errno.EADDRINUSE else "not permitted"
                    log.info("{kind}port {port} on {interface} is {state}{onward}", kind=kind, port=port,
                             interface=interface, state=state, onward=onward)
                    taken.append(port)
                    continue
                raise ListenError(f"cannot listen on {format_address(interface, port)}: {error.strerror}") from None
            port = probe.getsockname()[1]  # port 0: the one the kernel chose
        held = socket.socket(family, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((interface, port))
        note = ""
        if taken:
            note = f" ({format_ports(taken)} {'was' if len(taken) == 1 else 'were'} taken)"
        return held, f"{what} listening on {format_address(interface, port)}{note}"
    raise ListenError(f"cannot listen on {interface}: every {kind}port tried is taken ({format_ports(taken)})")


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: Supervisor, number: int) -> None:
        self.supervisor = supervisor
        self.number = number
        self.ended: defer.Deferred[None] = defer.Deferred()

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd == READY_FD and b"ready" in data:
            self.supervisor.ready(self)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor.ended(self, reason)


class Supervisor(Service):
    """Starts the workers, starts again one that dies, and stops them all with itself."""

    def __init__(self, reactor: Any, count: int, command: Callable[[int], list[str]],
                 when_ready: Callable[[], None]) -> None:
        self.reactor = reactor
        self.count = count
        self.command = command  # the command line of worker N
        self._when_ready = when_ready
        self._workers: dict[int, tuple[_Worker, Any]] = {}  # number -> (protocol, process)
        self._ready: set[int] = set()
        self._started_at: dict[int, float] = {}
        self._delay: dict[int, float] = {}
        self._stopping = False
        self._said_ready = False

    def startService(self) -> None:
        super().startService()
        for number in range(1, self.count + 1):
            self._spawn(number)

    def _spawn(self, number: int) -> None:
        if self._stopping:
            return
        worker = _Worker(self, number)
        command = self.command(number)
        process = self.reactor.spawnProcess(worker, command[0], command, env=os.environ.copy(),
                                            childFDs={0: "w", 1: 1, 2: 2, READY_FD: "r"})
        self._workers[number] = (worker, process)
        self._started_at[number] = self.reactor.seconds()
        log.info("worker {number} started (pid {pid})", number=number, pid=process.pid)

    def ready(self, worker: _Worker) -> None:
        self._ready.add(worker.number)
        if not self._said_ready and len(self._ready) == self.count:
            self._said_ready = True
            self._when_ready()

    def ended(self, worker: _Worker, reason: Failure) -> None:
        number = worker.number
        if self._workers.get(number, (None,))[0] is not worker:
            return
        del self._workers[number]
        self._ready.discard(number)
        if self._stopping:
            return
        how = reason.getErrorMessage()
        ran = self.reactor.seconds() - self._started_at.get(number, 0.0)
        delay = RESTART_SECONDS if ran >= STEADY_SECONDS else min(MAX_RESTART_SECONDS,
                                                                  self._delay.get(number, RESTART_SECONDS / 2) * 2)
        self._delay[number] = delay
        log.warn("worker {number} ended ({how}); starting it again in {delay:g} s", number=number, how=how,
                 delay=delay)
        self.reactor.callLater(delay, self._spawn, number)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        self._stopping = True
        endings = []
        for number, (worker, process) in list(self._workers.items()):
            endings.append(worker.ended)
            try:
                process.signalProcess("TERM")
            except Exception:
                continue
            self.reactor.callLater(STOP_WAIT_SECONDS, self._kill_if_running, process)
        return defer.DeferredList(endings)

    @staticmethod
    def _kill_if_running(process: Any) -> None:
        if process.pid is not None:
            log.warn("worker pid {pid} did not stop; killing it", pid=process.pid)
            process.signalProcess("KILL")


class Reservations(Service):
    """
    Holds the ports the parent reserved until it stops; once the workers
    listen, writes the port file and says where the chat listens.
    """

    def __init__(self, sockets: list[socket.socket], lines: list[str], port_file: str | None, chat_port: int,
                 workers: int) -> None:
        self.sockets = sockets
        self.lines = lines
        self.port_file = port_file
        self.chat_port = chat_port
        self.workers = workers

    def workers_ready(self) -> None:
        if self.port_file:
            write_port_file(self.port_file, self.chat_port)
        for line in self.lines:  # last, so whoever waits for these lines finds the port file written
            log.info("{line} ({workers} workers)", line=line, workers=self.workers)

    def stopService(self) -> None:
        super().stopService()
        for held in self.sockets:
            held.close()
        if self.port_file:
            try:
                os.unlink(self.port_file)
            except OSError:
                pass


class _ParentWatch(Protocol):
    """A worker's standard input, a pipe from its parent: when it closes, the parent is gone."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def connectionLost(self, reason: Failure = Failure(Exception())) -> None:
        if self.reactor.running:
            log.warn("the parent process is gone; stopping")
            self.reactor.stop()


class WorkerLife(Service):
    """
    In a worker, started last: tells the parent the worker listens, and
    stops the worker if the parent goes.  SIGINT (a Ctrl-C meant for the
    parent's terminal) is left to the parent, which stops the workers.
    """

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        from twisted.internet import stdio

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stdio.StandardIO(_ParentWatch(self.reactor), reactor=self.reactor)
        try:
            os.write(READY_FD, b"ready\n")
            os.close(READY_FD)
        except OSError:
            pass  # started by hand, not by a parent


def worker_command(argv: Sequence[str], number: int, ports: dict[str, int]) -> list[str]:
    """
    Worker `number`'s command line: this chatd's own options, then what a
    worker changes (later options win): no workers of its own, and the
    ports the parent holds, with no fallback.
    """
    overrides = ["--workers", "0", "--worker", str(number), "--no-echo"]
    for option, port in ports.items():
        overrides += [f"--{option}-port" if option != "chat" else "--port", str(port),
                      f"--{option}-fallback" if option != "chat" else "--fallback", "0"]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=", "chatd",
            *argv, *overrides]
