"""
Addresses as chatd reads and shows them: a peer for the log, a host and
port together, an option's IPv4 or multicast address.  Used by the doors,
the LAN services and the listening code alike.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_host(address: IAddress) -> str:
    """A connection's peer as bans and the per-address limit know it: its host (192.0.2.7, 2001:db8::7)."""
    return str(getattr(address, "host", address))


def describe_peer(address: IAddress) -> str:
    """A connection's peer for the log: 192.0.2.7:50312, [2001:db8::7]:50312."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return str(address) if host is None or port is None else format_address(host, port)


def host_and_port(address: IAddress) -> tuple[str, int]:
    """The host and port of an IP address (what TCP and UDP ports and transports give)."""
    if not isinstance(address, (IPv4Address, IPv6Address)):
        raise TypeError(f"not an IP address: {address!r}")
    return address.host, address.port


def ipv4_address(text: str) -> str:
    """`text` as an IPv4 address (an option's value), or ValueError saying why not."""
    try:
        return str(ipaddress.IPv4Address(text.strip()))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def multicast_group(text: str) -> str:
    """`text` as an IPv4 multicast group (an option's value), or ValueError saying why not."""
    group = ipv4_address(text)
    if not ipaddress.IPv4Address(group).is_multicast:
        raise ValueError(f"{text!r} is not a multicast address (224.0.0.0-239.255.255.255)")
    return group
