"""
What chatd publishes by DNS-based service discovery (RFC 6763) over
multicast DNS (RFC 6762), and how chatd-listen reads it back.  Pure: no
I/O (chatd/lan/mdns.py publishes and browses with python-zeroconf).

One instance name, "chatd on NAME", for every service type chatd offers,
so a browser lists them together:

    _http._tcp     the web page           TXT path=/
    _https._tcp    the web page over TLS  TXT path=/
    _irc._tcp      the IRC port
    _ircs._tcp     the IRC port over TLS
    _telnet._tcp   the chat port (telnet, nc)
    _chatd._tcp    the chat port, and in TXT what chatd-listen prints:

        txtvers=1  id=9f1c2a4be07d3361  version=0.1.0  name=lab
        chat=8088  web=8080  irc=6667  https=8443  ircs=6697
        cluster=chatd  fingerprint=3A:F1:...:9C  users=3  channels=2

    (a key is absent where the announcement of chatd/lan/announcement.py
    leaves its field out: no web page, no TLS, no cluster.)

A name already taken on the LAN is renamed as RFC 6763 section 4.1 and
Apple's Bonjour do it: "chatd on lab (2)", "(3)", ... for every type at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from attrs import frozen

from chatd.lan.announcement import Announcement, NotAnAnnouncement, checked

DOMAIN = "local."
CHATD_TYPE = "_chatd._tcp.local."
TXT_VERSION = "1"
# RFC 6763 section 4.1.1: an instance name is one DNS label, at most 63 bytes of UTF-8.
MAX_LABEL_BYTES = 63
ONE_DOT_LEADER = "\u2024"
MAX_TXT_STRING_BYTES = 255
# The _chatd._tcp TXT keys read back as numbers (each the announcement field of its name).
_NUMBER_KEYS = ("web", "irc", "https", "ircs", "users", "channels")


@frozen
class Listing:
    """What one chatd process is, as its services say it: a snapshot of the Herald of chatd/lan/udp.py."""

    id: str
    version: str
    name: str
    chat: int
    users: int
    channels: int = 1
    web: int | None = None
    irc: int | None = None
    https: int | None = None
    ircs: int | None = None
    cluster: str | None = None
    fingerprint: str | None = None


@frozen
class Offer:
    """One service to publish: its type (`_http._tcp.local.`), port and TXT record."""

    type: str
    port: int
    txt: dict[str, str]


def offers(listing: Listing) -> list[Offer]:
    """Every service `listing` publishes, _chatd._tcp last (its TXT is the one that changes)."""
    found = []
    if listing.web is not None:
        found.append(Offer("_http._tcp.local.", listing.web, {"path": "/"}))
    if listing.https is not None:
        found.append(Offer("_https._tcp.local.", listing.https, {"path": "/"}))
    if listing.irc is not None:
        found.append(Offer("_irc._tcp.local.", listing.irc, {}))
    if listing.ircs is not None:
        found.append(Offer("_ircs._tcp.local.", listing.ircs, {}))
    found.append(Offer("_telnet._tcp.local.", listing.chat, {}))
    found.append(Offer(CHATD_TYPE, listing.chat, chatd_txt(listing)))
    return found


def chatd_txt(listing: Listing) -> dict[str, str]:
    """The _chatd._tcp TXT record, txtvers first (RFC 6763 section 6.7)."""
    # One TXT string is at most 255 bytes: a name of 64 four-byte characters is cut to fit "name=".
    name = listing.name.encode()[:MAX_TXT_STRING_BYTES - len("name=")].decode("utf-8", errors="ignore")
    txt = {"txtvers": TXT_VERSION, "id": listing.id, "version": listing.version, "name": name}
    for key, port in (("chat", listing.chat), ("web", listing.web), ("irc", listing.irc), ("https", listing.https),
                      ("ircs", listing.ircs)):
        if port is not None:
            txt[key] = str(port)
    if listing.cluster is not None:
        txt["cluster"] = listing.cluster
    if listing.fingerprint is not None:
        txt["fingerprint"] = listing.fingerprint
    txt["users"] = str(listing.users)
    txt["channels"] = str(listing.channels)
    return txt


def instance_name(name: str, attempt: int = 1) -> str:
    """
    "chatd on NAME" at the first attempt, "chatd on NAME (2)" at the second,
    and so on; NAME cut (never inside a character) to fit one DNS label.
    A dot in NAME (a host name such as pc12.school.lan, the default) would
    split the label on the wire, as python-zeroconf writes names without
    escapes, so it becomes U+2024 ONE DOT LEADER, which looks the same.
    """
    suffix = "" if attempt == 1 else f" ({attempt})"
    room = MAX_LABEL_BYTES - len("chatd on ".encode()) - len(suffix.encode())
    cut = name.replace(".", ONE_DOT_LEADER).encode()[:room].decode("utf-8", errors="ignore")
    return f"chatd on {cut}{suffix}"


def host_label(hostname: str) -> str:
    """A host name as one DNS label of letters, digits and hyphens (its first label; "chatd" if none is left)."""
    label = re.sub(r"[^A-Za-z0-9-]+", "-", hostname.split(".", 1)[0]).strip("-")[:MAX_LABEL_BYTES]
    return label or "chatd"


def announcement_from_txt(txt: Mapping[str, str | None], host: str, port: int, seen_at: float) -> Announcement:
    """
    What a _chatd._tcp TXT record (its keys and values as text) says, as
    the announcement a datagram would carry: checked the same way
    (announcement.checked), since it comes from the network.  `host` is the
    address the service resolved to and `port` its SRV record's (the
    chat port: the TXT's `chat` is for people reading it).  Raises
    NotAnAnnouncement.
    """
    if txt.get("txtvers") != TXT_VERSION:
        raise NotAnAnnouncement(f"txtvers is not {TXT_VERSION}")
    fields: dict[str, Any] = {"host": host, "port": port, "uptime": 0, "seq": 0, "ts": seen_at, "state": "up"}
    for key in ("id", "name", "cluster", "fingerprint"):
        if txt.get(key) is not None:
            fields[key] = txt[key]
    for key in _NUMBER_KEYS:
        value = txt.get(key)
        if value is not None:
            if not (value.isascii() and value.isdigit()) or len(value) > 9:
                raise NotAnAnnouncement(f"{key} is not a whole number")
            fields[key] = int(value)
    return checked(fields)
