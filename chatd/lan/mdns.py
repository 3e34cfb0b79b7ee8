"""
chatd in every device's own service browser: DNS-SD over multicast DNS
(what chatd/lan/dnssd.py says), published and browsed with python-zeroconf.

python-zeroconf does the protocol: probing before a name is claimed,
answering queries (with known-answer suppression), announcing, goodbyes.
Each Zeroconf runs its asyncio loop in a thread of its own; chatd hands it
coroutines with asyncio.run_coroutine_threadsafe and gets each result back
on the reactor thread as a Deferred (`_on_loop`), so the reactor never
waits on the network.  Creating and closing a Zeroconf (its sockets and the
join of its thread) happen in the reactor's thread pool.

One Zeroconf per published IPv4 address: python-zeroconf answers with every
address a service has on every interface it serves, so chatd on 0.0.0.0
publishes each interface's own address only on that interface this way.

Sent only where chatd is told to (--mdns, on --mdns-interface or on the
interfaces chatd listens on): multicast DNS is LAN traffic.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import ifaddr
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from zeroconf import (
    DNSQuestionType,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceBrowser,
    ServiceInfo,
    ServiceListener,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceInfo

from chatd import __version__
from chatd.lan.announcement import Announcement, NotAnAnnouncement
from chatd.lan.dnssd import CHATD_TYPE, DOMAIN, Listing, Offer, announcement_from_txt, host_label, instance_name, offers
from chatd.lan.udp import Herald

log = Logger()

# The users online in _chatd._tcp's TXT are published again at most this often.
UPDATE_EVERY_SECONDS = 30.0
# After this many names taken ("chatd on lab (20)"), chatd stops trying.
MAX_NAME_ATTEMPTS = 20
RESOLVE_TIMEOUT_MS = 3000
# How long a multicast lookup of a name waits for its owner before the name is probed (see _Publisher._register).
LOOKUP_MS = 1500


def publish_addresses(interface: str, mdns_interfaces: Sequence[str]) -> list[str]:
    """
    Where chatd publishes: the --mdns-interface addresses when given; else
    the address chatd listens on (--interface) when it is a concrete IPv4
    one; else (0.0.0.0 or ::) every IPv4 address of this host's interfaces
    except loopback's.  IPv6-only --interface: none (mDNS here is IPv4).
    """
    if mdns_interfaces:
        return list(mdns_interfaces)
    address = ipaddress.ip_address(interface)
    if not address.is_unspecified:
        return [interface] if address.version == 4 else []
    return [str(ip) for ip in sorted(map(ipaddress.IPv4Address, host_ipv4_addresses()))
            if not ip.is_loopback]


def host_ipv4_addresses() -> set[str]:
    """Every IPv4 address of this host's interfaces, loopback's included."""
    return {ip.ip for adapter in ifaddr.get_adapters() for ip in adapter.ips if ip.is_IPv4 and isinstance(ip.ip, str)}


def listing_of(herald: Herald) -> Listing:
    """What the announcers' Herald says now, as the services publish it."""
    return Listing(
        id=herald.id, version=__version__, name=herald.name, chat=herald.chat_port() or 0, users=herald.users(),
        channels=herald.channels(), web=herald.web_port(), irc=herald.irc_port(), https=herald.web_tls_port(),
        ircs=herald.irc_tls_port(), cluster=herald.cluster, fingerprint=herald.fingerprint(),
    )


def _on_loop(reactor: Any, zeroconf: Zeroconf, coroutine: Coroutine[Any, Any, Any]) -> Deferred[Any]:
    """Run `coroutine` on `zeroconf`'s loop (its thread); its result or error arrives on the reactor thread."""
    assert zeroconf.loop is not None
    future = asyncio.run_coroutine_threadsafe(coroutine, zeroconf.loop)
    result: Deferred[Any] = Deferred()

    def settle(done: Any) -> None:
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is None:
            result.callback(done.result())
        else:
            result.errback(error)

    future.add_done_callback(lambda done: reactor.callFromThread(settle, done))
    return result


class _Publisher:
    """The services on one address: one Zeroconf, its thread, its sockets."""

    def __init__(self, reactor: Any, zeroconf: Zeroconf, address: str, server: str) -> None:
        self.reactor = reactor
        self.zeroconf = zeroconf
        self.address = address
        self.server = server
        self.infos: list[ServiceInfo] = []

    def info(self, offer: Offer, name: str) -> ServiceInfo:
        return ServiceInfo(offer.type, f"{name}.{offer.type}", port=offer.port, properties=offer.txt,
                           server=self.server, parsed_addresses=[self.address])

    def register(self, listing: Listing, name: str) -> Deferred[Any]:
        """
        Claim `name` for every offer, or NonUniqueNameException if it is
        taken.  First a lookup asking for multicast answers (QM), then
        python-zeroconf's probe (RFC 6762 section 8.1).  The probe asks for
        unicast answers (QU), and a unicast answer to port 5353 reaches only
        one of the programs sharing that port on this host (avahi-daemon,
        another chatd, a browser: RFC 6762 section 15.1), so on its own it
        can miss a name taken; a multicast answer reaches every one.
        """
        infos = [self.info(offer, name) for offer in offers(listing)]
        return _on_loop(self.reactor, self.zeroconf, self._register(infos))

    async def _register(self, infos: list[ServiceInfo]) -> None:
        zeroconf = self.zeroconf
        lookups = [AsyncServiceInfo(info.type, info.name) for info in infos]
        if any(await asyncio.gather(*(lookup.async_request(zeroconf, LOOKUP_MS, question_type=DNSQuestionType.QM)
                                      for lookup in lookups))):
            raise NonUniqueNameException
        results = await asyncio.gather(*(zeroconf.async_register_service(info) for info in infos),
                                       return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:  # withdraw what was claimed, so all types keep one name
            for info, result in zip(infos, results):
                if not isinstance(result, BaseException):
                    await zeroconf.async_unregister_service(info)
            raise failures[0]
        self.infos = infos

    def withdraw(self) -> Deferred[Any]:
        """Give up the name claimed here (another address found it taken): goodbyes for each service."""
        infos, self.infos = self.infos, []

        async def withdraw_all() -> None:
            for info in infos:
                await self.zeroconf.async_unregister_service(info)

        return _on_loop(self.reactor, self.zeroconf, withdraw_all())

    def update(self, listing: Listing) -> Deferred[Any]:
        """Publish the _chatd._tcp TXT again (the users online)."""
        chatd_info = self.infos[-1]
        info = self.info(offers(listing)[-1], chatd_info.name.removesuffix("." + CHATD_TYPE))
        self.infos[-1] = info
        return _on_loop(self.reactor, self.zeroconf, self.zeroconf.async_update_service(info))

    def close(self, thread_pool: Any) -> Deferred[Any]:
        """Goodbyes for every service (RFC 6762 section 10.1), then the sockets, then the thread is joined."""
        said_goodbye = _on_loop(self.reactor, self.zeroconf, self.zeroconf.async_unregister_all_services())
        said_goodbye.addErrback(lambda failure: log.warn("mDNS: goodbyes on {address} failed: {why}",
                                                         address=self.address, why=failure.getErrorMessage()))
        return said_goodbye.addCallback(lambda _: deferToThreadPool(self.reactor, thread_pool, self.zeroconf.close))


class MdnsService(Service):
    """
    --mdns: publishes chatd's services (chatd/lan/dnssd.py) on `addresses`
    once the listeners have their ports, renames them while their name is
    taken, publishes the users online again when they change (at most every
    UPDATE_EVERY_SECONDS), and on stop sends goodbyes and closes every
    Zeroconf, its thread joined, before it reports itself stopped.
    """

    def __init__(self, reactor: Any, herald: Herald, addresses: Sequence[str], hostname: str | None = None,
                 clock: IReactorTime | None = None) -> None:
        """`clock` times the updates of the users online (the reactor's unless a test fakes it)."""
        self.reactor = reactor
        self.herald = herald
        self.addresses = list(addresses)
        self.server = f"{host_label(socket.gethostname() if hostname is None else hostname)}.{DOMAIN}"
        self._publishers: list[_Publisher] = []
        self.listing: Listing | None = None  # what is published now
        self.name: str | None = None  # the instance name chatd got, once it has one
        self._started = self._stopping = False
        self.ready: Deferred[Any] = Deferred()  # fires once started: published, or given up
        self._updates = LoopingCall(self._update)
        self._updates.clock = reactor if clock is None else clock

    def startService(self) -> None:
        super().startService()
        self._started = True
        self._start().chainDeferred(self.ready)
        self.ready.addErrback(lambda failure: log.failure("mDNS: publishing failed", failure))

    @inlineCallbacks
    def _start(self) -> Any:
        if not self.addresses:
            log.warn("mDNS: no IPv4 address to publish on (give --mdns-interface); chatd is not published by mDNS")
            return
        pool = self.reactor.getThreadPool()
        ours = host_ipv4_addresses()
        for address in self.addresses:
            if address not in ours:
                log.warn("mDNS: {address} is not an address of this host's interfaces; not published there",
                         address=address)
                continue
            try:
                zeroconf = yield deferToThreadPool(self.reactor, pool, _zeroconf_on, address)
            except OSError as error:
                log.warn("mDNS: cannot publish on {address}: {why}", address=address, why=error.strerror or str(error))
                continue
            self._publishers.append(_Publisher(self.reactor, zeroconf, address, self.server))
        listing = listing_of(self.herald)
        for attempt in range(1, MAX_NAME_ATTEMPTS + 1):
            if self._stopping or not self._publishers:
                return
            name = instance_name(self.herald.name, attempt)
            results = yield DeferredList([publisher.register(listing, name) for publisher in self._publishers],
                                         consumeErrors=True)
            taken = [failure for ok, failure in results if not ok and failure.check(NonUniqueNameException)]
            broken = [(publisher, failure) for publisher, (ok, failure) in zip(self._publishers, results)
                      if not ok and not failure.check(NonUniqueNameException)]
            for publisher, failure in broken:
                log.warn("mDNS: cannot publish on {address}: {why}", address=publisher.address,
                         why=failure.getErrorMessage() or failure.type.__name__)
                self._publishers.remove(publisher)
                yield publisher.close(pool)
            if taken:
                log.warn('mDNS: the name "{name}" is taken on the LAN; trying "{next}"', name=name,
                         next=instance_name(self.herald.name, attempt + 1))
                yield DeferredList([publisher.withdraw() for publisher in self._publishers if publisher.infos],
                                   consumeErrors=True)
                continue
            if self._publishers:
                self.name, self.listing = name, listing
                log.info('mDNS: published "{name}" on {addresses} ({services})', name=name,
                         addresses=", ".join(publisher.address for publisher in self._publishers),
                         services=", ".join(f"{offer.type.removesuffix('.' + DOMAIN)} {offer.port}"
                                            for offer in offers(listing)))
                self._updates.start(UPDATE_EVERY_SECONDS, now=False)
            return
        log.error('mDNS: gave up after {count} names were taken ("{name}")', count=MAX_NAME_ATTEMPTS,
                  name=instance_name(self.herald.name, MAX_NAME_ATTEMPTS))

    def _update(self) -> None:
        listing = listing_of(self.herald)
        if listing == self.listing:
            return
        self.listing = listing
        for publisher in self._publishers:
            publisher.update(listing).addErrback(self._not_updated, publisher.address)

    def _not_updated(self, failure: Failure, address: str) -> None:
        log.warn("mDNS: cannot update the users online on {address}: {why}", address=address,
                 why=failure.getErrorMessage())

    def stopService(self) -> Any:
        super().stopService()
        self._stopping = True
        if self._updates.running:
            self._updates.stop()
        if not self._started:
            return None
        pool = self.reactor.getThreadPool()
        stopped: Deferred[Any] = Deferred()

        def close(result: object) -> object:
            closed = DeferredList([publisher.close(pool) for publisher in self._publishers])
            if self.name is not None:
                closed.addCallback(lambda _: log.info('mDNS: "{name}" withdrawn (goodbyes sent)', name=self.name))
            closed.chainDeferred(stopped)
            return result

        # A start still probing finishes first (a few seconds at most), so no Zeroconf is left open behind it.
        self.ready.addBoth(close)
        return stopped


def _zeroconf_on(address: str) -> Zeroconf:
    """A Zeroconf that sends and answers on `address`'s interface only (IPv4), in a thread of its own."""
    return Zeroconf(interfaces=[address], ip_version=IPVersion.V4Only, use_asyncio=False)


class ChatdBrowser(ServiceListener):
    """
    chatd-listen's side: the _chatd._tcp services on the LAN, each resolved
    (in the browser's thread, as python-zeroconf intends) and reported on
    the reactor thread as the announcement its TXT record makes, or gone.
    """

    def __init__(self, reactor: Any, interface: str | None, found: Callable[[str, Announcement], None],
                 gone: Callable[[str], None]) -> None:
        self.reactor = reactor
        self.interface = interface
        self.found = found
        self.gone = gone
        self.ignored = 0  # services that were not chatd's TXT record as this chatd-listen reads it
        self._zeroconf: Zeroconf | None = None
        self._browser: ServiceBrowser | None = None

    @inlineCallbacks
    def start(self) -> Any:
        """Browse on `interface`'s interface (IPv4), or on every interface."""
        interfaces: Any = [self.interface] if self.interface else InterfaceChoice.All
        self._zeroconf = yield deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(),
            lambda: Zeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only, use_asyncio=False))
        self._browser = ServiceBrowser(self._zeroconf, CHATD_TYPE, self)

    def stop(self) -> Deferred[Any]:
        zeroconf, browser, self._zeroconf, self._browser = self._zeroconf, self._browser, None, None

        def close() -> None:
            if browser is not None:
                browser.cancel()
            if zeroconf is not None:
                zeroconf.close()

        return deferToThreadPool(self.reactor, self.reactor.getThreadPool(), close)

    def add_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        info = zc.get_service_info(type_, name, RESOLVE_TIMEOUT_MS)
        addresses = [] if info is None else info.parsed_addresses(IPVersion.V4Only)
        if info is None or info.port is None or not addresses:
            return  # not resolved in time: it may be found at its next announcement
        try:
            found = announcement_from_txt(info.decoded_properties, addresses[0], info.port, int(time.time()))
        except NotAnAnnouncement:
            self.reactor.callFromThread(self._ignore)
            return
        self.reactor.callFromThread(self.found, name, found)

    update_service = add_service

    def remove_service(self, zc: Zeroconf, type_: str, name: str) -> None:
        self.reactor.callFromThread(self.gone, name)

    def _ignore(self) -> None:
        self.ignored += 1
