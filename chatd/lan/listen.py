"""
chatd-listen: the LAN side of discovery.

    chatd-listen                      list chatd servers as they announce (multicast)
    chatd-listen --broadcast          the same, from broadcast announcements
    chatd-listen --json               each announcement as one JSON object per line
    chatd-listen --mdns               the same, and the chatd servers DNS-SD lists (_chatd._tcp)
    chatd-listen --discover           ask (by the query and by mDNS), print "HOST PORT" of the
                                      first answer, exit
    telnet -E $(chatd-listen --discover)

What it prints:

    chatd "lab" at 192.0.2.5:8089, 3 users          an announcement (of a server without its web page)
    chatd "lab" at 192.0.2.5:8089, 3 users, web page http://192.0.2.5:8080/
    chatd "lab" at 192.0.2.5:8088, 3 users, web page http://192.0.2.5:8080/ and https://192.0.2.5:8443/,
        IRC 6667 and 6697 (TLS), TLS certificate SHA-256 3A:F1:...:9C
                                                     (one line) a server with TLS: its chat port
                                                     takes TLS too; compare the fingerprint with
                                                     the one the browser or client shows
    chatd "lab-2" at 192.0.2.6:8088, 4 users, node 2 of cluster "chatd"
                                                     a node of a cluster (the users
                                                     are its own; the chat is the
                                                     cluster's), numbered in the order heard
    chatd "lab" at 192.0.2.5:8089 is gone (stopping) its last one, or after three
                                                     missed intervals (silent for 15 s)
    192.0.2.5 8089                                   --discover's answer

With --mdns every line starts with how the server was found:

    multicast  chatd "lab" at 192.0.2.5:8089, 3 users, web page http://192.0.2.5:8080/
    mdns       chatd "lab" at 192.0.2.5:8089, 3 users, web page http://192.0.2.5:8080/
    mdns       chatd "lab" at 192.0.2.5:8089 is gone (goodbye)

(and with --json each object has "found": "multicast", "broadcast" or "mdns").
mDNS browsing sends queries, like --discover; it browses on --interface's
interface when given, else on every interface, as avahi-browse does.

On stderr it says where it listens once it does, and on exit how many
datagrams were not chatd announcements.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from twisted.internet import defer, task
from twisted.internet.error import CannotListenError, MulticastJoinError
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import DatagramProtocol
from twisted.python import usage

from chatd.lan import announcement
from chatd.lan.announcement import (
    DEFAULT_BROADCAST_PORT,
    DEFAULT_GROUP,
    DEFAULT_MULTICAST_PORT,
    Announcement,
    NotAnAnnouncement,
)
from chatd.core.text import clean
from chatd.lan.mdns import ChatdBrowser
from chatd.net.addresses import format_address, ipv4_address, multicast_group

DEFAULT_DISCOVER_TIMEOUT_SECONDS = 5.0
MISSED_INTERVALS = 3
QUERY_REPEAT_SECONDS = 1.0
# At most this many servers are kept (heard, and found by mDNS): a LAN full of forged ones is counted, not kept.
MAX_SERVERS = 1000


class Options(usage.Options):
    synopsis = "[--broadcast] [--json] [--mdns] [--discover [--timeout S]] [options]"
    longdesc = "Listen for chatd servers on the LAN, or find one (--discover)."

    optFlags = [
        ["broadcast", "b", "Listen for broadcast announcements instead of multicast ones."],
        ["json", "j", "Print each announcement as one JSON object per line."],
        ["discover", "d", "Ask for servers (by the query and by mDNS), print HOST PORT of the first that answers, "
         "and exit (1 if none does)."],
        ["mdns", "m", "Also list the chatd servers that DNS service discovery finds over multicast DNS (_chatd._tcp); "
         "this sends mDNS queries."],
    ]
    optParameters = [
        ["group", "g", DEFAULT_GROUP, "Multicast group to join."],
        ["port", "p", None, f"UDP port to listen on. [default: {DEFAULT_MULTICAST_PORT}, or {DEFAULT_BROADCAST_PORT} with --broadcast]"],
        ["interface", "i", None, "Address of the interface to join the group on and to ask from (mDNS too). "
         "[default: the system's choice; mDNS: every interface]"],
        ["broadcast-address", None, "255.255.255.255", "Where --discover --broadcast sends its query."],
        ["timeout", "t", None, f"Stop after this many seconds (--discover: {DEFAULT_DISCOVER_TIMEOUT_SECONDS:g} s; otherwise never)."],
        ["count", "n", None, "Stop after this many announcements."],
    ]

    def postOptions(self) -> None:
        for name, parse in (("group", multicast_group), ("interface", ipv4_address), ("broadcast-address", ipv4_address)):
            if self[name] is not None:
                try:
                    self[name] = parse(self[name])
                except ValueError as problem:
                    raise usage.UsageError(f"--{name}: {problem}") from None
        if self["port"] is None:
            self["port"] = DEFAULT_BROADCAST_PORT if self["broadcast"] else DEFAULT_MULTICAST_PORT
        self["port"] = _number("port", self["port"], int, 1, 65535)
        if self["timeout"] is None and self["discover"]:
            self["timeout"] = DEFAULT_DISCOVER_TIMEOUT_SECONDS
        if self["timeout"] is not None:
            self["timeout"] = _number("timeout", self["timeout"], float, 0.001, 86400)
        if self["count"] is not None:
            self["count"] = _number("count", self["count"], int, 1, 10**9)


def _number(name: str, text: Any, kind: type, low: float, high: float) -> Any:
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise usage.UsageError(f"--{name}: {text!r} is not a number from {low:g} to {high:g}")
    return value


def describe(found: Announcement, node: int | None = None) -> str:
    """What chatd-listen says of an announcement; `node`: its place among the nodes of its cluster heard."""
    users = f"{found.users} user{'' if found.users == 1 else 's'}"
    web = "" if found.web is None else f", web page http://{format_address(found.host, found.web)}/"
    if found.https is not None:
        web += f"{' and' if web else ', web page'} https://{format_address(found.host, found.https)}/"
    irc_ports = [str(found.irc)] if found.irc is not None else []
    if found.ircs is not None:
        irc_ports.append(f"{found.ircs} (TLS)")
    irc = f", IRC {' and '.join(irc_ports)}" if irc_ports else ""
    tls = "" if found.fingerprint is None else f", TLS certificate SHA-256 {found.fingerprint}"
    cluster = "" if found.cluster is None else f', node {node or 1} of cluster "{clean(found.cluster)}"'
    return f'chatd "{clean(found.name)}" at {format_address(found.host, found.port)}, {users}{web}{irc}{tls}{cluster}'


class Listener(DatagramProtocol):
    """Hears announcements, keeps the list of live servers, reports through `say`."""

    noisy = False

    def __init__(
        self,
        clock: IReactorTime,
        say: Callable[[str], None],
        as_json: bool = False,
        on_announcement: Callable[[Announcement], None] = lambda found: None,
    ) -> None:
        self.clock = clock
        self.say = say
        self.as_json = as_json
        self.on_announcement = on_announcement
        self.servers: dict[str, tuple[Announcement, float]] = {}
        self.ignored = 0
        self.too_many = 0  # announcements and services of servers past MAX_SERVERS, not listed
        # With mDNS browsing: the servers DNS-SD lists, by service name, and how each line says it was found.
        self.published: dict[str, Announcement] = {}
        self.how: str | None = None

    def datagramReceived(self, data: bytes, source: tuple[str, int]) -> None:
        try:
            found = announcement.decode(data)
        except NotAnAnnouncement:
            if not announcement.is_query(data):  # another listener's query is no junk
                self.ignored += 1
            return
        if found.state == "up" and found.id not in self.servers and len(self.servers) >= MAX_SERVERS:
            self.too_many += 1
            return
        self._print(found, self.how)
        if found.state == "stopping":
            if self.servers.pop(found.id, None) is not None:
                self._gone(found, "stopping", self.how)
        else:
            self.servers[found.id] = (found, self.clock.seconds())
            if not self.as_json:
                self._say(describe(found, self._place_in_cluster(found)), self.how)
        self.on_announcement(found)

    def service_found(self, name: str, found: Announcement) -> None:
        """A _chatd._tcp service resolved (or changed), as its TXT record tells it."""
        if name not in self.published and len(self.published) >= MAX_SERVERS:
            self.too_many += 1
            return
        self._print(found, "mdns")
        if not self.as_json and self.published.get(name) != found:
            self._say(describe(found), "mdns")
        self.published[name] = found
        self.on_announcement(found)

    def service_gone(self, name: str) -> None:
        """A _chatd._tcp service said goodbye (or its records expired)."""
        found = self.published.pop(name, None)
        if found is not None:
            self._gone(found, "goodbye", "mdns")

    def _print(self, found: Announcement, how: str | None) -> None:
        if self.as_json:
            fields = found.fields()
            if how is not None:
                fields["found"] = how
            self.say(json.dumps(fields, ensure_ascii=False))

    def _say(self, line: str, how: str | None) -> None:
        self.say(line if how is None else f"{how:<10} {line}")

    def _place_in_cluster(self, found: Announcement) -> int | None:
        """Which of the live nodes of `found`'s cluster it is, in the order first heard (1, 2, ...)."""
        if found.cluster is None:
            return None
        nodes = [key for key, (other, _) in self.servers.items() if other.cluster == found.cluster]
        return nodes.index(found.id) + 1

    def forget_silent(self) -> None:
        """Drop servers that missed three intervals."""
        now = self.clock.seconds()
        for key, (found, seen) in list(self.servers.items()):
            if now - seen > MISSED_INTERVALS * found.interval:
                del self.servers[key]
                self._gone(found, f"silent for {now - seen:.0f} s", self.how)

    def _gone(self, found: Announcement, why: str, how: str | None) -> None:
        if not self.as_json:
            self._say(f'chatd "{clean(found.name)}" at {format_address(found.host, found.port)} is gone ({why})', how)


class _Forward(DatagramProtocol):
    """A second port for the listener (a protocol serves one port only)."""

    noisy = False

    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def datagramReceived(self, data: bytes, source: tuple[str, int]) -> None:
        self.listener.datagramReceived(data, source)


def _say_to(out: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    return say


@defer.inlineCallbacks
def run(reactor: Any, options: Options, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> Any:
    """Listen (and ask, with --discover) until done; return the exit status."""
    discover = options["discover"]
    done: defer.Deferred[int] = defer.Deferred()
    heard = 0

    def finish(status: int, line: str | None = None) -> None:
        if not done.called:
            if line is not None:
                _say_to(out)(line)
            done.callback(status)

    def on_announcement(found: Announcement) -> None:
        nonlocal heard
        heard += 1
        if discover:
            if found.state == "up":
                finish(0, f"{found.host} {found.port}")
        elif options["count"] is not None and heard >= options["count"]:
            finish(0)

    say = (lambda line: None) if discover else _say_to(out)
    listener = Listener(reactor, say, options["json"], on_announcement)
    browser = None
    if options["mdns"] or discover:
        browser = ChatdBrowser(reactor, options["interface"], listener.service_found, listener.service_gone)
        listener.how = "broadcast" if options["broadcast"] else "multicast"

    def report_ignored() -> None:
        if listener.ignored:
            err.write(f"chatd-listen: ignored {listener.ignored} datagram(s) that were not chatd announcements\n")
        if listener.too_many:
            err.write(f"chatd-listen: {listener.too_many} announcement(s) of servers past the first {MAX_SERVERS} "
                      "were not listed\n")
        if browser is not None and browser.ignored:
            err.write(f"chatd-listen: ignored {browser.ignored} _chatd._tcp service(s) whose TXT record was not "
                      "chatd's\n")
        err.flush()

    # Also on Ctrl-C, which stops the reactor without finishing `done`.
    reactor.addSystemEventTrigger("before", "shutdown", report_ignored)

    try:
        port = reactor.listenMulticast(options["port"], listener, listenMultiple=True)
    except CannotListenError as failure:
        reason = getattr(failure.socketError, "strerror", None) or str(failure.socketError)
        err.write(f"chatd-listen: cannot listen on UDP port {options['port']}: {reason} "
                  "(another program holds it without sharing it)\n")
        return 1
    if options["broadcast"]:
        where = f"broadcasts to UDP port {options['port']}"
    else:
        try:
            yield port.joinGroup(options["group"], options["interface"] or "")
        except MulticastJoinError as failure:
            err.write(f"chatd-listen: cannot join the multicast group {options['group']}"
                      + (f" on {options['interface']}" if options["interface"] else "")
                      + f": {failure.args[-1] if failure.args else failure}\n")
            yield port.stopListening()
            return 1
        where = f"{options['group']}:{options['port']}" + (f" on {options['interface']}" if options["interface"] else "")
    # On stderr, so stdout carries only announcements (or HOST PORT).
    err.write(f"chatd-listen: listening for chatd announcements ({where})\n")
    err.flush()
    stopping: list[Callable[[], Any]] = [port.stopListening]

    if discover:
        # Asked from a port of its own: answers come back by unicast, and a
        # unicast datagram to a port shared with SO_REUSEPORT reaches only
        # one of the sockets sharing it.
        asker = reactor.listenMulticast(0, _Forward(listener))
        if options["broadcast"]:
            asker.setBroadcastAllowed(True)
            target = (options["broadcast-address"], options["port"])
        else:
            if options["interface"]:
                yield asker.setOutgoingInterface(options["interface"])
            target = (options["group"], options["port"])
        query = announcement.encode_query()
        asking = task.LoopingCall(_ask, asker, query, target)
        asking.clock = reactor
        asking.start(QUERY_REPEAT_SECONDS)
        stopping[:0] = [asking.stop, asker.stopListening]

    if browser is not None:
        try:
            yield browser.start()
        except OSError as failure:
            err.write(f"chatd-listen: cannot browse by mDNS: {failure.strerror or failure}\n")
        else:
            stopping.insert(0, browser.stop)
            err.write("chatd-listen: browsing _chatd._tcp by mDNS"
                      + (f" on {options['interface']}" if options["interface"] else " on every interface") + "\n")
        err.flush()

    expiry = task.LoopingCall(listener.forget_silent)
    expiry.clock = reactor
    expiry.start(1.0, now=False)
    stopping.insert(0, expiry.stop)

    if options["timeout"] is not None:
        deadline = reactor.callLater(options["timeout"], finish, 1 if discover else 0)
        done.addBoth(lambda result: (deadline.active() and deadline.cancel(), result)[1])

    status = yield done
    if discover and status != 0:
        err.write(f"chatd-listen: no chatd answered within {options['timeout']:g} s\n")
    for stop in stopping:
        yield stop()
    return status


def _ask(asker: Any, query: bytes, target: tuple[str, int]) -> None:
    try:
        asker.write(query, target)
    except OSError:
        pass  # no route yet (an interface still coming up): the next try may work


def main(argv: list[str] | None = None) -> None:
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as problem:
        sys.stderr.write(f"chatd-listen: {problem} (chatd-listen --help lists the options)\n")
        raise SystemExit(2) from None

    def react(reactor: Any) -> Any:
        return run(reactor, options).addCallback(_exit_with)

    task.react(react)


def _exit_with(status: int) -> None:
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
