"""
Where the chat room listens: the explicit interface, port fallback, a check
that the port is really ours, and the port file.

The lesson this module exists for: a server that listened without an
explicit host "succeeded" on a port another program already held, and its
users' messages went to that other program.  chatd never shares a port:

1. It binds the explicit --interface, so a taken port is an error
   (EADDRINUSE), and it moves on to the next candidate from --fallback.
2. Once bound, it connects to its own address and checks that the connection
   arrives at its own socket.  If something else answers (possible on
   platforms and with socket options where the bind does not fail), the
   candidate counts as taken.

This runs synchronously, before the reactor starts (twistd starts services
first), so that a server that cannot listen exits at once with a non-zero
status and one line saying why, instead of running without its room.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import select
import socket
import tempfile
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from attrs import frozen
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IAddress, IListeningPort
from twisted.internet.protocol import Factory, Protocol, ServerFactory
from twisted.logger import Logger

from chatd.net.addresses import format_address, host_and_port
from chatd.net.twisted_private import accept_now, listening_socket

log = Logger()

PROBE_TIMEOUT_SECONDS = 1.0
MAX_PORT = 65535


class ListenError(Exception):
    """chatd cannot listen; str() is the one line to show the operator."""


class FallbackSpecError(ValueError):
    """A --fallback value that does not parse; str() says why."""


def fallback_ports(spec: str, first_port: int, avoid: Collection[int] = ()) -> list[int]:
    """
    The ports to try after `first_port`, from a --fallback SPEC:

    - a count, `10`: the next 10 ports after first_port (stopping at 65535);
      `0`: none;
    - a list of ports and ranges, tried in the order given:
      `8089-8099,9000` (a single port is written `9000,` or `9000-9000`).

    `first_port` itself, and the ports in `avoid` (those chatd uses for
    something else), are never among them: a count steps over them.
    """
    spec = spec.strip()
    skipped = {first_port, *avoid}
    if spec.isdigit():
        count = int(spec)
        following = (port for port in range(first_port + 1, MAX_PORT + 1) if port not in skipped)
        return list(itertools.islice(following, count))
    ports: list[int] = []
    seen: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        low_text, dash, high_text = part.partition("-")
        low = _port_number(low_text, part)
        high = _port_number(high_text, part) if dash else low
        if high < low:
            raise FallbackSpecError(f"range {part} runs backwards")
        for port in range(low, high + 1):
            if port not in seen:
                seen.add(port)
                ports.append(port)
    if not ports:
        raise FallbackSpecError(f"{spec!r} names no ports")
    return [port for port in ports if port not in skipped]


def _port_number(text: str, part: str) -> int:
    text = text.strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_PORT:
        raise FallbackSpecError(f"{part!r} is not a port or a range of ports (1-{MAX_PORT})")
    return int(text)




def format_ports(ports: Sequence[int]) -> str:
    """`8088-8091, 9000`: every port, runs of consecutive ports as ranges."""
    runs: list[list[int]] = []
    for port in ports:
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ", ".join(str(low) if low == high else f"{low}-{high}" for low, high in runs)




class _SelfCheckingFactory(ServerFactory[Protocol]):
    """
    Hands connections to the real factory, except the one connection chatd
    makes to itself to check that its port is its own: that one is noted and
    closed, and never reaches the chat.
    """

    noisy = False

    def __init__(self, factory: Factory[Any]) -> None:
        self.factory = factory
        self.expected: tuple[str, int] | None = None
        self.arrived = False

    def logPrefix(self) -> str:
        return "chatd"

    def startFactory(self) -> None:
        self.factory.doStart()

    def stopFactory(self) -> None:
        self.factory.doStop()

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if self.expected is not None and addr is not None and host_and_port(addr) == self.expected:
            self.arrived = True
            return None  # Twisted closes the connection
        return self.factory.buildProtocol(addr)


def _probe_host(interface: str) -> str:
    address = ipaddress.ip_address(interface)
    if address.is_unspecified:
        return "::1" if address.version == 6 else "127.0.0.1"
    return interface


ListenTCP = Callable[..., IListeningPort]


# Connections the kernel holds for us before we accept them.  Twisted's
# default, 50, makes a class logging in at once, or thousands of users
# coming back after a network blip, wait for SYN retries (1 s, 3 s, ...).
# Linux caps it at net.core.somaxconn (4096 since 5.4).
LISTEN_BACKLOG = 1024


class TCPBinding:
    """How to listen on a TCP port, and to check that a connection to it reaches us."""

    # Prefix in log lines: the chat room's lines read exactly
    # "port 8088 on 0.0.0.0 is in use; trying 8089".
    kind = ""

    def __init__(self, listen_tcp: ListenTCP, factory: Factory[Any]) -> None:
        self._listen_tcp = listen_tcp
        self._gate = _SelfCheckingFactory(factory)

    def listen(self, port: int, interface: str) -> IListeningPort:
        return self._listen_tcp(port, self._gate, backlog=LISTEN_BACKLOG, interface=interface)

    def is_own(self, listening: IListeningPort, host: str, timeout: float) -> bool:
        """
        Connect to `host` at the port `listening` holds; True if the
        connection arrives at `listening` within `timeout` seconds.

        The reactor may not be running yet, so the check accepts on the
        listening socket itself (doRead).  A real user who connects in the
        same instant is handed to the chat as usual.
        """
        gate = self._gate
        deadline = time.monotonic() + timeout
        with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
            probe.settimeout(timeout)
            try:
                probe.connect((host, port_of(listening)))
            except OSError:
                return False
            gate.expected, gate.arrived = probe.getsockname()[:2], False
            try:
                while not gate.arrived:
                    if not _wait_readable(listening, deadline):
                        return False
                    accept_now(listening)
                return True
            finally:
                gate.expected = None


class UDPBinding:
    """How to listen on a UDP port, and to check that a datagram sent to it reaches us."""

    kind = "UDP "

    def __init__(self, listen_udp: Callable[[int, str], IListeningPort]) -> None:
        self._listen_udp = listen_udp

    def listen(self, port: int, interface: str) -> IListeningPort:
        return self._listen_udp(port, interface)

    def is_own(self, listening: IListeningPort, host: str, timeout: float) -> bool:
        """
        Send a random token to `host` at the port `listening` holds; True if
        it arrives on `listening`'s socket within `timeout` seconds.  The
        check reads that socket itself, before the reactor runs, so a
        datagram from someone else in that instant is lost, as UDP may.
        """
        token = os.urandom(16)
        deadline = time.monotonic() + timeout
        own = listening_socket(listening)
        with socket.socket(_family(host), socket.SOCK_DGRAM) as probe:
            try:
                probe.sendto(token, (host, port_of(listening)))
            except OSError:
                return False
            while _wait_readable(listening, deadline):
                try:
                    if own.recv(2048) == token:
                        return True
                except BlockingIOError:
                    continue
        return False


Binding = TCPBinding | UDPBinding



def port_of(listening: IListeningPort) -> int:
    return host_and_port(listening.getHost())[1]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _wait_readable(listening: IListeningPort, deadline: float) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    readable, _, _ = select.select([listening_socket(listening)], [], [], remaining)
    return bool(readable)


@frozen
class Listening:
    """Where listen_with_fallback ended up, and the candidates it found taken."""

    port: IListeningPort
    taken: list[int]

    def describe(self, what: str) -> str:
        """`chat room listening on 0.0.0.0:8089 (8088 was taken)`"""
        host, port = host_and_port(self.port.getHost())
        note = ""
        if self.taken:
            note = f" ({format_ports(self.taken)} {'was' if len(self.taken) == 1 else 'were'} taken)"
        return f"{what} listening on {format_address(host, port)}{note}"


def listen_with_fallback(
    binding: Binding,
    interface: str,
    candidates: Sequence[int],
    probe_timeout: float = PROBE_TIMEOUT_SECONDS,
) -> Listening:
    """
    Listen on the first of `candidates` (ports) that is free on `interface`
    and really our own, logging each failed attempt; raise ListenError if
    none is.
    """
    taken: list[int] = []
    for index, port in enumerate(candidates):
        following = candidates[index + 1] if index + 1 < len(candidates) else None
        onward = f"; trying {following}" if following is not None else ""
        try:
            listening = binding.listen(port, interface)
        except CannotListenError as failure:
            code = getattr(failure.socketError, "errno", None)
            if code == errno.EADDRINUSE:
                log.info("{kind}port {port} on {interface} is in use{onward}", kind=binding.kind, port=port, interface=interface, onward=onward)
            elif code == errno.EACCES:
                log.info("{kind}port {port} on {interface} is not permitted{onward}", kind=binding.kind, port=port, interface=interface, onward=onward)
            else:
                reason = getattr(failure.socketError, "strerror", None) or str(failure.socketError)
                raise ListenError(f"cannot listen on {format_address(interface, port)}: {reason}") from None
            taken.append(port)
            continue
        if binding.is_own(listening, _probe_host(interface), probe_timeout):
            return Listening(listening, taken)
        listening.stopListening()
        log.info("{kind}port {port} on {interface} is answered by another program{onward}", kind=binding.kind, port=port, interface=interface, onward=onward)
        taken.append(port)
    raise ListenError(f"cannot listen on {interface}: every {binding.kind}port tried is taken ({format_ports(taken)})")


def write_port_file(path: str, port: int) -> None:
    """Write `port` to `path` atomically: readers see the old file or the whole new one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".chatd-port-")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(f"{port}\n")
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


class FallbackListener(Service):
    """
    A TCP or UDP listener as a twistd service: listens with fallback when
    started (in privilegedStartService, like twisted's TCPServer, so a low
    port works before privileges are shed) and writes the port file.
    """

    def __init__(
        self,
        binding: Binding,
        interface: str,
        candidates: Sequence[int],
        port_file: str | None = None,
        what: str = "chat room",
        after_stop_listening: Callable[[], Any] | None = None,
        after_listening: Callable[[int], None] | None = None,
    ) -> None:
        self.what = what
        self._after_stop_listening = after_stop_listening
        self._after_listening = after_listening
        self._binding = binding
        self.interface = interface
        self.candidates = list(candidates)
        self.port_file = port_file
        self.listening: IListeningPort | None = None

    @property
    def port(self) -> int | None:
        """The port actually bound, once listening."""
        return None if self.listening is None else port_of(self.listening)

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        self._listen()

    def startService(self) -> None:
        super().startService()
        if self.listening is None:
            self._listen()

    def _listen(self) -> None:
        try:
            result = listen_with_fallback(self._binding, self.interface, self.candidates)
        except ListenError as failure:
            # The one line the operator reads.  Before the reactor runs,
            # SystemExit ends twistd with status 1 (twistd has already turned
            # stderr into the log, so the line is not repeated there).
            log.error("{failure}", failure=str(failure))
            raise SystemExit(1) from None
        self.listening = result.port
        if self.port_file:
            write_port_file(self.port_file, port_of(result.port))
        # Logged last, so whoever waits for this line finds the port file written.
        log.info("{line}", line=result.describe(self.what))
        if self._after_listening is not None:
            self._after_listening(port_of(result.port))

    def stopService(self):  # type: ignore[no-untyped-def]
        super().stopService()
        if self.port_file:
            try:
                os.unlink(self.port_file)
            except OSError:
                pass
        listening, self.listening = self.listening, None
        stopped = defer.maybeDeferred(listening.stopListening) if listening is not None else defer.succeed(None)
        if self._after_stop_listening is not None:
            # No new connections from here on; then the rest of the shutdown.
            after = self._after_stop_listening
            stopped.addCallback(lambda _: after())
        return stopped
