"""
The server's side of TLS (chatd.net.tls), over real loopback sockets with
Python's ssl module as the client: the versions it accepts, and a
certificate replaced on disk served to new connections while an open one
goes on.
"""

import socket
import ssl

import pytest
import pytest_twisted
from cryptography import x509
from twisted.internet import protocol, reactor, threads
from twisted.internet.task import Clock
from twisted.protocols.tls import TLSMemoryBIOFactory

from chatd.net.certificate import CERTIFICATE_FILE, KEY_FILE, CertificateError, fingerprint, self_signed
from chatd.net.tls import RELOAD_SECONDS, ServerTLS


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


@pytest.fixture
def served(tmp_path):
    """An echo server behind ServerTLS with chatd's self-signed certificate, on a free loopback port."""
    state = tmp_path / "state"
    certificate, _ = self_signed(state, ["lab-pc"], [])
    server_tls = ServerTLS(certificate, lambda: self_signed(state, ["lab-pc"], [])[0])
    port = reactor.listenTCP(0, TLSMemoryBIOFactory(server_tls, False, protocol.Factory.forProtocol(Echo)),
                             interface="127.0.0.1")
    yield server_tls, port.getHost().port, state
    port.stopListening()


def client_context(maximum=ssl.TLSVersion.MAXIMUM_SUPPORTED, minimum=ssl.TLSVersion.MINIMUM_SUPPORTED):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test compares fingerprints instead
    context.minimum_version, context.maximum_version = minimum, maximum
    return context


def fingerprint_of(tls_socket):
    return fingerprint(x509.load_der_x509_certificate(tls_socket.getpeercert(binary_form=True)))


def open_tls(port, context):
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return context.wrap_socket(raw)


def echo_once(tls_socket, data):
    tls_socket.sendall(data)
    return tls_socket.recv(100)


@pytest_twisted.inlineCallbacks
def test_tls_1_2_and_1_3_are_served_with_the_certificates_fingerprint(served):
    """A TLS 1.3 and a TLS 1.2 client both complete the handshake, see the certificate, and are served."""
    server_tls, port, _ = served
    for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        tls_socket = yield threads.deferToThread(open_tls, port, client_context(maximum=version, minimum=version))
        try:
            assert tls_socket.version() == {ssl.TLSVersion.TLSv1_3: "TLSv1.3", ssl.TLSVersion.TLSv1_2: "TLSv1.2"}[version]
            assert fingerprint_of(tls_socket) == server_tls.certificate.fingerprint
            assert (yield threads.deferToThread(echo_once, tls_socket, b"hello")) == b"hello"
        finally:
            tls_socket.close()


@pytest_twisted.inlineCallbacks
def test_a_tls_1_1_client_is_refused(served):
    """A client that offers nothing newer than TLS 1.1 gets no session."""
    _, port, _ = served
    context = client_context(maximum=ssl.TLSVersion.TLSv1_1)
    context.set_ciphers("ALL:@SECLEVEL=0")  # let this client offer 1.1 at all
    with pytest.raises(ssl.SSLError) as refusal:
        tls_socket = yield threads.deferToThread(open_tls, port, context)
        tls_socket.close()
    assert refusal.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION"  # the server's alert, not the client's own refusal


@pytest_twisted.inlineCallbacks
def test_a_replaced_certificate_is_served_to_new_connections_while_an_open_one_goes_on(served, tmp_path):
    """After the files change and a check runs, a new client gets the new fingerprint; the open one still echoes."""
    server_tls, port, state = served
    old = server_tls.certificate.fingerprint
    clock = Clock()
    server_tls.start(clock)
    before = yield threads.deferToThread(open_tls, port, client_context())
    try:
        replacement, _ = self_signed(tmp_path / "other", ["lab-pc"], [])
        for name in (CERTIFICATE_FILE, KEY_FILE):
            (state / name).write_bytes((tmp_path / "other" / name).read_bytes())
        clock.advance(RELOAD_SECONDS)
        assert server_tls.certificate.fingerprint == replacement.fingerprint != old
        after = yield threads.deferToThread(open_tls, port, client_context())
        try:
            assert fingerprint_of(after) == replacement.fingerprint
        finally:
            after.close()
        assert fingerprint_of(before) == old
        assert (yield threads.deferToThread(echo_once, before, b"still here")) == b"still here"
    finally:
        before.close()
        server_tls.stop()


def test_a_replacement_that_does_not_load_keeps_the_certificate_in_use(tmp_path):
    """A bad replacement is not served: the certificate in use stays, and it is tried once per change."""
    certificate, _ = self_signed(tmp_path, ["lab-pc"], [])
    loads = []

    def load():
        loads.append(1)
        raise CertificateError("bad: why")

    server_tls = ServerTLS(certificate, load)
    (tmp_path / CERTIFICATE_FILE).write_text("not a certificate")
    server_tls.check()
    server_tls.check()
    assert server_tls.certificate is certificate
    assert loads == [1]
