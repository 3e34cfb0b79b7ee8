"""
`GET /metrics` on the web port: the chat's numbers in Prometheus's text
format, through prometheus_client.  They are read when scraped, from counts
that the chat keeps anyway (an integer added to per delivery), so fan-out
pays nothing for them but one timing per turn.

    chatd_connections{door="telnet"|"web"|"irc",tls="yes"|"no"}
                                              open connections (web: WebSockets), by door and TLS or not
    chatd_tls_handshakes_failed_total         TLS handshakes that failed, were abandoned, too slow or refused
                                              (without --no-tls)
    chatd_users                               users who have chosen a nickname
    chatd_channels                            channels
    chatd_messages_total                      messages said, public and private
    chatd_deliveries_total                    a turn's events delivered to one user
    chatd_flood_delayed_lines_total           lines (web: messages) that waited in a flood queue
    chatd_send_queue_drops_total              connections dropped for falling --sendq behind
    chatd_fan_out_seconds                     time to deliver one turn's events (a histogram)

and with --cluster:

    chatd_bus_contact                         1 while in contact with the cluster's Redis (and it takes
                                              this node's events and lets it read the others'), else 0
    chatd_bus_events_published_total          this node's events sent to the cluster (again after a reconnect)
    chatd_bus_events_received_total           other nodes' events applied here
    chatd_bus_events_held                     this node's events not yet acknowledged by Redis
    chatd_bus_events_dropped_total            events held past the bound (OUTBOX_EVENTS), and lost
    chatd_bus_errors_total{kind="OOM"|...}    Redis's error replies (and replies the bus cannot read:
                                              kind="unexpected"), by kind; each was handled
    chatd_bus_lag_seconds                     age of the newest stream entry when it was read
    chatd_bus_reconnects_total                times contact came back after being lost
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from chatd.core.server import ChatServer
from chatd.net.door import Connection
from chatd.net.flow import FlowCounts
from chatd.net.handshake import HandshakeFailures

if TYPE_CHECKING:
    from chatd.bus.redis import RedisBus

# Fan-out of one turn: tens of microseconds for a few users, milliseconds for thousands.
FAN_OUT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class ChatCollector(Collector):
    """The chat's counts and gauges, read at each scrape."""

    def __init__(self, server: ChatServer, doors: Mapping[str, Iterable[Connection]], counts: FlowCounts,
                 bus: RedisBus | None = None, handshake_failures: HandshakeFailures | None = None) -> None:
        self._server = server
        self._handshake_failures = handshake_failures
        self._doors = doors
        self._counts = counts
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        server, counts = self._server, self._counts
        connections = GaugeMetricFamily("chatd_connections", "Open connections, by front door and TLS or not.",
                                        labels=["door", "tls"])
        for door, open_connections in self._doors.items():
            over_tls = [connection.tls for connection in open_connections]
            connections.add_metric([door, "yes"], sum(over_tls))
            connections.add_metric([door, "no"], len(over_tls) - sum(over_tls))
        yield connections
        if self._handshake_failures is not None:
            yield CounterMetricFamily("chatd_tls_handshakes_failed", "TLS handshakes that failed, were abandoned, "
                                      "too slow or refused.", value=self._handshake_failures.count)
        yield GaugeMetricFamily("chatd_users", "Users who have chosen a nickname.", value=server.count)
        yield GaugeMetricFamily("chatd_channels", "Channels.", value=server.channel_count)
        yield CounterMetricFamily("chatd_messages", "Messages said, public and private.", value=server.messages)
        yield CounterMetricFamily("chatd_deliveries", "Deliveries of a turn's events to one user.",
                                  value=server.deliveries)
        yield CounterMetricFamily("chatd_flood_delayed_lines", "Lines that waited in a flood queue (--rate, --burst).",
                                  value=counts.flood_delayed_lines)
        yield CounterMetricFamily("chatd_send_queue_drops", "Connections dropped for falling --sendq bytes behind.",
                                  value=counts.send_queue_drops)
        if server.keeps_accounts:
            yield GaugeMetricFamily("chatd_store_healthy", "1 while the store writes what it is given; 0 while it "
                                    "fails (a full disk...): history is then not kept.", value=int(server.store.healthy))
            yield GaugeMetricFamily("chatd_accounts", "Registered nicknames.", value=server.accounts)
            yield CounterMetricFamily("chatd_wrong_passwords", "Wrong passwords tried for registered nicknames.",
                                      value=server.wrong_passwords)
        bus = self._bus
        if bus is not None:
            for family, name, documentation, value in (
                (GaugeMetricFamily, "chatd_bus_contact", "1 while in contact with the cluster's Redis.",
                 int(bus.in_contact)),
                (CounterMetricFamily, "chatd_bus_events_published", "This node's events sent to the cluster.",
                 bus.published),
                (CounterMetricFamily, "chatd_bus_events_received", "Other nodes' events applied here.", bus.received),
                (GaugeMetricFamily, "chatd_bus_events_held", "This node's events not yet acknowledged by Redis.",
                 bus.held),
                (CounterMetricFamily, "chatd_bus_events_dropped", "Events held past the bound, lost.",
                 bus.dropped),
                (GaugeMetricFamily, "chatd_bus_lag_seconds", "Age of the newest stream entry when it was read.",
                 bus.lag_seconds),
                (CounterMetricFamily, "chatd_bus_reconnects", "Times contact with Redis came back after a loss.",
                 bus.reconnects),
            ):
                yield family(name, documentation, value=value)
            errors = CounterMetricFamily("chatd_bus_errors", "Redis's error replies, by kind; each was handled.",
                                         labels=["kind"])
            for kind, count in sorted(bus.errors.counts.items()):
                errors.add_metric([kind], count)
            yield errors


def fan_out_histogram(registry: CollectorRegistry) -> Histogram:
    """The fan-out histogram, in `registry` (made before the chat server, whose turn it times)."""
    return Histogram("chatd_fan_out_seconds", "Time to deliver one turn's events to every member.",
                     buckets=FAN_OUT_BUCKETS, registry=registry)


def chat_metrics(server: ChatServer, doors: Mapping[str, Iterable[Connection]], counts: FlowCounts,
                 bus: RedisBus | None = None, registry: CollectorRegistry | None = None,
                 handshake_failures: HandshakeFailures | None = None) -> CollectorRegistry:
    """
    A registry of the chat's metrics: `registry` (with the fan-out
    histogram), or one of its own, not prometheus_client's global one.
    """
    registry = CollectorRegistry() if registry is None else registry
    registry.register(ChatCollector(server, doors, counts, bus, handshake_failures))
    return registry
