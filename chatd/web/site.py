"""
The web port: a twisted.web `Site` serving

    /            the chat page (static/index.html), and its chat.js and chat.css
    /chat        the chat, over WebSocket (chatd.web.protocol)
    /metrics     Prometheus's text format (chatd.service.metrics)
    /healthz     200 "ok" while the server runs

Every response carries a Content-Security-Policy that allows scripts,
styles and connections only from the page's own origin, and no inline
script.  A WebSocket from another site's page (cross-site WebSocket
hijacking) is refused unless --web-origin allows its origin.  Every
connection counts against the same limits as a telnet one (--max-clients,
--max-per-ip, bans); a request body, which no page of chatd needs, is
bounded.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib.resources import files
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import File
from twisted.web.websocket import WebSocketResource

from chatd.core.moderation import Moderation
from chatd.net.handshake import TLSEntrance, is_tls, speaks_tls
from chatd.net.limits import ConnectionLimits, Slot
from chatd.net.addresses import describe_peer, peer_host
from chatd.web.protocol import WebDoor

log = Logger()

# The page's files, as the wheel carries them.
STATIC = files("chatd.web") / "static"
PAGE_FILES = {b"": ("index.html", "text/html; charset=utf-8"),
              b"chat.js": ("chat.js", "text/javascript; charset=utf-8"),
              b"chat.css": ("chat.css", "text/css; charset=utf-8")}
MAX_REQUEST_BODY_BYTES = 64 * 1024
# An idle HTTP connection is closed after this long (twisted.web's default is 60 s).
HTTP_IDLE_TIMEOUT_SECONDS = 60

SECURITY_HEADERS = {
    # Scripts, styles and connections from this origin only; no inline
    # script, no plug-ins, no framing by other sites.
    b"content-security-policy": (b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                 b"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    b"x-content-type-options": b"nosniff",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-cache",
}


class ChatRequest(Request):
    """A request with chatd's security headers on every response, and a bounded body."""

    _body_bytes = 0

    def process(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.setHeader(name, value)
        super().process()

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > MAX_REQUEST_BODY_BYTES:
            transport: Any = self.channel.transport if self.channel is not None else None
            if transport is not None:
                transport.abortConnection()
            return
        super().handleContentChunk(data)


class ChatChannel(HTTPChannel):
    """
    An HTTP connection, holding its place in the connection limits until it
    closes; one whose first bytes are a TLS ClientHello (https:// to the
    plain web port) becomes a TLS connection, served as HTTP after the
    handshake.
    """

    slot: Slot | None = None
    site: ChatSite
    _first_data = True

    def dataReceived(self, data: bytes) -> None:
        if self._first_data:
            self._first_data = False
            entrance = self.site.tls
            if entrance is not None and speaks_tls(data) and not is_tls(self.transport):
                self._start_tls(entrance, data)
                return
        super().dataReceived(data)

    def _start_tls(self, entrance: TLSEntrance, data: bytes) -> None:
        """This channel is done with: its timeout, its place as the transport's producer and in the limits."""
        self.setTimeout(None)
        transport: Any = self.transport
        transport.unregisterProducer()
        if self.slot is not None:
            self.slot.release()
            self.slot = None
        entrance.unwrap(transport, transport.getPeer(), data, None)

    def connectionLost(self, reason: Failure) -> None:  # type: ignore[override]
        super().connectionLost(reason)
        if self.slot is not None:
            self.slot.release()


class Refusal(Protocol):
    """A connection the limits refuse: one short HTTP answer, then closed."""

    def __init__(self, status: bytes, reason: str) -> None:
        self._status = status
        self._reason = reason

    def connectionMade(self) -> None:
        body = f"chatd: {self._reason}\n".encode()
        assert self.transport is not None
        self.transport.write(b"HTTP/1.1 " + self._status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)
        self.transport.loseConnection()


class ChatSite(Site):
    """The web port's connections: admitted as telnet ones are, then served as HTTP."""

    # HTTP/1.1 itself: Twisted's default wraps each channel in a proxy that
    # could switch to HTTP/2 after TLS negotiates it, which plain HTTP never does.
    protocol = ChatChannel  # type: ignore[assignment]
    requestFactory = ChatRequest
    noisy = False
    # The way in for a connection whose first bytes are a TLS ClientHello (None: --no-tls).
    tls: TLSEntrance | None = None

    def __init__(self, resource: Resource, limits: ConnectionLimits, moderation: Moderation | None) -> None:
        super().__init__(resource, timeout=HTTP_IDLE_TIMEOUT_SECONDS)
        self._limits = limits
        self._moderation = moderation

    def buildProtocol(self, addr: IAddress | None) -> Any:
        assert addr is not None  # Twisted's TCP ports always pass the peer's address
        host = peer_host(addr)
        if self._moderation is not None and self._moderation.is_banned(host):
            log.info("refused {peer} (web): banned", peer=describe_peer(addr))
            return Refusal(b"403 Forbidden", "you are banned from this server")
        refusal = self._limits.admit(host)
        if refusal is not None:
            log.info("refused {peer} (web): {refusal}", peer=describe_peer(addr), refusal=refusal)
            return Refusal(b"503 Service Unavailable", refusal)
        channel = super().buildProtocol(addr)
        channel.slot = Slot(self._limits, host)
        return channel

    def log(self, request: http.Request) -> None:
        """No access log: a page load is not worth a line (the chat logs who joins)."""


class ChatSocket(WebSocketResource):
    """The chat's WebSocket, for pages of this origin (and of those --web-origin allows)."""

    def __init__(self, sessions: WebDoor, allowed_origins: Collection[str]) -> None:
        super().__init__(sessions)
        self._allowed = {origin.rstrip("/").lower() for origin in allowed_origins}

    def render_GET(self, request: Request) -> bytes | int:
        origin = request.getHeader("origin")
        if origin is not None and not self._origin_allowed(origin, request):
            log.info("refused a WebSocket from {peer}: a page of {origin} (--web-origin allows others)",
                     peer=describe_peer(request.getClientAddress()), origin=origin[:200])
            request.setResponseCode(403)
            request.setHeader("content-type", "text/plain; charset=utf-8")
            return b"chatd: a page of another site may not open this chat (see --web-origin)\n"
        return super().render_GET(request)

    def _origin_allowed(self, origin: str, request: Request) -> bool:
        """A page's own origin: its scheme and the host (with port) it asked for."""
        origin = origin.rstrip("/").lower()
        if "*" in self._allowed or origin in self._allowed:
            return True
        host = (request.getHeader("host") or "").lower()
        return bool(host) and origin in (f"http://{host}", f"https://{host}")


class Healthz(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader("content-type", "text/plain; charset=utf-8")
        return b"ok\n"


class Metrics(Resource):
    """prometheus_client's exposition, in the reactor's thread (the chat's state is not for other threads)."""

    isLeaf = True

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__()
        self._registry = registry

    def render_GET(self, request: Request) -> bytes:
        encode, content_type = choose_encoder(request.getHeader("accept") or "")
        request.setHeader("content-type", content_type)
        return encode(self._registry)


def page_file(name: str, content_type: str) -> File:
    served = File(str(STATIC / name))
    served.type, served.encoding = content_type, None  # as given, not guessed from the system's MIME table
    return served


def web_site(sessions: WebDoor, registry: CollectorRegistry, limits: ConnectionLimits,
             moderation: Moderation | None, allowed_origins: Collection[str] = ()) -> ChatSite:
    root = Resource()
    for path, (name, content_type) in PAGE_FILES.items():
        root.putChild(path, page_file(name, content_type))
    root.putChild(b"chat", ChatSocket(sessions, allowed_origins))
    root.putChild(b"metrics", Metrics(registry))
    root.putChild(b"healthz", Healthz())
    return ChatSite(root, limits, moderation)

