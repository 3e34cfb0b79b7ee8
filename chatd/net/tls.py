"""
The server's side of TLS, the same for every door: TLS 1.2 and 1.3 only,
no renegotiation, no compression, and the certificate of the moment.

A certificate replaced on disk is picked up for new connections within
RELOAD_SECONDS, without a restart: the files are looked at that often, and
when they have changed they are loaded and checked (chatd.net.certificate)
before anyone is served with them.  Connections already open keep the
certificate they began with.  A replacement that does not load is logged,
once, and the certificate in use stays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator, IReactorTime
from twisted.internet.ssl import CertificateOptions, TLSVersion
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from chatd.net.certificate import TLS_KEY_TYPES, Certificate, CertificateError

log = Logger()

RELOAD_SECONDS = 30.0
# The one application protocol chatd names in ALPN: a browser's (chatd's web page speaks HTTP/1.1 only).
HTTP_ALPN = b"http/1.1"


def tls_options(certificate: Certificate) -> CertificateOptions:
    """Twisted's TLS options for serving `certificate` (and its chain) as chatd does."""
    chain = [crypto.X509.from_cryptography(each) for each in x509.load_pem_x509_certificates(certificate.certificate_pem)]
    private_key = serialization.load_pem_private_key(certificate.key_pem, password=None)
    assert isinstance(private_key, TLS_KEY_TYPES)  # certificate.load checked it
    key = crypto.PKey.from_cryptography_key(private_key)
    options = CertificateOptions(privateKey=key, certificate=chain[0], extraCertChain=chain[1:],
                                 raiseMinimumTo=TLSVersion.TLSv1_2)
    # Compression is off in CertificateOptions already (CRIME); renegotiation is
    # turned off here (a client's renegotiations cost the server a handshake each).
    context = options.getContext()
    context.set_options(SSL.OP_NO_RENEGOTIATION)
    context.set_alpn_select_callback(_choose_protocol)
    return options


def _choose_protocol(connection: SSL.Connection, offered: list[bytes]) -> Any:
    """
    ALPN: HTTP/1.1 for a client that offers it (every browser and curl do),
    which tells a door before any byte of the request that this is HTTP; any
    other client goes on without an application protocol named, rather than
    being refused.
    """
    return HTTP_ALPN if HTTP_ALPN in offered else SSL.NO_OVERLAPPING_PROTOCOLS


def _signature(certificate: Certificate) -> tuple[tuple[int, int, int], ...]:
    """What changes when a file is replaced or rewritten: its inode, size and time of change."""
    def of(path: Any) -> tuple[int, int, int]:
        try:
            status = os.stat(path)
        except OSError:
            return (0, 0, 0)
        return (status.st_ino, status.st_size, status.st_mtime_ns)
    return (of(certificate.certificate_file), of(certificate.key_file))


@implementer(IOpenSSLServerConnectionCreator)
class ServerTLS:
    """
    The TLS context every door's TLS connections are made with (give it to
    `twisted.protocols.tls.TLSMemoryBIOFactory`), following the certificate's
    files: `load` loads them again (the operator's pair, or chatd's own).
    """

    def __init__(self, certificate: Certificate, load: Callable[[], Certificate]) -> None:
        self.certificate = certificate
        self._load = load
        self._options = tls_options(certificate)
        self._seen = _signature(certificate)
        self._watch: LoopingCall | None = None

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return self._options.serverConnectionForTLS(tlsProtocol)

    def start(self, clock: IReactorTime) -> None:
        """Look at the files every RELOAD_SECONDS from now on."""
        self._watch = LoopingCall(self.check)
        self._watch.clock = clock
        self._watch.start(RELOAD_SECONDS, now=False)

    def stop(self) -> None:
        if self._watch is not None and self._watch.running:
            self._watch.stop()

    def check(self) -> None:
        """If the files changed since last seen, serve what they hold now (if it loads)."""
        now = _signature(self.certificate)
        if now == self._seen:
            return
        self._seen = now  # tried once per change: a bad replacement is logged once, not every time
        try:
            certificate = self._load()
            options = tls_options(certificate)
        except (CertificateError, ValueError, SSL.Error) as refusal:
            log.warn("TLS certificate not replaced: {refusal}; still serving the one with fingerprint {fingerprint}",
                     refusal=str(refusal), fingerprint=self.certificate.fingerprint)
            return
        self.certificate, self._options = certificate, options
        log.info("TLS certificate replaced: new connections get the one with fingerprint {fingerprint}",
                 fingerprint=certificate.fingerprint)
