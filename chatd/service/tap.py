"""
`twistd chatd`: the command-line options, and the service they describe.

makeService returns a MultiService, so the UDP services can later join the
chat server as its siblings.
"""

from __future__ import annotations

import gc
import ipaddress
import signal
import socket
import sys
from collections.abc import Callable, Collection, Sized
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet.defer import DeferredList
from twisted.logger import Logger
from twisted.python import usage

from chatd.bus.address import RedisAddress
from chatd.bus.redis import DEFAULT_CLUSTER_NAME, RedisBus
from chatd.core.moderation import Moderation
from chatd.core.nicknames import ChannelNameError, check_channel_name
from chatd.core.server import DEFAULT_CHANNEL, DEFAULT_MAX_CHANNELS, DEFAULT_QUIET_JOINS, ChatServer
from chatd.core.text import clean
from chatd.core.turn import Turn
from chatd.lan.announcement import DEFAULT_BROADCAST_PORT, DEFAULT_GROUP, DEFAULT_MULTICAST_PORT
from chatd.lan.udp import (
    AnnouncerProtocol,
    AnnouncerService,
    EchoProtocol,
    Herald,
    broadcast_setup,
    listen_udp_with_destinations,
    multicast_setup,
)
from chatd.net.flow import FlowCounts, Flusher
from chatd.net.limits import ConnectionLimits, raise_open_files_limit
from chatd.service.metrics import chat_metrics, fan_out_histogram
from chatd.net.addresses import format_address, ipv4_address, multicast_group
from chatd.service.listening import (
    FallbackListener,
    FallbackSpecError,
    ListenError,
    TCPBinding,
    UDPBinding,
    fallback_ports,
)
from chatd.service.transcript import Transcript, recent_messages
from chatd.service.workers import Reservations, SharedPortBinding, Supervisor, WorkerLife, reserve_port, worker_command
from chatd.telnet.charset import CharsetError, check_charset
from chatd.net.door import DEFAULT_MAX_LINE_BYTES, Settings
from chatd.telnet.protocol import TelnetDoor
from chatd.irc.protocol import IrcDoor
from chatd.web.protocol import WebDoor
from chatd.web.site import web_site

log = Logger()

DEFAULT_ECHO_PORT = 41234
DEFAULT_WEB_PORT = 8080
DEFAULT_IRC_PORT = 6667
MIN_LINE_BYTES = 64
MAX_LINE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 64


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "A chat server with channels that people reach from a browser (--web-port), an IRC client (--irc-port), "
        "or `telnet HOST PORT` and `nc HOST PORT`. "
        "chatd binds the interface you give it and never shares a port with another "
        "program: when its port is taken it falls back to the next one it may use."
    )

    # Values are parsed in postOptions, so that a bad one is reported as
    # "--port: 70000 is not a port (0-65535)" rather than with usage.Options'
    # "Parameter type enforcement failed" prefix.
    optParameters = [
        ["port", "p", "8088", "TCP port of the chat room; 0 takes any free port."],
        ["interface", "i", "0.0.0.0", "Address to bind: an IPv4 or IPv6 address; :: binds IPv6 (and IPv4 where the OS allows)."],
        ["fallback", None, "10", "Where to go when the port is taken: a count N tries PORT+1 ... PORT+N; "
         "a list of ports and ranges is tried in the order given (8089-8099,9000); 0 turns fallback off."],
        ["port-file", None, None, "Write the port actually bound to this file, atomically, once listening."],
        ["name", None, None, "The server's display name, shown in the greeting. [default: the host name]"],
        ["max-line", None, str(DEFAULT_MAX_LINE_BYTES), f"Longest accepted input line in bytes, line end not counted ({MIN_LINE_BYTES}-{MAX_LINE_BYTES})."],
        ["charset", None, "utf-8", "The encoding new connections start with (utf-8, gbk, big5, latin-1, ...); users change theirs with /charset."],
        ["max-clients", None, "10000", "Most chat connections at once; more get '*** Error: server full'."],
        ["max-per-ip", None, "32", "Most chat connections from one address."],
        ["login-timeout", None, "60", "Seconds a new connection has to choose a nickname."],
        ["idle-timeout", None, "0", "Seconds without input before a user is disconnected; 0: never."],
        ["rate", None, "5", "Lines per second a user may send; more wait in the flood queue and are let through at this rate."],
        ["burst", None, "20", "Lines a user may send at once before --rate applies."],
        ["flood-queue", None, "100", "Lines waiting per user before chatd stops reading from that user (nothing is dropped)."],
        ["sendq", None, str(1024 * 1024), "Bytes waiting for a slow reader before it is disconnected (beyond the socket's own buffers)."],
        ["shutdown-grace", None, "5", "Seconds to let pending output flush on shutdown before closing connections."],
        ["transcript", None, None, "Append every public event to this file, one JSON line each (never private messages)."],
        ["transcript-max-bytes", None, str(10 * 1000 * 1000), "Size at which the transcript rotates (5 old files are kept)."],
        ["history", None, "20", "Recent messages shown to a user who joins (0: none); kept across restarts with --transcript."],
        ["oper-password-file", None, None, "File holding the operators' password (/oper); without it, moderation is off."],
        ["default-channel", None, DEFAULT_CHANNEL, "The channel every user is in once they choose a nickname."],
        ["max-channels", None, str(DEFAULT_MAX_CHANNELS), "Most channels on the server at once; users create them with /join."],
        ["quiet-joins", None, str(DEFAULT_QUIET_JOINS), "Above this many members a channel stops announcing each join and "
         "leave and sums them up every few seconds instead."],
        ["web-port", None, str(DEFAULT_WEB_PORT), "TCP port of the web page (chat in a browser), /metrics and /healthz; "
         "0 takes any free port."],
        ["web-fallback", None, "10", "Where the web page goes when its port is taken (as --fallback)."],
        ["web-origin", None, None, "Other origins whose pages may open the chat's WebSocket, comma-separated "
         "(http://lab.example:8080); * allows any. [default: only the page's own]"],
        ["irc-port", None, str(DEFAULT_IRC_PORT), "TCP port for IRC clients (irssi, WeeChat, HexChat); 0 takes any free port."],
        ["irc-fallback", None, "10", "Where the IRC port goes when it is taken (as --fallback)."],
        ["cluster", None, None, "Share channels, nicknames and history with other chatd nodes through the Redis at "
         "this URL: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS. [default: this process alone]"],
        ["cluster-name", None, DEFAULT_CLUSTER_NAME, "The cluster to join on that Redis (several can share one)."],
        ["workers", None, "0", "Run this many chatd processes, accepting on the same ports (SO_REUSEPORT) as nodes "
         "of the --cluster, so every core works; chatd starts again a worker that dies. 0: one process."],
        ["worker", None, "0", "(Set by --workers for each worker process it starts.)"],
        ["echo-port", None, str(DEFAULT_ECHO_PORT), "UDP port of the echo service, on --interface; 0 takes any free port."],
        ["echo-fallback", None, "10", "Where the echo service goes when its port is taken (as --fallback)."],
        ["echo-rate", None, "100", "Echo replies per second to one source address, in bursts of twice that; the rest are dropped."],
        ["multicast-group", None, DEFAULT_GROUP, "IPv4 multicast group of the announcements."],
        ["multicast-port", None, str(DEFAULT_MULTICAST_PORT), "UDP port of the multicast announcements."],
        ["multicast-ttl", None, "1", "Multicast TTL: 1 keeps announcements on the local network."],
        ["multicast-interface", None, None, "Address of the interface that sends multicast. [default: --interface when concrete, else the system's choice]"],
        ["broadcast-address", None, "255.255.255.255", "IPv4 address the broadcast announcements go to."],
        ["broadcast-port", None, str(DEFAULT_BROADCAST_PORT), "UDP port of the broadcast announcements."],
        ["announce-interval", None, "5", "Seconds between announcements (after three at start, 1 s apart)."],
    ]

    optFlags = [
        ["no-web", None, "Do not serve the web page (nor /metrics and /healthz)."],
        ["no-irc", None, "Do not listen for IRC clients."],
        ["no-echo", None, "Do not run the UDP echo service."],
        ["multicast", None, "Announce the server to the LAN by multicast (puts traffic on the LAN, so off by default)."],
        ["broadcast", None, "Announce the server to the LAN by broadcast (off by default)."],
    ]

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Under twistd, a bad option is one line on stderr and exit status 2
        (twistd itself would print its whole usage text first).
        """
        # As given, for the worker processes of --workers.
        self.argv = list(sys.argv[1:] if options is None else options)
        try:
            super().parseOptions(options)
        except usage.UsageError as problem:
            if self.parent is None:  # not under twistd (tests, other callers): theirs to report
                raise
            sys.stderr.write(f"chatd: {problem} (twistd chatd --help lists the options)\n")
            raise SystemExit(2) from None

    def postOptions(self) -> None:
        parsers: list[tuple[str, Callable[[Any], Any]]] = [
            ("port", _port),
            ("interface", _interface),
            ("max-line", _max_line),
            ("charset", _charset),
            ("name", _name),
            ("max-clients", _count),
            ("max-per-ip", _count),
            ("login-timeout", _seconds),
            ("idle-timeout", _seconds_or_zero),
            ("rate", _positive_number),
            ("burst", _count),
            ("flood-queue", _count),
            ("sendq", _sendq),
            ("shutdown-grace", _seconds_or_zero),
            ("transcript-max-bytes", _transcript_bytes),
            ("history", _history),
            ("default-channel", _channel_name),
            ("max-channels", _count),
            ("quiet-joins", _count_or_zero),
            ("web-port", _port),
            ("web-origin", _origins),
            ("irc-port", _port),
            ("echo-port", _port),
            ("echo-rate", _positive_number),
            ("multicast-group", multicast_group),
            ("multicast-port", _nonzero_port),
            ("multicast-ttl", _ttl),
            ("multicast-interface", _optional_ipv4),
            ("broadcast-address", ipv4_address),
            ("broadcast-port", _nonzero_port),
            ("announce-interval", _interval),
            ("cluster", _cluster_address),
            ("cluster-name", _cluster_name),
            ("workers", _count_or_zero),
            ("worker", _count_or_zero),
        ]
        for key, parse in parsers:
            try:
                self[key] = parse(self[key])
            except ValueError as problem:
                raise usage.UsageError(f"--{key}: {problem}") from None
        if self["workers"] and self["cluster"] is None:
            raise usage.UsageError("--workers: the workers share one chat through a cluster; give --cluster "
                                   "redis://HOST:PORT/DB too")
        try:
            self["oper-password"] = _oper_password(self["oper-password-file"])
        except ValueError as problem:
            raise usage.UsageError(f"--oper-password-file: {problem}") from None
        try:
            _check_transcript(self["transcript"])
        except ValueError as problem:
            raise usage.UsageError(f"--transcript: {problem}") from None
        self["fallback-ports"] = _fallback("fallback", self["fallback"], self["port"])
        self["web-fallback-ports"] = _fallback("web-fallback", self["web-fallback"], self["web-port"])
        self["irc-fallback-ports"] = _fallback("irc-fallback", self["irc-fallback"], self["irc-port"])
        # The echo never takes a port of the announcements, by default or as
        # given, so a second chatd on this host cannot walk onto them.
        announcement_ports = sorted({DEFAULT_BROADCAST_PORT, DEFAULT_MULTICAST_PORT,
                                     self["broadcast-port"], self["multicast-port"]})
        if self["echo-port"] in announcement_ports and not self["no-echo"]:
            raise usage.UsageError(f"--echo-port: {self['echo-port']} is a port of the announcements "
                                   f"({', '.join(map(str, announcement_ports))}); choose another")
        self["echo-fallback-ports"] = _fallback("echo-fallback", self["echo-fallback"], self["echo-port"],
                                                avoid=announcement_ports)


def _fallback(key: str, spec: str, port: int, avoid: Collection[int] = ()) -> list[int]:
    if port == 0:
        return []  # an ephemeral port cannot be taken
    try:
        return fallback_ports(spec, port, avoid)
    except FallbackSpecError as problem:
        raise usage.UsageError(f"--{key}: {problem}") from None


def _port(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _interface(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def _origins(text: str | None) -> list[str]:
    """--web-origin: scheme://host[:port] of each page allowed to open the chat, or *."""
    if text is None:
        return []
    origins = [origin.strip().rstrip("/") for origin in text.split(",") if origin.strip()]
    for origin in origins:
        scheme, separator, host = origin.partition("://")
        if origin != "*" and (scheme.lower() not in ("http", "https") or not separator or not host or "/" in host):
            raise ValueError(f"{origin!r} is not an origin like http://lab.example:8080 (or *)")
    return origins


def _cluster_address(text: str | None) -> RedisAddress | None:
    return None if text is None else RedisAddress.parse(text)


def _cluster_name(text: str) -> str:
    """A cluster's name: part of its Redis keys (chatd:NAME:...), so letters, digits, - and _ only."""
    if not text or len(text) > MAX_NAME_CHARS or not all(char.isascii() and (char.isalnum() or char in "-_")
                                                          for char in text):
        raise ValueError(f"{text!r} is not a cluster name (up to {MAX_NAME_CHARS} letters, digits, - and _)")
    return text


def _nonzero_port(text: str) -> int:
    port = _port(text)
    if port == 0:
        raise ValueError("0 is not a port others can send to")
    return port


def _optional_ipv4(text: str | None) -> str | None:
    return None if text is None else ipv4_address(text)


def _ttl(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 255:
        raise ValueError(f"{text!r} is not a TTL (0-255)")
    return int(text)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value <= 1_000_000:
        raise ValueError(f"{text!r} is not a positive number")
    return value


def _interval(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 3600:
        raise ValueError(f"{text!r} is not a number of seconds from 1 to 3600")
    return int(text)


def _sendq(text: str) -> int:
    if not text.strip().isdigit() or not 1024 <= int(text) <= 1024**3:
        raise ValueError(f"{text!r} is not a number of bytes from 1024 to 1073741824")
    return int(text)


def _oper_password(path: str | None) -> str | None:
    """The password in the file at `path` (its first line), read once at start."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            password = file.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as problem:
        raise ValueError(f"cannot read {path}: {getattr(problem, 'strerror', None) or problem}") from None
    if not password:
        raise ValueError(f"{path} holds no password on its first line")
    return password


def _check_transcript(path: str | None) -> None:
    """The transcript can be appended to (opened, and closed again, at start)."""
    if path is None:
        return
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as problem:
        raise ValueError(f"cannot open {path}: {problem.strerror or problem}") from None


def _transcript_bytes(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1024:
        raise ValueError(f"{text!r} is not a number of bytes from 1024")
    return int(text)


def _history(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 10_000:
        raise ValueError(f"{text!r} is not a number of messages from 0 to 10000")
    return int(text)


def _count_or_zero(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 10_000_000:
        raise ValueError(f"{text!r} is not a whole number from 0")
    return int(text)


def _channel_name(text: str) -> str:
    try:
        return check_channel_name(text)
    except ChannelNameError as refusal:
        raise ValueError(str(refusal)) from None


def _count(text: str) -> int:
    if not text.strip().isdigit() or not 1 <= int(text) <= 10_000_000:
        raise ValueError(f"{text!r} is not a whole number from 1")
    return int(text)


def _seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 30 * 24 * 3600:
        raise ValueError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def _seconds(text: str) -> float:
    value = _seconds_or_zero(text)
    if value == 0:
        raise ValueError("0 s leaves no time at all")
    return value


def _max_line(text: str) -> int:
    if not text.strip().isdigit() or not MIN_LINE_BYTES <= int(text) <= MAX_LINE_BYTES:
        raise ValueError(f"{text!r} is not a number of bytes from {MIN_LINE_BYTES} to {MAX_LINE_BYTES}")
    return int(text)


def _charset(text: str) -> str:
    try:
        return check_charset(text)
    except CharsetError as refusal:
        raise ValueError(f"{refusal} (try utf-8, gbk, big5, latin-1)") from None


def _name(text: str | None) -> str:
    name = clean(socket.gethostname() if text is None else text).strip()
    if not name:
        raise ValueError("the name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"the name is longer than {MAX_NAME_CHARS} characters")
    return name


def makeService(options: Options, reactor: Any = None) -> MultiService:
    """
    The chat, then the UDP services, as children of one MultiService.
    Twisted starts children in order (so the announcers know the chat port)
    and stops them in reverse (so the last announcement still has it).
    """
    if reactor is None:  # under twistd
        from twisted.internet import reactor

        twistd_options = options.parent
        _exit_zero_on_signals(reactor, foreground=bool(twistd_options and twistd_options.get("nodaemon")))
        _tune_garbage_collection(reactor)
    if options["workers"]:
        return _supervise_workers(options, reactor)
    worker = options["worker"]  # 0: not a worker of --workers
    settings = Settings(
        server_name=options["name"],
        max_line_bytes=options["max-line"],
        charset=options["charset"],
        login_timeout_seconds=options["login-timeout"],
        idle_timeout_seconds=options["idle-timeout"],
        rate_lines_per_second=options["rate"],
        rate_burst_lines=options["burst"],
        flood_queue_lines=options["flood-queue"],
        send_queue_bytes=options["sendq"],
    )
    capacity = raise_open_files_limit()
    if capacity < options["max-clients"]:
        log.warn("the open files limit leaves room for {capacity} connections, fewer than --max-clients {max}",
                 capacity=capacity, max=options["max-clients"])
    else:
        log.info("open files limit leaves room for {capacity} connections; --max-clients is {max}",
                 capacity=capacity, max=options["max-clients"])
    limits = ConnectionLimits(options["max-clients"], options["max-per-ip"])
    top = MultiService()
    transcript = None
    recent: dict[str, Any] = {}
    if options["transcript"] and worker <= 1:  # one transcript for the workers of --workers: the first one's
        recent = recent_messages(options["transcript"], options["history"], options["default-channel"],
                                 options["max-channels"])
        transcript = Transcript(options["transcript"], options["transcript-max-bytes"])
    moderation = None
    if options["oper-password"] is not None:
        moderation = Moderation(options["oper-password"], reactor)
    registry = CollectorRegistry()
    turn = Turn(reactor, fan_out_histogram(registry).observe)
    server = ChatServer(
        settings.server_name, reactor, default_channel=options["default-channel"], history_size=options["history"],
        recent=recent, moderation=moderation, max_channels=options["max-channels"], quiet_joins=options["quiet-joins"],
        turn=turn,
    )
    if transcript is not None:
        server.observers.append(transcript.record)
    # One turn, one set of counts and one set of limits for every front door.
    counts = FlowCounts()
    doors: dict[str, Sized] = {}
    bus = None
    if options["cluster"] is not None:  # other nodes' events arrive as a turn of their own
        bus = RedisBus(options["cluster"], options["cluster-name"], server, reactor)
        server.bus, server.node = bus, bus.node
        cluster = _Cluster(bus)
        cluster.setName("cluster")
        cluster.setServiceParent(top)
    chat_metrics(server, doors, counts, bus, registry)
    flusher = Flusher(reactor, turn)
    web_door = site = irc_door = None
    if not options["no-web"]:
        web_door = WebDoor(server, settings, reactor, limits, flusher, counts)
        site = web_site(web_door, registry, limits, moderation, options["web-origin"])
        doors["web"] = web_door.connections
    if not options["no-irc"]:
        irc_door = IrcDoor(server, settings, reactor, limits, flusher, counts)
        doors["irc"] = irc_door.connections
    # A browser at the chat port gets the same page, and an IRC client is served as on the IRC port.
    telnet_door = TelnetDoor(server, settings, reactor, limits, flusher, counts, web=site, irc=irc_door)
    doors["telnet"] = telnet_door.connections
    shutting: list[Any] = [door for door in (telnet_door, web_door, irc_door) if door is not None]
    chat = FallbackListener(
        _binding(reactor, telnet_door, worker),
        options["interface"],
        [options["port"], *options["fallback-ports"]],
        None if worker else options["port-file"],  # the parent of --workers writes it
        what=_door_name("chat room", worker),
        after_stop_listening=lambda: _shut_down(server, shutting, options["shutdown-grace"], transcript, bus),
    )
    chat.setName("chat")
    chat.setServiceParent(top)

    if irc_door is not None:
        irc_listener = FallbackListener(
            _binding(reactor, irc_door, worker),
            options["interface"],
            [options["irc-port"], *options["irc-fallback-ports"]],
            what=_door_name("IRC", worker),
        )
        irc_listener.setName("irc")
        irc_listener.setServiceParent(top)

    web: FallbackListener | None = None
    if site is not None:
        web = FallbackListener(
            _binding(reactor, site, worker),
            options["interface"],
            [options["web-port"], *options["web-fallback-ports"]],
            what=_door_name("web page", worker),
            after_listening=(lambda port: log.info("{line}", line=_web_address_line(options["interface"], port)))
            if worker <= 1 else None,
        )
        web.setName("web")
        web.setServiceParent(top)

    if not options["no-echo"]:
        _echo(options, reactor).setServiceParent(top)

    announcing = worker <= 1  # of the workers of --workers, the first one announces
    if (options["multicast"] or options["broadcast"]) and announcing:
        herald = Herald(
            name=options["name"],
            users=lambda: server.count,
            channels=lambda: server.channel_count,
            web_port=lambda: None if web is None else web.port,
            chat_port=lambda: chat.port,
            chat_interface=options["interface"],
            clock=reactor,
            interval=options["announce-interval"],
            cluster=None if bus is None else bus.cluster,
        )
    if options["multicast"] and announcing:
        multicast_interface = options["multicast-interface"] or _concrete_ipv4(options["interface"])
        announcer = AnnouncerService(
            reactor,
            AnnouncerProtocol(herald, (options["multicast-group"], options["multicast-port"]), multicast_interface, reactor),
            options["multicast-port"],
            multicast_setup(options["multicast-group"], multicast_interface, options["multicast-ttl"]),
            what="multicast announcer",
        )
        announcer.setName("multicast")
        announcer.setServiceParent(top)
    if options["broadcast"] and announcing:
        announcer = AnnouncerService(
            reactor,
            AnnouncerProtocol(herald, (options["broadcast-address"], options["broadcast-port"]), None, reactor),
            options["broadcast-port"],
            broadcast_setup,
            what="broadcast announcer",
        )
        announcer.setName("broadcast")
        announcer.setServiceParent(top)
    if worker:
        WorkerLife(reactor).setServiceParent(top)  # last: every listener listens by now
    return top


def _door_name(what: str, worker: int) -> str:
    """How the log names a front door: "chat room", or in a worker of --workers "worker 2's chat room"."""
    return f"worker {worker}'s {what}" if worker else what


def _binding(reactor: Any, factory: Any, worker: int) -> TCPBinding:
    """How a front door listens: alone, or (a worker of --workers) on the port its parent holds for all of them."""
    return SharedPortBinding(reactor, factory) if worker else TCPBinding(reactor.listenTCP, factory)


def _echo(options: Options, reactor: Any) -> FallbackListener:
    rate = options["echo-rate"]

    def listen_echo(port: int, interface: str) -> Any:
        return listen_udp_with_destinations(reactor, port, EchoProtocol(rate, reactor), interface, batched=True)

    echo = FallbackListener(
        UDPBinding(listen_echo),
        options["interface"],
        [options["echo-port"], *options["echo-fallback-ports"]],
        what="echo service",
    )
    echo.setName("echo")
    return echo


def _supervise_workers(options: Options, reactor: Any) -> MultiService:
    """
    --workers N: this process holds the ports (with the usual fallback),
    runs the echo service, and starts and watches N worker processes, each
    a whole chatd node on those ports (see chatd/service/workers.py).
    """
    top = MultiService()
    held, lines, ports = [], [], {}
    for door, option, what, absent in (("chat", "port", "chat room", False),
                                       ("irc", "irc-port", "IRC", options["no-irc"]),
                                       ("web", "web-port", "web page", options["no-web"])):
        if absent:
            continue
        fallback = "fallback-ports" if door == "chat" else f"{door}-fallback-ports"
        try:
            reservation, line = reserve_port(options["interface"], [options[option], *options[fallback]], what)
        except ListenError as failure:
            log.error("{failure}", failure=str(failure))
            raise SystemExit(1) from None
        held.append(reservation)
        lines.append(line)
        ports[door] = reservation.getsockname()[1]
    reservations = Reservations(held, lines, options["port-file"], ports["chat"], options["workers"])
    reservations.setServiceParent(top)
    if not options["no-echo"]:
        _echo(options, reactor).setServiceParent(top)
    Supervisor(reactor, options["workers"], lambda number: worker_command(options.argv, number, ports),
               reservations.workers_ready).setServiceParent(top)
    return top


def _shut_down(server: ChatServer, doors: list[Any], grace: float, transcript: Transcript | None,
               bus: RedisBus | None = None) -> Any:
    """
    Close every connection of every front door, then leave the cluster
    (the others have heard of their leaving) and close the transcript,
    which records it.
    """
    server.stop()
    closed = DeferredList([door.shut_down(grace) for door in doors])
    if bus is not None:
        closed.addBoth(lambda result: bus.leave())
    if transcript is not None:

        def close_transcript(result: object) -> object:
            transcript.close()
            return result

        closed.addBoth(close_transcript)
    return closed


class _Cluster(Service):
    """Joins the cluster when chatd starts; it leaves once its users are gone (see _shut_down)."""

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus

    def startService(self) -> None:
        super().startService()
        self.bus.start()


def _tune_garbage_collection(reactor: Any) -> None:
    """
    A chat server holds many long-lived objects (a few dozen per
    connection), and Python's cyclic garbage collector, as it comes, runs a
    young collection every 700 allocations and rescans the whole heap each
    time it grows by a quarter: in a storm of 5 000 logins that was about a
    quarter of chatd's time.  chatd makes few reference cycles (its garbage
    goes with reference counting), so: a young collection every 10 000
    allocations, and once running, everything loaded at start (Twisted,
    chatd's modules) moved out of the collector's sight with gc.freeze(), so
    that full collections scan only what the chat itself holds.  (At 50 000
    the young collections grew long enough to show in the latency tail.)
    """
    gc.set_threshold(10_000, 20, 10)
    reactor.callWhenRunning(gc.freeze)


def _exit_zero_on_signals(reactor: Any, foreground: bool) -> None:
    """
    SIGTERM and SIGINT stop chatd gracefully and end twistd with status 0.
    (Twisted's own handlers make twistd re-raise the signal at exit, which
    init systems and scripts read as a crash.)  In the foreground
    (twistd -n, make run), so does SIGHUP: the terminal running chatd was
    closed.  A daemon has no terminal to lose, so there SIGHUP is left as
    twistd leaves it.
    """
    signals = [signal.SIGTERM, signal.SIGINT] + ([signal.SIGHUP] if foreground else [])

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        if stopping:  # a second signal (a second Ctrl-C, or one to the whole process group): already on the way
            return
        stopping = True
        log.info("received {signal}; shutting down", signal=signal.Signals(signum).name)
        reactor.callFromThread(reactor.stop)

    def install() -> None:
        for signum in signals:
            signal.signal(signum, stop)

    # After startup, so these replace the handlers the reactor installs.
    reactor.callWhenRunning(install)


def _web_address_line(interface: str, port: int) -> str:
    """
    Where to point a browser: the interface when it is a concrete address;
    listening on all, this host's name (as others on the LAN may know it)
    and localhost.
    """
    if not ipaddress.ip_address(interface).is_unspecified:
        return f"open http://{format_address(interface, port)}/ in a browser to chat"
    return (f"open http://{format_address(socket.gethostname(), port)}/ in a browser to chat "
            f"(http://localhost:{port}/ on this machine)")


def _concrete_ipv4(interface: str) -> str | None:
    address = ipaddress.ip_address(interface)
    return interface if address.version == 4 and not address.is_unspecified else None
