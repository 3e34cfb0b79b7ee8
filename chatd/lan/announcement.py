"""
The UDP announcement format, shared by chatd's announcers and chatd-listen.
Pure: no I/O.

Every datagram is one UTF-8 JSON object, readable with socat or tcpdump.

An announcement, sent to the multicast group, to the broadcast port, or by
unicast in answer to a query (always under MAX_ANNOUNCEMENT_BYTES):

    {"service": "chatd", "v": 1, "id": "9f1c2a4be07d3361", "name": "lab",
     "host": "192.0.2.5", "port": 8089, "users": 3, "channels": 2, "uptime": 125,
     "seq": 26, "ts": 1795000000, "state": "up", "interval": 5, "web": 8080, "cluster": "chatd",
     "irc": 6667, "https": 8443, "ircs": 6697, "fingerprint": "3A:F1:...:9C"}

    id        random, new at each start of a chatd process
    host      the address to connect to: the chat --interface when it is a
              concrete address, else the address of the interface it was sent from
    port      the TCP chat port actually bound (after any fallback)
    users     users online (who have chosen a nickname)
    channels  channels on the server (at least its default one; a listener
              takes 1 when it is absent)
    uptime    whole seconds since the server started
    seq       1 for the instance's first datagram, counting every announcement
    ts        unix time: chatd sends whole seconds; a listener accepts any
              JSON number (another implementation may send a fraction)
    state     "up", or "stopping" in the last datagram before the server stops
    interval  seconds between regular announcements, so a listener knows when
              a silent server is gone (three missed intervals)
    web       the TCP port of the web page (http://HOST:WEB/), after any
              fallback; absent when the server runs without it (--no-web)
    cluster   the --cluster-name of the cluster the server is a node of (its
              users are every node's); absent when it runs alone
    irc       the TCP port for IRC clients; absent without it (--no-irc)
    https     the web page's TLS port (https://HOST:HTTPS/); ircs, the IRC
              port over TLS; absent without them (--no-tls, --no-web, --no-irc)
    fingerprint  the SHA-256 fingerprint of the server's TLS certificate
              (32 colon-separated upper-case hex pairs, as browsers show it),
              for users to compare before they accept it; absent with --no-tls.
              The chat port takes TLS too, whenever this is present.

A query, which asks every server that hears it to answer at once by unicast:

    {"service": "chatd", "v": 1, "query": true}

padded with spaces to QUERY_BYTES.  A server answers only a query at least
as long as its answer, so a query can never be used to amplify traffic.
"""

from __future__ import annotations

import json
import re
from typing import Any

from attrs import evolve, frozen

SERVICE = "chatd"
VERSION = 1
# Where announcements go unless told otherwise (chatd's announcers and chatd-listen).
DEFAULT_GROUP = "239.255.88.88"
DEFAULT_MULTICAST_PORT = 41236
DEFAULT_BROADCAST_PORT = 41235
MAX_ANNOUNCEMENT_BYTES = 511
QUERY_BYTES = 512
MAX_NAME_CHARS = 64
# The ports an announcement may carry besides the chat's and the web page's.
_OPTIONAL_PORTS = ("irc", "https", "ircs")
_FINGERPRINT = re.compile(r"(?:[0-9A-F]{2}:){31}[0-9A-F]{2}")


class NotAnAnnouncement(ValueError):
    """A datagram that is not a valid chatd announcement or query."""


@frozen
class Announcement:
    id: str
    name: str
    host: str
    port: int
    users: int
    uptime: int
    seq: int
    ts: float
    state: str = "up"
    interval: int = 5
    channels: int = 1
    web: int | None = None
    cluster: str | None = None
    irc: int | None = None
    https: int | None = None
    ircs: int | None = None
    fingerprint: str | None = None

    def fields(self) -> dict[str, Any]:
        """The whole JSON object, `service` and `v` first."""
        fields = {
            "service": SERVICE, "v": VERSION, "id": self.id, "name": self.name, "host": self.host, "port": self.port,
            "users": self.users, "channels": self.channels, "uptime": self.uptime, "seq": self.seq, "ts": self.ts, "state": self.state,
            "interval": self.interval,
        }
        if self.web is not None:
            fields["web"] = self.web
        if self.cluster is not None:
            fields["cluster"] = self.cluster
        for name in _OPTIONAL_PORTS:
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        if self.fingerprint is not None:
            fields["fingerprint"] = self.fingerprint
        return fields

    def encode(self) -> bytes:
        fields = self.fields()
        fields["name"] = self.name[:MAX_NAME_CHARS]
        data = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        if len(data) > MAX_ANNOUNCEMENT_BYTES:  # only a name of many 4-byte characters gets here
            return evolve(self, name=self.name[: len(self.name) // 2]).encode()
        return data


def encode_query() -> bytes:
    query = json.dumps({"service": SERVICE, "v": VERSION, "query": True}).encode()
    return query.ljust(QUERY_BYTES)


def is_query(data: bytes) -> bool:
    try:
        fields = _fields(data)
    except NotAnAnnouncement:
        return False
    return fields.get("query") is True


def decode(data: bytes) -> Announcement:
    """The announcement in `data`, or NotAnAnnouncement saying why not."""
    return checked(_fields(data))


def checked(fields: dict[str, Any]) -> Announcement:
    """
    The announcement a datagram's JSON object (or, for chatd/lan/dnssd.py,
    a TXT record's keys) gives, every field checked; or NotAnAnnouncement.
    """
    try:
        announcement = Announcement(
            id=_get(fields, "id", str),
            name=_get(fields, "name", str),
            host=_get(fields, "host", str),
            port=_get(fields, "port", int),
            users=_get(fields, "users", int),
            uptime=_get(fields, "uptime", int),
            seq=_get(fields, "seq", int),
            ts=_get(fields, "ts", (int, float)),
            state=_get(fields, "state", str),
            interval=_optional_int(fields, "interval", 5),
            channels=_optional_int(fields, "channels", 1),
            web=_get(fields, "web", int) if "web" in fields else None,
            cluster=_get(fields, "cluster", str) if "cluster" in fields else None,
            fingerprint=_get(fields, "fingerprint", str) if "fingerprint" in fields else None,
            **{name: _get(fields, name, int) for name in _OPTIONAL_PORTS if name in fields},
        )
    except KeyError as missing:
        raise NotAnAnnouncement(f"missing field {missing}") from None
    for name in ("port", "web", *_OPTIONAL_PORTS):
        port = getattr(announcement, name)
        if port is not None and not 1 <= port <= 65535:
            raise NotAnAnnouncement(f"{name} out of range: {port}")
    if announcement.fingerprint is not None and not _FINGERPRINT.fullmatch(announcement.fingerprint):
        raise NotAnAnnouncement("fingerprint is not a SHA-256 fingerprint")
    if announcement.state not in ("up", "stopping"):
        raise NotAnAnnouncement(f"unknown state: {announcement.state!r}")
    return announcement


def _fields(data: bytes) -> dict[str, Any]:
    if len(data) > QUERY_BYTES * 4:
        raise NotAnAnnouncement("too long")
    try:
        fields = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise NotAnAnnouncement("not UTF-8 JSON") from None
    if not isinstance(fields, dict) or fields.get("service") != SERVICE or fields.get("v") != VERSION:
        raise NotAnAnnouncement("not a chatd v1 datagram")
    return fields


def _get(fields: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = fields[name]
    # bool is an int in Python; an announcement never has a boolean number.
    if not isinstance(value, kind) or isinstance(value, bool):
        raise NotAnAnnouncement(f"field {name} is not {'a number' if isinstance(kind, tuple) else kind.__name__}")
    return value


def _optional_int(fields: dict[str, Any], name: str, default: int) -> int:
    value = fields.get(name, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default
