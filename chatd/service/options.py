"""
chatd's options, declared once: `OPTIONS` is the one table (name, short
flag, default, parser, help, and the settings field it fills).  From it
come twistd's `Options` (command line and `--config FILE`), the connection
`Settings` every door shares (`settings_of`), and docs/options.md
(`python -m chatd.service.options > docs/options.md`; a test fails when
the two differ).

A config file is TOML with the same names (`port = 8088`, `no-web = true`,
`cluster = "redis://..."`); the command line wins over it.  A file that
cannot be read, a value that is wrong and a key that is no option (a typo
must not pass in silence) are each one line naming the file, the key and
why, and twistd exits with status 2.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
from pathlib import Path
from collections.abc import Callable, Collection, Iterator
from typing import Any

import attrs
from attrs import frozen
from twisted.python import usage

from chatd.bus.address import RedisAddress
from chatd.bus.redis import DEFAULT_CLUSTER_NAME
from chatd.core.nicknames import ChannelNameError, check_channel_name
from chatd.core.server import DEFAULT_CHANNEL, DEFAULT_MAX_CHANNELS, DEFAULT_QUIET_JOINS
from chatd.core.text import clean
from chatd.lan.announcement import DEFAULT_BROADCAST_PORT, DEFAULT_GROUP, DEFAULT_MULTICAST_PORT
from chatd.net.addresses import ipv4_address, multicast_group
from chatd.net.certificate import Certificate, CertificateError, default_state_dir, load, self_signed
from chatd.net.door import Settings
from chatd.service.listening import FallbackSpecError, fallback_ports
from chatd.store.sqlite import STORE_FILE, StoreError, check
from chatd.telnet.charset import CharsetError, check_charset

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_ECHO_PORT = 41234
DEFAULT_WEB_PORT = 8080
DEFAULT_IRC_PORT = 6667
DEFAULT_WEB_TLS_PORT = 8443
DEFAULT_IRC_TLS_PORT = 6697
MIN_LINE_BYTES = 64
MAX_LINE_BYTES = 1024 * 1024
MAX_NAME_CHARS = 64


# -- the parsers: each takes the text given (None: not given) and returns the value, or ValueError saying why


def whole(low: int, high: int | None, says: str) -> Callable[[str], int]:
    """A whole number from `low` to `high` (no bound: None); else "'TEXT' is not SAYS"."""
    def parse(text: str) -> int:
        text = str(text).strip()
        if not text.isdigit() or not low <= int(text) or (high is not None and int(text) > high):
            raise ValueError(f"{text!r} is not {says}")
        return int(text)
    return parse


port = whole(0, 65535, "a port number (0-65535)")
count = whole(1, 10_000_000, "a whole number from 1")
count_or_zero = whole(0, 10_000_000, "a whole number from 0")


def nonzero_port(text: str) -> int:
    value = port(text)
    if value == 0:
        raise ValueError("0 is not a port others can send to")
    return value


def interface(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.strip().strip("[]")))
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None


def optional_ipv4(text: str | None) -> str | None:
    return None if text is None else ipv4_address(text)


def ipv4_addresses(text: str | None) -> list[str]:
    """--mdns-interface: IPv4 addresses, separated by commas (none given: an empty list)."""
    if text is None:
        return []
    return [ipv4_address(address) for address in text.split(",") if address.strip()]


def origins(text: str | None) -> list[str]:
    """--web-origin: scheme://host[:port] of each page allowed to open the chat, or *."""
    if text is None:
        return []
    found = [origin.strip().rstrip("/") for origin in text.split(",") if origin.strip()]
    for origin in found:
        scheme, separator, host = origin.partition("://")
        if origin != "*" and (scheme.lower() not in ("http", "https") or not separator or not host or "/" in host):
            raise ValueError(f"{origin!r} is not an origin like http://lab.example:8080 (or *)")
    return found


def cluster_address(text: str | None) -> RedisAddress | None:
    return None if text is None else RedisAddress.parse(text)


def cluster_name(text: str) -> str:
    """A cluster's name: part of its Redis keys (chatd:NAME:...), so letters, digits, - and _ only."""
    if not text or len(text) > MAX_NAME_CHARS or not all(char.isascii() and (char.isalnum() or char in "-_")
                                                          for char in text):
        raise ValueError(f"{text!r} is not a cluster name (up to {MAX_NAME_CHARS} letters, digits, - and _)")
    return text


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0
    if not 0 < value <= 1_000_000:
        raise ValueError(f"{text!r} is not a positive number")
    return value


def seconds_or_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 30 * 24 * 3600:
        raise ValueError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def seconds(text: str) -> float:
    value = seconds_or_zero(text)
    if value == 0:
        raise ValueError("0 s leaves no time at all")
    return value


def charset(text: str) -> str:
    try:
        return check_charset(text)
    except CharsetError as refusal:
        raise ValueError(f"{refusal} (try utf-8, gbk, big5, latin-1)") from None


def server_name(text: str | None) -> str:
    name = clean(socket.gethostname() if text is None else text).strip()
    if not name:
        raise ValueError("the name is empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"the name is longer than {MAX_NAME_CHARS} characters")
    return name


def channel_name(text: str) -> str:
    try:
        return check_channel_name(text)
    except ChannelNameError as refusal:
        raise ValueError(str(refusal)) from None


# The most of a message of the day that is shown: a screenful.
MAX_MOTD_LINES = 50
MAX_MOTD_LINE_CHARS = 400


def motd_lines(path: str | None) -> tuple[str, ...]:
    """The message of the day in the file at `path`, read once at start: cleaned as typed text, a screenful at most."""
    if path is None:
        return ()
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            lines = [clean(line.rstrip("\r\n"))[:MAX_MOTD_LINE_CHARS] for _, line in zip(range(MAX_MOTD_LINES), file)]
    except OSError as problem:
        raise ValueError(f"cannot read {path}: {problem.strerror or problem}") from None
    return tuple(lines)


def oper_password(path: str | None) -> str | None:
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


def transcript(path: str | None) -> str | None:
    """The transcript can be appended to (opened, and closed again, at start)."""
    if path is not None:
        try:
            with open(path, "a", encoding="utf-8"):
                pass
        except OSError as problem:
            raise ValueError(f"cannot open {path}: {problem.strerror or problem}") from None
    return path


def text(value: str | None) -> str | None:
    return value


# -- the table


@frozen
class Option:
    """One option, as the command line, a config file, the settings and docs/options.md know it."""

    name: str
    help: str
    parse: Callable[[Any], Any] = text
    default: str | None = None  # as it would be typed; None: not given
    short: str | None = None
    flag: bool = False  # on or off, without a value
    setting: str | None = None  # the Settings field it fills
    section: str = ""  # its heading in docs/options.md


def _setting_default(field: str) -> str:
    """The default of a Settings field, as it would be typed (Settings holds it, so it is declared once)."""
    value = getattr(attrs.fields(Settings), field).default
    return f"{value:g}" if isinstance(value, float) else str(value)


SECTIONS = CHAT, LIMITS, DOORS, TLS, CLUSTER, LAN, FILES = (
    "The chat", "Limits", "Web and IRC", "TLS", "Cluster", "LAN", "Files and config")

OPTIONS: tuple[Option, ...] = (
    Option("config", "A TOML file of options, by these names (port = 8088, no-web = true); the command line wins.",
           section=FILES),
    Option("port", "TCP port of the chat room; 0 takes any free port.", port, "8088", short="p", section=CHAT),
    Option("interface", "Address to bind: an IPv4 or IPv6 address; :: binds IPv6 (and IPv4 where the OS allows).",
           interface, "0.0.0.0", short="i", section=CHAT),
    Option("fallback", "Where to go when the port is taken: a count N tries PORT+1 ... PORT+N; a list of ports and "
           "ranges is tried in the order given (8089-8099,9000); 0 turns fallback off.", default="10", section=CHAT),
    Option("port-file", "Write the port actually bound to this file, atomically, once listening.", section=FILES),
    Option("state-dir", "Directory where chatd keeps what it makes for itself: its TLS certificate and key, and "
           "its store (chatd.sqlite3: channels, topics, history, accounts and messages for people who are away). "
           "[default: $XDG_STATE_HOME/chatd, else "
           "~/.local/state/chatd]", section=FILES),
    Option("no-store", "Keep nothing: channels, topics and history start empty at each start (or from "
           "--transcript), and nicknames cannot be registered. A node of a --cluster keeps accounts, messages for "
           "people who are away and history in the cluster's Redis, unless this is given.",
           flag=True, section=FILES),
    Option("name", "The server's display name, shown in the greeting. [default: the host name]", server_name,
           setting="server_name", section=CHAT),
    Option("charset", "The encoding new connections start with (utf-8, gbk, big5, latin-1, ...); users change theirs "
           "with /charset.", charset, _setting_default("charset"), setting="charset", section=CHAT),
    Option("default-channel", "The channel every user is in once they choose a nickname.", channel_name,
           DEFAULT_CHANNEL, section=CHAT),
    Option("history", "Recent messages shown to a user who joins (0: none); kept across restarts in the store "
           "(see --state-dir).", whole(0, 10_000, "a number of messages from 0 to 10000"), "20", section=CHAT),
    Option("history-days", "Days a channel's messages, actions and topic changes are kept in the store; 0 keeps "
           "them for ever.", whole(0, 36_500, "a number of days from 0"), "30", section=CHAT),
    Option("account-expiry-days", "Days a registered nickname nobody logs in to stays registered; then it is free "
           "again (0: never).", whole(0, 36_500, "a number of days from 0"), "180", section=CHAT),
    Option("max-channels", "Most channels on the server at once; users create them with /join.", count,
           str(DEFAULT_MAX_CHANNELS), section=CHAT),
    Option("quiet-joins", "Above this many members a channel stops announcing each join and leave and sums them up "
           "every few seconds instead.", count_or_zero, str(DEFAULT_QUIET_JOINS), section=CHAT),
    Option("oper-password-file", "File holding the operators' password (/oper); without it, moderation is off.",
           section=FILES),
    Option("motd-file", f"File of the message of the day, shown at login (its first {MAX_MOTD_LINES} lines; IRC's "
           "MOTD).", motd_lines, setting="motd", section=FILES),
    Option("transcript", "Append every public event to this file, one JSON line each (never private messages).",
           transcript, section=FILES),
    Option("transcript-max-bytes", "Size at which the transcript rotates (5 old files are kept).",
           whole(1024, None, "a number of bytes from 1024"), str(10 * 1000 * 1000), section=FILES),
    Option("max-line", f"Longest accepted input line in bytes, line end not counted ({MIN_LINE_BYTES}-"
           f"{MAX_LINE_BYTES}).", whole(MIN_LINE_BYTES, MAX_LINE_BYTES,
                                        f"a number of bytes from {MIN_LINE_BYTES} to {MAX_LINE_BYTES}"),
           _setting_default("max_line_bytes"), setting="max_line_bytes", section=LIMITS),
    Option("max-clients", "Most chat connections at once; more get '*** Error: server full'.", count, "10000",
           section=LIMITS),
    Option("max-per-ip", "Most chat connections from one address.", count, "32", section=LIMITS),
    Option("login-timeout", "Seconds a new connection has to choose a nickname.", seconds,
           _setting_default("login_timeout_seconds"), setting="login_timeout_seconds", section=LIMITS),
    Option("idle-timeout", "Seconds without input before a user is disconnected; 0: never.", seconds_or_zero,
           _setting_default("idle_timeout_seconds"), setting="idle_timeout_seconds", section=LIMITS),
    Option("rate", "Lines per second a user may send; more wait in the flood queue and are let through at this "
           "rate.", positive_number, _setting_default("rate_lines_per_second"), setting="rate_lines_per_second",
           section=LIMITS),
    Option("burst", "Lines a user may send at once before --rate applies.", count,
           _setting_default("rate_burst_lines"), setting="rate_burst_lines", section=LIMITS),
    Option("flood-queue", "Lines waiting per user before chatd stops reading from that user (nothing is dropped).",
           count, _setting_default("flood_queue_lines"), setting="flood_queue_lines", section=LIMITS),
    Option("sendq", "Bytes waiting for a slow reader before it is disconnected (beyond the socket's own buffers).",
           whole(1024, 1024**3, "a number of bytes from 1024 to 1073741824"), _setting_default("send_queue_bytes"),
           setting="send_queue_bytes", section=LIMITS),
    Option("shutdown-grace", "Seconds to let pending output flush on shutdown before closing connections.",
           seconds_or_zero, "5", section=LIMITS),
    Option("web-port", "TCP port of the web page (chat in a browser), /metrics and /healthz; 0 takes any free port.",
           port, str(DEFAULT_WEB_PORT), section=DOORS),
    Option("web-fallback", "Where the web page goes when its port is taken (as --fallback).", default="10",
           section=DOORS),
    Option("web-origin", "Other origins whose pages may open the chat's WebSocket, comma-separated "
           "(http://lab.example:8080); * allows any. [default: only the page's own]", origins, section=DOORS),
    Option("no-web", "Do not serve the web page (nor /metrics and /healthz).", flag=True, section=DOORS),
    Option("irc-port", "TCP port for IRC clients (irssi, WeeChat, HexChat); 0 takes any free port.", port,
           str(DEFAULT_IRC_PORT), section=DOORS),
    Option("irc-fallback", "Where the IRC port goes when it is taken (as --fallback).", default="10", section=DOORS),
    Option("no-irc", "Do not listen for IRC clients.", flag=True, section=DOORS),
    Option("tls-cert", "PEM file of the server's TLS certificate (the server's first, then its chain); with "
           "--tls-key. [default: chatd's own self-signed one, made once in --state-dir]", section=TLS),
    Option("tls-key", "PEM file of that certificate's private key, without a password.", section=TLS),
    Option("no-tls", "Serve no TLS: no TLS ports, and a TLS client on a plain port is closed.", flag=True,
           section=TLS),
    Option("web-tls-port", "TCP port of the web page over TLS (https://, and its wss:// chat); 0 takes any free "
           "port.", port, str(DEFAULT_WEB_TLS_PORT), section=TLS),
    Option("web-tls-fallback", "Where the web page over TLS goes when its port is taken (as --fallback).",
           default="10", section=TLS),
    Option("irc-tls-port", "TCP port for IRC clients over TLS (irssi -tls, WeeChat, HexChat); 0 takes any free "
           "port.", port, str(DEFAULT_IRC_TLS_PORT), section=TLS),
    Option("irc-tls-fallback", "Where the IRC port over TLS goes when it is taken (as --fallback).", default="10",
           section=TLS),
    Option("cluster", "Share channels, nicknames and history with other chatd nodes through the Redis at this URL: "
           "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], or rediss:// for TLS. [default: this process alone]",
           cluster_address, section=CLUSTER),
    Option("cluster-name", "The cluster to join on that Redis (several can share one).", cluster_name,
           DEFAULT_CLUSTER_NAME, section=CLUSTER),
    Option("workers", "Run this many chatd processes, accepting on the same ports (SO_REUSEPORT) as nodes of the "
           "--cluster, so every core works; chatd starts again a worker that dies. 0: one process.", count_or_zero,
           "0", section=CLUSTER),
    Option("worker", "(Set by --workers for each worker process it starts.)", count_or_zero, "0", section=CLUSTER),
    Option("echo-port", "UDP port of the echo service, on --interface; 0 takes any free port.", port,
           str(DEFAULT_ECHO_PORT), section=LAN),
    Option("echo-fallback", "Where the echo service goes when its port is taken (as --fallback).", default="10",
           section=LAN),
    Option("echo-rate", "Echo replies per second to one source address, in bursts of twice that; the rest are "
           "dropped.", positive_number, "100", section=LAN),
    Option("no-echo", "Do not run the UDP echo service.", flag=True, section=LAN),
    Option("multicast", "Announce the server to the LAN by multicast (puts traffic on the LAN, so off by default).",
           flag=True, section=LAN),
    Option("multicast-group", "IPv4 multicast group of the announcements.", multicast_group, DEFAULT_GROUP,
           section=LAN),
    Option("multicast-port", "UDP port of the multicast announcements.", nonzero_port, str(DEFAULT_MULTICAST_PORT),
           section=LAN),
    Option("multicast-ttl", "Multicast TTL: 1 keeps announcements on the local network.",
           whole(0, 255, "a TTL (0-255)"), "1", section=LAN),
    Option("multicast-interface", "Address of the interface that sends multicast. [default: --interface when "
           "concrete, else the system's choice]", optional_ipv4, section=LAN),
    Option("broadcast", "Announce the server to the LAN by broadcast (off by default).", flag=True, section=LAN),
    Option("broadcast-address", "IPv4 address the broadcast announcements go to.", ipv4_address, "255.255.255.255",
           section=LAN),
    Option("broadcast-port", "UDP port of the broadcast announcements.", nonzero_port, str(DEFAULT_BROADCAST_PORT),
           section=LAN),
    Option("announce-interval", "Seconds between announcements (after three at start, 1 s apart).",
           whole(1, 3600, "a number of seconds from 1 to 3600"), "5", section=LAN),
    Option("mdns", "Publish the server by DNS service discovery over multicast DNS (_http._tcp, _irc._tcp, "
           "_telnet._tcp, _chatd._tcp, ...), so Bonjour, Avahi and other service browsers list it (puts traffic "
           "on the LAN, so off by default).", flag=True, section=LAN),
    Option("mdns-interface", "IPv4 addresses of the interfaces to publish on, separated by commas, each with its "
           "own address. [default: --interface when concrete, else every interface but loopback]", ipv4_addresses,
           section=LAN),
)

BY_NAME = {option.name: option for option in OPTIONS}
# Not for a config file: the file itself, and what --workers sets for its workers.
NOT_IN_CONFIG = ("config", "worker")


# -- twistd's Options


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
    optParameters = [[option.name, option.short, option.default, option.help] for option in OPTIONS
                     if not option.flag]
    optFlags = [[option.name, option.short, option.help] for option in OPTIONS if option.flag]

    def parseOptions(self, options: list[str] | None = None) -> None:
        """
        Under twistd, a bad option (or config file) is one line on stderr and
        exit status 2 (twistd itself would print its whole usage text first).
        """
        # As given, for the worker processes of --workers.
        self.argv = list(sys.argv[1:] if options is None else options)
        try:
            path = config_path(self.argv)
            super().parseOptions([*config_arguments(path), *self.argv] if path is not None else self.argv)
        except usage.UsageError as problem:
            if self.parent is None:  # not under twistd (tests, other callers): theirs to report
                raise
            sys.stderr.write(f"chatd: {problem} (twistd chatd --help lists the options)\n")
            raise SystemExit(2) from None

    def postOptions(self) -> None:
        for option in OPTIONS:
            if option.flag or option.parse is text:
                continue
            try:
                self[option.name] = option.parse(self[option.name])
            except ValueError as problem:
                raise usage.UsageError(f"--{option.name}: {problem}") from None
        if self["workers"] and self["cluster"] is None:
            raise usage.UsageError("--workers: the workers share one chat through a cluster; give --cluster "
                                   "redis://HOST:PORT/DB too")
        try:
            self["oper-password"] = oper_password(self["oper-password-file"])
        except ValueError as problem:
            raise usage.UsageError(f"--oper-password-file: {problem}") from None
        self["fallback-ports"] = _fallback("fallback", self["fallback"], self["port"])
        self["web-fallback-ports"] = _fallback("web-fallback", self["web-fallback"], self["web-port"])
        self["irc-fallback-ports"] = _fallback("irc-fallback", self["irc-fallback"], self["irc-port"])
        self["web-tls-fallback-ports"] = _fallback("web-tls-fallback", self["web-tls-fallback"], self["web-tls-port"])
        self["irc-tls-fallback-ports"] = _fallback("irc-tls-fallback", self["irc-tls-fallback"], self["irc-tls-port"])
        self["certificate"], self["certificate-origin"] = (None, "") if self["no-tls"] else tls_certificate(self)
        self["store-path"] = None if self["no-store"] or self["cluster"] is not None else store_path(self)
        # The echo never takes a port of the announcements, by default or as
        # given, so a second chatd on this host cannot walk onto them.
        announcement_ports = sorted({DEFAULT_BROADCAST_PORT, DEFAULT_MULTICAST_PORT,
                                     self["broadcast-port"], self["multicast-port"]})
        if self["echo-port"] in announcement_ports and not self["no-echo"]:
            raise usage.UsageError(f"--echo-port: {self['echo-port']} is a port of the announcements "
                                   f"({', '.join(map(str, announcement_ports))}); choose another")
        self["echo-fallback-ports"] = _fallback("echo-fallback", self["echo-fallback"], self["echo-port"],
                                                avoid=announcement_ports)


def tls_certificate(options: Options) -> tuple[Certificate, str]:
    """
    The certificate TLS serves, and where it came from (for the log): the
    operator's (--tls-cert, --tls-key), checked, or chatd's own, made on
    the first start in --state-dir and reused on every later one.
    """
    certificate_file, key_file = options["tls-cert"], options["tls-key"]
    if (certificate_file is None) != (key_file is None):
        given = "--tls-cert" if key_file is None else "--tls-key"
        raise usage.UsageError(f"{given}: --tls-cert and --tls-key go together (give both, or neither for "
                               "chatd's own certificate)")
    if certificate_file is not None:
        try:
            return load(Path(certificate_file), Path(key_file)), f"from {certificate_file}"
        except CertificateError as problem:
            raise usage.UsageError(f"--tls-cert: {problem}") from None
    state_dir = state_directory(options)
    host_name = socket.gethostname()
    try:
        certificate, new = self_signed(state_dir, [host_name], [options["interface"], *_host_addresses(host_name)])
    except OSError as problem:
        raise usage.UsageError(f"--state-dir: cannot keep chatd's certificate in {state_dir}: "
                               f"{problem.strerror or problem}") from None
    return certificate, f"chatd's own, {'made now' if new else 'kept'} in {state_dir}"


def state_directory(options: Options) -> Path:
    """--state-dir, or its default."""
    return Path(options["state-dir"]) if options["state-dir"] else default_state_dir()


def store_path(options: Options) -> Path:
    """
    The store's file in the state directory, checked (and made, with its
    schema, if there is none): a file that cannot be chatd's store is one
    line, and chatd does not start.
    """
    state_dir = state_directory(options)
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as problem:
        raise usage.UsageError(f"--state-dir: cannot make {state_dir}: {problem.strerror or problem}") from None
    path = state_dir / STORE_FILE
    try:
        check(path)
    except StoreError as problem:
        raise usage.UsageError(f"--state-dir: {problem}") from None
    return path


def _host_addresses(host_name: str) -> list[str]:
    """The addresses this host's name has (those others on the LAN may use), for the self-signed certificate."""
    try:
        found = socket.getaddrinfo(host_name, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []
    return sorted({str(info[4][0]).partition("%")[0] for info in found})


def _fallback(key: str, spec: str, first: int, avoid: Collection[int] = ()) -> list[int]:
    if first == 0:
        return []  # an ephemeral port cannot be taken
    try:
        return fallback_ports(spec, first, avoid)
    except FallbackSpecError as problem:
        raise usage.UsageError(f"--{key}: {problem}") from None


def settings_of(options: Options) -> Settings:
    """The Settings every connection shares, from the parsed options (the table says which fills which field)."""
    return Settings(**{option.setting: options[option.name] for option in OPTIONS if option.setting is not None})


# -- the config file


def config_path(argv: list[str]) -> str | None:
    """The --config given on this command line (the last, if several), or None."""
    path = None
    for index, argument in enumerate(argv):
        if argument == "--":
            break
        if argument == "--config" and index + 1 < len(argv):
            path = argv[index + 1]
        elif argument.startswith("--config="):
            path = argument.partition("=")[2]
    return path


def config_arguments(path: str) -> list[str]:
    """
    The config file at `path` as command-line arguments, to go before the
    command line's own (so those win); a UsageError naming the file, the
    key and why for anything wrong in it.
    """
    try:
        with open(path, "rb") as file:
            table = tomllib.load(file)
    except OSError as problem:
        raise usage.UsageError(f"{path}: cannot read it: {problem.strerror or problem}") from None
    except tomllib.TOMLDecodeError as problem:
        raise usage.UsageError(f"{path}: not TOML: {problem}") from None
    except UnicodeDecodeError:
        raise usage.UsageError(f"{path}: not TOML: not UTF-8 text") from None
    return list(_arguments(path, table))


def _arguments(path: str, table: dict[str, Any]) -> Iterator[str]:
    for key, value in table.items():
        option = BY_NAME.get(key)
        if option is None or key in NOT_IN_CONFIG:
            raise usage.UsageError(f"{path}: {key}: not an option of chatd")
        if option.flag:
            if not isinstance(value, bool):
                raise usage.UsageError(f"{path}: {key}: {value!r} is not true or false")
            if value:
                yield f"--{key}"
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise usage.UsageError(f"{path}: {key}: {value!r} is not a value for --{key} (a text or a number)")
        typed = str(value)
        try:
            option.parse(typed)
        except ValueError as problem:
            raise usage.UsageError(f"{path}: {key}: {problem}") from None
        yield f"--{key}={typed}"


# -- docs/options.md


def options_markdown() -> str:
    """docs/options.md, made from the table."""
    lines = ["# Options", "",
             "Every option of `twistd -n chatd`, made from the table in `chatd/service/options.py`",
             "(`python -m chatd.service.options > docs/options.md`). Each can also be given in a",
             "config file (`--config FILE`, TOML, the same names: `port = 8088`, `no-web = true`);",
             "the command line wins over the file. A wrong value, or a key that is no option, is one",
             "line naming the file, the key and why, and chatd does not start (exit status 2).", ""]
    for section in SECTIONS:
        options = [option for option in OPTIONS if option.section == section]
        lines += [f"## {section}", "", "| option | default | meaning |", "|---|---|---|"]
        for option in options:
            name = f"`--{option.name}`" + (f", `-{option.short}`" if option.short else "")
            default = "(off)" if option.flag else "" if option.default is None else f"`{option.default}`"
            lines.append(f"| {name} | {default} | {option.help.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(options_markdown())
