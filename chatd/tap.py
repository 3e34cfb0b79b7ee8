"""
`twistd chatd`: the command-line options, and the service they describe.

makeService returns a MultiService, so the UDP services can later join the
chat room as its siblings.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.python import usage

from chatd.listening import FallbackListener, FallbackSpecError, TCPBinding, fallback_ports
from chatd.protocol import DEFAULT_MAX_LINE_BYTES, ChatFactory, Settings
from chatd.room import Room
from chatd.text import clean, lookup_charset

MIN_LINE_BYTES = 64
MAX_LINE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 64


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "A chat room that people reach with `telnet HOST PORT` or `nc HOST PORT`. "
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
    ]

    def postOptions(self) -> None:
        parsers: list[tuple[str, Callable[[Any], Any]]] = [
            ("port", _port),
            ("interface", _interface),
            ("max-line", _max_line),
            ("charset", _charset),
            ("name", _name),
        ]
        for key, parse in parsers:
            try:
                self[key] = parse(self[key])
            except ValueError as problem:
                raise usage.UsageError(f"--{key}: {problem}") from None
        if self["port"] == 0:
            self["fallback-ports"] = []  # an ephemeral port cannot be taken
        else:
            try:
                self["fallback-ports"] = fallback_ports(self["fallback"], self["port"])
            except FallbackSpecError as problem:
                raise usage.UsageError(f"--fallback: {problem}") from None


def _port(text: str) -> int:
    if not text.strip().isdigit() or int(text) > 65535:
        raise ValueError(f"{text!r} is not a port number (0-65535)")
    return int(text)


def _interface(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def _max_line(text: str) -> int:
    if not text.strip().isdigit() or not MIN_LINE_BYTES <= int(text) <= MAX_LINE_BYTES:
        raise ValueError(f"{text!r} is not a number of bytes from {MIN_LINE_BYTES} to {MAX_LINE_BYTES}")
    return int(text)


def _charset(text: str) -> str:
    charset = lookup_charset(text)
    if charset is None:
        raise ValueError(f"unknown charset {text!r} (try utf-8, gbk, big5, latin-1)")
    return charset


def _name(text: str | None) -> str:
    name = clean(socket.gethostname() if text is None else text).strip()
    if not name:
        raise ValueError("the name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"the name is longer than {MAX_NAME_CHARS} characters")
    return name


def makeService(options: Options, reactor: Any = None) -> MultiService:
    if reactor is None:
        from twisted.internet import reactor
    settings = Settings(
        server_name=options["name"],
        max_line_bytes=options["max-line"],
        charset=options["charset"],
    )
    factory = ChatFactory(Room(settings.server_name), settings)
    top = MultiService()
    chat = FallbackListener(
        TCPBinding(reactor.listenTCP, factory),
        options["interface"],
        [options["port"], *options["fallback-ports"]],
        options["port-file"],
    )
    chat.setName("chat")
    chat.setServiceParent(top)
    return top
