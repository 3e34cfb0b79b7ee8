"""
Where the cluster's Redis is: `--cluster redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]`,
or `rediss://...` for TLS (the server's certificate checked against the
system's trusted authorities: OpenSSL's, so SSL_CERT_FILE can name others).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from attrs import field, frozen
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.ssl import optionsForClientTLS

DEFAULT_REDIS_PORT = 6379


@frozen
class RedisAddress:
    host: str
    port: int = DEFAULT_REDIS_PORT
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def parse(cls, url: str) -> RedisAddress:
        """
        The address in `url`; ValueError, with a sentence saying what is
        wrong, if it is not one (never repeating the URL, which may hold a
        password).
        """
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError("not a redis:// or rediss:// URL (redis://HOST:PORT/DB)")
        try:
            port = parts.port or DEFAULT_REDIS_PORT
        except ValueError:
            raise ValueError("the port is not a number from 1 to 65535") from None
        if not parts.hostname:
            raise ValueError("no host in it (redis://HOST:PORT/DB)")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError("the database after the / must be a number")
        if parts.query or parts.fragment:
            raise ValueError("nothing may follow the database number")
        return cls(
            host=parts.hostname,
            port=port,
            db=int(path or 0),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=parts.scheme == "rediss",
        )

    def endpoint(self, reactor: Any) -> IStreamClientEndpoint:
        plain = HostnameEndpoint(reactor, self.host, self.port, timeout=5)
        if not self.tls:
            return plain
        return wrapClientTLS(optionsForClientTLS(self.host), plain)

    def __str__(self) -> str:
        """The address without its password, for the log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = f"{self.username}@" if self.username else ""
        return f"{'rediss' if self.tls else 'redis'}://{user}{host}:{self.port}/{self.db}"
