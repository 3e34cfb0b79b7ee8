"""
`twistd chatd`: the service its options (chatd.service.options) describe.
The composition root: the only module that knows every package.

makeService returns a MultiService, so the UDP services can later join the
chat server as its siblings.
"""

from __future__ import annotations

import gc
import ipaddress
import signal
import socket
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from twisted.application.service import MultiService, Service
from twisted.internet.defer import DeferredList
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from chatd.bus.redis import RedisBus
from chatd.bus.store import RedisStore
from chatd.core.moderation import Moderation
from chatd.core.server import ChatServer
from chatd.core.store import NOTE_DAYS, NoStore
from chatd.core.turn import Turn
from chatd.lan.udp import (
    AnnouncerProtocol,
    AnnouncerService,
    EchoProtocol,
    Herald,
    broadcast_setup,
    listen_udp_with_destinations,
    multicast_setup,
)
from chatd.lan.mdns import MdnsService, publish_addresses
from chatd.net.certificate import load
from chatd.net.door import Connections
from chatd.net.flow import FlowCounts, Flusher
from chatd.net.handshake import HandshakeFailures, TLSEntrance
from chatd.net.tls import ServerTLS
from chatd.net.twisted_private import listen_tcp
from chatd.net.limits import ConnectionLimits, raise_open_files_limit
from chatd.service.metrics import chat_metrics, fan_out_histogram
from chatd.service.options import Options, settings_of
from chatd.net.addresses import format_address
from chatd.service.listening import (
    FallbackListener,
    ListenError,
    TCPBinding,
    UDPBinding,
)
from chatd.service.transcript import Transcript, merged_recent, recent_messages
from chatd.store.passwords import Passwords
from chatd.store.sqlite import SQLiteStore, kept_at_start
from chatd.service.workers import Reservations, SharedPortBinding, Supervisor, WorkerLife, reserve_port, worker_command
from chatd.telnet.protocol import TelnetDoor
from chatd.irc.protocol import IrcDoor
from chatd.web.protocol import WebDoor
from chatd.web.site import web_site

log = Logger()

FORGET_EVERY_SECONDS = 3600.0


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
    settings = settings_of(options)
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
    store: SQLiteStore | RedisStore | None = None
    recent: dict[str, Any] = {}
    if options["cluster"] is not None and not options["no-store"]:  # accounts, notes and history in its Redis
        store = RedisStore(options["cluster"], options["cluster-name"], reactor, Passwords(reactor),
                           options["default-channel"])
    if options["store-path"] is not None:  # channels, their topics and their history, as they were
        recent = kept_at_start(options["store-path"], options["history"], options["max-channels"],
                               options["default-channel"])
        store = SQLiteStore(options["store-path"], reactor, options["default-channel"])
        if worker <= 1:
            log.info("channels, topics and history are kept in {path} ({count} channel(s) from before)",
                     path=str(options["store-path"]), count=len(recent))
    if options["transcript"] and worker <= 1:  # one transcript for the workers of --workers: the first one's
        logged = recent_messages(options["transcript"], options["history"], options["default-channel"],
                                 options["max-channels"])
        recent = merged_recent(recent, logged, options["history"])
        transcript = Transcript(options["transcript"], options["transcript-max-bytes"])
    moderation = None
    if options["oper-password"] is not None:
        moderation = Moderation(options["oper-password"], reactor)
    registry = CollectorRegistry()
    turn = Turn(reactor, fan_out_histogram(registry).observe)
    server = ChatServer(
        settings.server_name, reactor, default_channel=options["default-channel"], history_size=options["history"],
        recent=recent, moderation=moderation, max_channels=options["max-channels"], quiet_joins=options["quiet-joins"],
        turn=turn, store=NoStore() if store is None else store,
    )
    if transcript is not None:
        server.observers.append(transcript.record)
    if isinstance(store, RedisStore):
        store.accounts_changed = server.accounts_changed
    # One turn, one set of counts and one set of limits for every front door.
    counts = FlowCounts()
    doors: dict[str, Connections] = {}
    bus = None
    if options["cluster"] is not None:  # other nodes' events arrive as a turn of their own
        bus = RedisBus(options["cluster"], options["cluster-name"], server, reactor)
        server.bus, server.node = bus, bus.node
        cluster = _Cluster(bus)
        cluster.setName("cluster")
        cluster.setServiceParent(top)
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
    server_tls = handshake_failures = None
    # The listeners made below, which the web page's offer of TLS and the announcements name.
    irc_listener = irc_tls_listener = web_tls = None
    if options["certificate"] is not None:
        server_tls, handshake_failures = _server_tls(options, worker), HandshakeFailures(reactor)

        def entrance(door: Any, web: Any = None) -> TLSEntrance:
            assert server_tls is not None and handshake_failures is not None
            return TLSEntrance(server_tls, door, clock=reactor, limits=limits,
                               is_banned=lambda address: moderation is not None and moderation.is_banned(address),
                               login_timeout_seconds=settings.login_timeout_seconds, failures=handshake_failures,
                               web=web)

        # A ClientHello on any plain port is served as TLS; on the chat port, one whose ALPN asks for HTTP is the web page's.
        telnet_door.tls = entrance(telnet_door, web=site)
        if irc_door is not None:
            irc_door.tls = entrance(irc_door)
        if site is not None:
            site.tls = entrance(site)
        if web_door is not None:  # the page over plain HTTP links to itself over TLS, with the fingerprint to check
            web_door.https = lambda: None if web_tls is None or web_tls.port is None else (
                web_tls.port, server_tls.certificate.fingerprint)
    chat_metrics(server, doors, counts, bus, registry, handshake_failures)
    shutting: list[Any] = [door for door in (telnet_door, web_door, irc_door) if door is not None]
    chat = FallbackListener(
        _binding(reactor, telnet_door, worker),
        options["interface"],
        [options["port"], *options["fallback-ports"]],
        None if worker else options["port-file"],  # the parent of --workers writes it
        what=_door_name("chat room", worker),
        after_stop_listening=lambda: _shut_down(server, shutting, options["shutdown-grace"], transcript, bus, store),
    )
    chat.setName("chat")
    chat.setServiceParent(top)

    if irc_door is not None:
        irc_listener = _listener(top, "irc", irc_door, options, "irc-port", "IRC", reactor, worker)
        if irc_door.tls is not None:
            irc_tls_listener = _listener(top, "irc-tls", irc_door.tls, options, "irc-tls-port", "IRC over TLS",
                                         reactor, worker)

    web: FallbackListener | None = None
    if site is not None:
        web = _listener(top, "web", site, options, "web-port", "web page", reactor, worker,
                        _say_where_to_browse(options["interface"], "http") if worker <= 1 else None)
        if site.tls is not None:
            web_tls = _listener(top, "web-tls", site.tls, options, "web-tls-port", "web page over TLS", reactor,
                                worker, _say_where_to_browse(options["interface"], "https") if worker <= 1 else None)

    if not options["no-echo"]:
        _echo(options, reactor).setServiceParent(top)

    announcing = worker <= 1  # of the workers of --workers, the first one announces (and publishes by mDNS)
    if (options["multicast"] or options["broadcast"] or options["mdns"]) and announcing:
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
            irc_port=lambda: None if irc_listener is None else irc_listener.port,
            web_tls_port=lambda: None if web_tls is None else web_tls.port,
            irc_tls_port=lambda: None if irc_tls_listener is None else irc_tls_listener.port,
            fingerprint=lambda: None if server_tls is None else server_tls.certificate.fingerprint,
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
    if options["mdns"] and announcing:  # last of the LAN services: it publishes the ports the listeners got
        mdns = MdnsService(reactor, herald, publish_addresses(options["interface"], options["mdns-interface"]))
        mdns.setName("mdns")
        mdns.setServiceParent(top)
    if store is not None:
        forgetting = _Forgetting(store, server, options["history-days"], options["account-expiry-days"], reactor)
        forgetting.setName("store")
        forgetting.setServiceParent(top)
    if server_tls is not None:
        watch = _CertificateWatch(server_tls, reactor)
        watch.setName("certificate")
        watch.setServiceParent(top)
    if worker:
        WorkerLife(reactor).setServiceParent(top)  # last: every listener listens by now
    return top


def _listener(top: MultiService, name: str, factory: Any, options: Options, port_option: str, what: str,
              reactor: Any, worker: int, after_listening: Callable[[int], None] | None = None) -> FallbackListener:
    """A front door's listener on its --*-port, falling back as its --*-fallback says: a service of `top`, named `name`."""
    fallback = f"{port_option.removesuffix('-port')}-fallback-ports"
    listener = FallbackListener(_binding(reactor, factory, worker), options["interface"],
                                [options[port_option], *options[fallback]], what=_door_name(what, worker),
                                after_listening=after_listening)
    listener.setName(name)
    listener.setServiceParent(top)
    return listener


def _say_where_to_browse(interface: str, scheme: str) -> Callable[[int], None]:
    """Once the web page listens (over `scheme`), the log says where to point a browser."""
    return lambda port: log.info("{line}", line=_web_address_line(interface, port, scheme))


def _door_name(what: str, worker: int) -> str:
    """How the log names a front door: "chat room", or in a worker of --workers "worker 2's chat room"."""
    return f"worker {worker}'s {what}" if worker else what


def _binding(reactor: Any, factory: Any, worker: int) -> TCPBinding:
    """How a front door listens: alone, or (a worker of --workers) on the port its parent holds for all of them."""
    return SharedPortBinding(reactor, factory) if worker else TCPBinding(listen_tcp(reactor), factory)


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
    no_tls = options["certificate"] is None
    for door, option, what, absent in (("chat", "port", "chat room", False),
                                       ("irc", "irc-port", "IRC", options["no-irc"]),
                                       ("web", "web-port", "web page", options["no-web"]),
                                       ("irc-tls", "irc-tls-port", "IRC over TLS", options["no-irc"] or no_tls),
                                       ("web-tls", "web-tls-port", "web page over TLS", options["no-web"] or no_tls)):
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
               bus: RedisBus | None = None, store: SQLiteStore | RedisStore | None = None) -> Any:
    """
    Close every connection of every front door, then leave the cluster
    (the others have heard of their leaving) and close the transcript,
    which records it.
    """
    closed = DeferredList([door.shut_down(grace) for door in doors])
    server.stop()  # everyone has left by now (shut_down says so at once): the log counts them all
    if bus is not None:
        closed.addBoth(lambda result: bus.leave())
    if transcript is not None:

        def close_transcript(result: object) -> object:
            transcript.close()
            return result

        closed.addBoth(close_transcript)
    if store is not None:  # last: it keeps what was said until the end

        def close_store(result: object) -> object:
            return store.close().addBoth(lambda _: result)

        closed.addBoth(close_store)
    return closed


class _Forgetting(Service):
    """
    Starts the store (its connection, in its thread); then, at once and
    every FORGET_EVERY_SECONDS, it forgets the history older than
    --history-days (0: none), the messages for people away older than
    NOTE_DAYS, and the accounts nobody used for --account-expiry-days
    (0: none).  (It is closed last of all, in _shut_down.)
    """

    def __init__(self, store: SQLiteStore | RedisStore, server: ChatServer, days: int, account_days: int,
                 reactor: Any) -> None:
        self._store = store
        self._server = server
        self._days = days
        self._account_days = account_days
        self._loop = LoopingCall(self._forget)
        self._loop.clock = reactor

    def startService(self) -> None:
        super().startService()
        self._store.start()
        # The cluster's Redis is not connected yet: its first forgetting waits an hour.
        self._loop.start(FORGET_EVERY_SECONDS, now=isinstance(self._store, SQLiteStore))

    def stopService(self) -> Any:
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    def _forget(self) -> None:
        now, day = self._loop.clock.seconds(), 24 * 3600
        if self._days:
            self._store.forget_before(now - self._days * day).addErrback(
                lambda failure: log.warn("the store could not forget old history: {why}",
                                         why=failure.getErrorMessage()))
        self._store.forget_notes_before(now - NOTE_DAYS * day).addErrback(
            lambda failure: log.warn("the store could not forget old messages: {why}", why=failure.getErrorMessage()))
        if self._account_days:
            self._server.expire_accounts(now - self._account_days * day)


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


def _web_address_line(interface: str, port: int, scheme: str = "http") -> str:
    """
    Where to point a browser: the interface when it is a concrete address;
    listening on all, this host's name (as others on the LAN may know it)
    and localhost.
    """
    if not ipaddress.ip_address(interface).is_unspecified:
        return f"open {scheme}://{format_address(interface, port)}/ in a browser to chat"
    return (f"open {scheme}://{format_address(socket.gethostname(), port)}/ in a browser to chat "
            f"({scheme}://localhost:{port}/ on this machine)")


def _server_tls(options: Options, worker: int) -> ServerTLS:
    """
    TLS for every door: the certificate (its fingerprint logged, for users
    to compare with what their browser shows), followed on disk.
    """
    certificate = options["certificate"]
    if worker <= 1:
        log.info("TLS certificate {origin}; SHA-256 fingerprint {fingerprint}", origin=options["certificate-origin"],
                 fingerprint=certificate.fingerprint)
    return ServerTLS(certificate, lambda: load(certificate.certificate_file, certificate.key_file))


class _CertificateWatch(Service):
    """Looks at the certificate's files while chatd runs, so a replaced one is served without a restart."""

    def __init__(self, server_tls: ServerTLS, reactor: Any) -> None:
        self.server_tls = server_tls
        self.reactor = reactor

    def startService(self) -> None:
        super().startService()
        self.server_tls.start(self.reactor)

    def stopService(self) -> Any:
        self.server_tls.stop()
        return super().stopService()


def _concrete_ipv4(interface: str) -> str | None:
    address = ipaddress.ip_address(interface)
    return interface if address.version == 4 and not address.is_unspecified else None
