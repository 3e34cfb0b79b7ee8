"""
TLS on every door of the real `twistd -n chatd`, with real clients: Python's
ssl module, Debian's `openssl s_client` and `socat`, each chatting with a
plain telnet-style user in the same channel.  The certificate is chatd's
own self-signed one (made in the test's state directory), whose fingerprint
each client compares with the one chatd logged, as a user would; or an
operator's, issued by a test CA from trustme, which clients verify.
"""

from __future__ import annotations

import datetime
import re
import shutil
import socket
import ssl
import time
from pathlib import Path

import pexpect
import pytest
import trustme
from wsproto.events import CloseConnection
from tests.chatd_process import TIMEOUT_SECONDS, ChatdProcess, LineClient, WebClient, peer_fingerprint, trusting

FINGERPRINT = re.compile(r"SHA-256 fingerprint ((?:[0-9A-F]{2}:){31}[0-9A-F]{2})")


class Server:
    """A running chatd, its ports by door and the fingerprint it logged."""

    def __init__(self, process: ChatdProcess) -> None:
        self.process = process
        line = process.wait_for_log("TLS certificate")
        self.certificate_line = line
        self.fingerprint = FINGERPRINT.search(line).group(1)
        self.chat = _port(process.wait_for_log("chat room listening on"))
        self.irc = _port(process.wait_for_log("IRC listening on"))
        self.irc_tls = _port(process.wait_for_log("IRC over TLS listening on"))
        self.web = _port(process.wait_for_log("web page listening on"))
        self.web_tls = _port(process.wait_for_log("web page over TLS listening on"))


def _port(line: str) -> int:
    return int(re.search(r":(\d+)(?: \(|$)", line.strip()).group(1))


def start(tmp_path: Path, *args: str) -> Server:
    process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--name", "lab", "--no-echo",
                           "--state-dir", str(tmp_path / "state"), *args, cwd=tmp_path)
    try:
        return Server(process)
    except BaseException:
        process.stop()
        raise


@pytest.fixture
def server(tmp_path):
    running = start(tmp_path, "--login-timeout", "3")
    yield running
    running.process.stop()


def tls_line_client(port: int, server: Server, **options) -> LineClient:
    """A TLS client of `port` that checks the certificate's fingerprint against the one chatd logged."""
    client = LineClient(port, tls=trusting(**options))
    assert peer_fingerprint(client.sock) == server.fingerprint
    return client


def irc_register(client: LineClient, nick: str) -> None:
    client.send(f"NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n")
    client.read_until(f" 366 {nick} #lobby ".encode())
    client.read_until(b"\r\n")


def test_tls_on_every_door_chats_with_a_plain_telnet_user(server):
    """
    A TLS client on the chat port (telnet), IRC over TLS on its own port and
    on the plain IRC port, and the web page's WebSocket over TLS (wss) on
    its own port, on the plain web port and on the chat port: each sees the
    certificate chatd logged, joins #lobby and talks with a plain telnet user
    both ways.  /metrics counts them as TLS connections.
    """
    bob = LineClient(server.chat).login("bob")

    alice = tls_line_client(server.chat, server).login("alice")
    assert bob.read_line() == "*** alice has joined (2 users online)"
    alice.send_line("hello over TLS")
    assert bob.read_line() == "<alice> hello over TLS"
    bob.send_line("hello in clear")
    alice.read_until(b"<bob> hello in clear\r\n")

    clients = [alice]  # each stays connected to the end
    for nick, port in (("carol", server.irc_tls), ("dave", server.irc)):
        irc = tls_line_client(port, server)
        clients.append(irc)
        irc_register(irc, nick)
        assert bob.read_line() == f"*** {nick} has joined ({3 if nick == 'carol' else 4} users online)"
        irc.send(f"PRIVMSG #lobby :{nick} here, over TLS\r\n")
        assert bob.read_line() == f"<{nick}> {nick} here, over TLS"

    for number, port in enumerate((server.web_tls, server.web, server.chat)):
        nick = f"web{number}"
        web = WebClient(port, tls=trusting(alpn=["http/1.1"]))
        assert peer_fingerprint(web.sock) == server.fingerprint
        clients.append(web.login(nick))
        assert bob.read_line() == f"*** {nick} has joined ({5 + number} users online)"
        web.send_json({"type": "say", "text": f"{nick} says hi"})
        assert bob.read_line() == f"<{nick}> {nick} says hi"

    clients[-1].sock.sendall(clients[-1].ws.send(CloseConnection(code=1001)))  # the page is closed
    assert bob.read_line() == "*** web2 has left (Quit)"  # at once, and as a clean close, though over TLS

    metrics = LineClient(server.web)
    metrics.send("GET /metrics HTTP/1.0\r\n\r\n")
    exposition = metrics.read_until_closed().decode()
    assert 'chatd_connections{door="telnet",tls="yes"} 1.0' in exposition
    assert 'chatd_connections{door="telnet",tls="no"} 1.0' in exposition
    assert 'chatd_connections{door="irc",tls="yes"} 2.0' in exposition
    assert 'chatd_connections{door="web",tls="yes"} 2.0' in exposition
    assert "chatd_tls_handshakes_failed_total 0.0" in exposition


def test_the_page_over_plain_http_is_told_where_it_is_over_tls_and_the_fingerprint(server):
    """The welcome over a plain WebSocket names the TLS port and the fingerprint; over wss it needs not."""
    plain = WebClient(server.web)
    assert plain.receive()["https"] == {"port": server.web_tls, "fingerprint": server.fingerprint}
    private = WebClient(server.web_tls, tls=trusting())
    assert "https" not in private.receive()


def test_https_on_the_chat_port_is_told_by_alpn_before_the_greeting_wait(server):
    """
    Chromium opens TLS connections ahead of time and may send its request
    well after the greeting wait.  A client whose ALPN offers http/1.1 gets
    the page on the chat port however late its request comes; one without
    ALPN that stays silent gets the telnet greeting.  (The pause is the
    behaviour under test: a browser's request coming late.)
    """
    browser = tls_line_client(server.chat, server, alpn=["h2", "http/1.1"])
    assert browser.sock.selected_alpn_protocol() == "http/1.1"
    time.sleep(0.3)  # six greeting waits
    browser.send("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    response = browser.read_until_closed()
    assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"<!doctype html>" in response

    silent = tls_line_client(server.chat, server)
    assert silent.sock.selected_alpn_protocol() is None
    silent.read_until(b"*** Choose a nickname:\r\n")


def test_openssl_s_client_and_socat_chat_on_the_chat_port(server):
    """Debian's `openssl s_client` and `socat ... OPENSSL:` connect to the chat port, log in and chat with bob."""
    for program in ("openssl", "socat"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is not installed; make test installs it (see TEST_PROGRAMS in the Makefile)")
    bob = LineClient(server.chat).login("bob")
    commands = {
        "alice": ["openssl", "s_client", "-connect", f"127.0.0.1:{server.chat}", "-quiet"],
        "carol": ["socat", "-", f"OPENSSL:127.0.0.1:{server.chat},verify=0"],
    }
    for nick, command in commands.items():
        client = pexpect.spawn(command[0], command[1:], timeout=TIMEOUT_SECONDS, encoding="utf-8")
        try:
            client.expect_exact("Choose a nickname:")
            client.sendline(nick)
            assert bob.read_line() == f"*** {nick} has joined (2 users online)"  # the one before has left
            client.sendline(f"hi from {command[0]}")
            assert bob.read_line() == f"<{nick}> hi from {command[0]}"
            bob.send_line(f"hello {nick}")
            client.expect_exact(f"<bob> hello {nick}")
            client.sendline("/quit")
            assert bob.read_line() == f"*** {nick} has left (Quit)"
            client.expect(pexpect.EOF)  # chatd closed the connection, and the program ended
        finally:
            client.close(force=True)


def test_the_self_signed_certificate_is_made_once_reused_and_replaceable(tmp_path):
    """
    The first start makes chatd's own certificate (key mode 0600) and logs
    its fingerprint; the second reuses it (same fingerprint); a third, after
    the files were replaced by another certificate, serves the new one.
    """
    state = tmp_path / "state"  # --state-dir, as start() gives it
    fingerprints = []
    for turn in range(3):
        if turn == 2:
            ca = trustme.CA()
            issued = ca.issue_cert("localhost", "127.0.0.1")
            issued.cert_chain_pems[0].write_to_path(str(state / "certificate.pem"))
            issued.private_key_pem.write_to_path(str(state / "key.pem"))
        server = start(tmp_path)
        try:
            assert ("made now" if turn == 0 else "kept") in server.certificate_line
            client = tls_line_client(server.chat, server)
            client.read_until(b"Choose a nickname:")
            client.close()
            fingerprints.append(server.fingerprint)
        finally:
            server.process.stop()
    assert (state / "key.pem").stat().st_mode & 0o777 == 0o600
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


def test_an_operators_certificate_is_verified_by_clients_that_trust_its_ca(tmp_path):
    """With --tls-cert and --tls-key (a chain from a trustme CA), clients that trust the CA verify the host name."""
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    issued.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    with open(tmp_path / "chain.pem", "wb") as chain:
        for pem in issued.cert_chain_pems:
            chain.write(pem.bytes())
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    server = start(tmp_path, "--tls-cert", str(tmp_path / "chain.pem"), "--tls-key", str(tmp_path / "key.pem"))
    try:
        assert f"from {tmp_path / 'chain.pem'}" in server.certificate_line
        client = LineClient(server.irc_tls, tls=trusting(tmp_path / "ca.pem"), server_hostname="localhost")
        irc_register(client, "alice")
        client.close()
        other = ssl.create_default_context()  # the system's CAs only: the test CA is not among them
        with pytest.raises(ssl.SSLCertVerificationError):
            LineClient(server.chat, tls=other, server_hostname="localhost")
    finally:
        server.process.stop()


def _expired(tmp_path: Path) -> tuple[Path, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", not_before=datetime.datetime(2020, 1, 1),
                           not_after=datetime.datetime(2021, 1, 1))
    issued.cert_chain_pems[0].write_to_path(str(tmp_path / "expired.pem"))
    issued.private_key_pem.write_to_path(str(tmp_path / "expired-key.pem"))
    return tmp_path / "expired.pem", tmp_path / "expired-key.pem"


def test_bad_certificate_files_are_one_line_naming_the_file_and_exit_status_2(tmp_path):
    """Missing, not PEM, a key of another certificate, expired: each is one line on stderr naming the file; exit 2."""
    ca = trustme.CA()
    good = ca.issue_cert("localhost")
    good.cert_chain_pems[0].write_to_path(str(tmp_path / "good.pem"))
    good.private_key_pem.write_to_path(str(tmp_path / "good-key.pem"))
    ca.issue_cert("elsewhere").private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    (tmp_path / "text.pem").write_text("not a certificate\n")
    expired, expired_key = _expired(tmp_path)
    cases = {
        (tmp_path / "missing.pem", tmp_path / "good-key.pem"): "missing.pem",
        (tmp_path / "text.pem", tmp_path / "good-key.pem"): "text.pem: not a PEM certificate",
        (tmp_path / "good.pem", tmp_path / "other-key.pem"): "other-key.pem: not the key of the certificate",
        (expired, expired_key): "expired.pem: expired on 2021-01-01",
    }
    for (certificate, key), said in cases.items():
        process = ChatdProcess("--port", "0", "--interface", "127.0.0.1", "--no-echo", "--tls-cert", str(certificate),
                               "--tls-key", str(key), cwd=tmp_path)
        assert process.finish() == 2
        errors = [line for line in process.lines["stderr"] if line.strip()]
        assert len(errors) == 1 and errors[0].startswith("chatd: --tls-cert: ") and said in errors[0], errors
        assert "Traceback" not in "\n".join(process.lines["stdout"])


def test_bad_handshakes_are_refused_and_logged_while_chat_goes_on(server):
    """
    Garbage after a TLS record header, a ClientHello cut in half then
    silence, and a client that offers only TLS 1.0: each is closed and
    logged (one line per peer address per minute, never a traceback), the
    half-open one at the login timeout; a plain user chats all along.
    """
    bob = LineClient(server.chat).login("bob")
    carol = LineClient(server.chat, source="127.0.0.2").login("carol")
    bob.read_line()  # carol's join

    garbage = socket.create_connection(("127.0.0.1", server.chat), timeout=TIMEOUT_SECONDS)
    garbage.sendall(bytes.fromhex("1603010040") + b"\xff" * 64)
    _read_until_closed(garbage)  # an alert, then closed (a timeout here fails the test)
    server.process.wait_for_log("TLS handshake with 127.0.0.1")

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname, old.verify_mode = False, ssl.CERT_NONE
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1
    with pytest.raises(ssl.SSLError):
        LineClient(server.chat, source="127.0.0.3", tls=old)
    line = server.process.wait_for_log("TLS handshake with 127.0.0.3")
    assert "unsupported protocol" in line or "version" in line, line

    half = socket.create_connection(("127.0.0.1", server.irc_tls), timeout=TIMEOUT_SECONDS, source_address=("127.0.0.4", 0))
    half.sendall(_client_hello()[:40])
    bob.send_line("still chatting")
    assert carol.read_line() == "<bob> still chatting"
    started = time.monotonic()
    assert _read_until_closed(half) == b""  # closed at the login timeout (3 s from the TCP connect)
    assert 1.5 < time.monotonic() - started < 3 + TIMEOUT_SECONDS
    line = server.process.wait_for_log("TLS handshake with 127.0.0.4")
    assert "not done within the login timeout" in line
    assert not any("Traceback" in each for each in server.process.log)


def test_two_hundred_half_open_handshakes_from_one_address_hold_no_more_than_its_share(tmp_path):
    """
    200 connections from one address that send half a ClientHello and wait:
    at most --max-per-ip are held (the rest are refused at once), all are
    closed at the login timeout, the log has a few lines for them rather than
    200, and a user from another address chats all along.
    """
    server = start(tmp_path, "--login-timeout", "3", "--max-per-ip", "20")
    half_open = []
    try:
        bob = LineClient(server.chat, source="127.0.0.2").login("bob")
        carol = LineClient(server.chat, source="127.0.0.3").login("carol")
        bob.read_line()
        hello = _client_hello()[:40]
        for number in range(200):
            sock = socket.create_connection(("127.0.0.1", (server.chat, server.web_tls, server.irc)[number % 3]),
                                            timeout=TIMEOUT_SECONDS)
            sock.sendall(hello)
            half_open.append(sock)
        bob.send_line("the show goes on")
        assert carol.read_line() == "<bob> the show goes on"
        closed_at_once = sum(1 for sock in half_open if _closed_within(sock, 0.5))
        assert closed_at_once >= 200 - 20
        for sock in half_open:
            _read_until_closed(sock)  # the rest, at the login timeout
        bob.send_line("and on")
        assert carol.read_line() == "<bob> and on"
        # Once they are gone, the address may connect again.
        again = tls_line_client(server.chat, server)
        again.read_until(b"Choose a nickname:")
    finally:
        for sock in half_open:
            sock.close()
        server.process.stop()
    failures = [line for line in server.process.log if "TLS handshake with 127.0.0.1" in line]
    assert 1 <= len(failures) <= 5, failures
    assert not any("Traceback" in line for line in server.process.log)


def _client_hello() -> bytes:
    """The first flight of a real TLS client (Python's ssl, through memory BIOs)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = trusting().wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    return outgoing.read()


def _read_until_closed(sock: socket.socket) -> bytes:
    """What the server sends until it closes; TimeoutError if it does not within TIMEOUT_SECONDS."""
    data = b""
    sock.settimeout(TIMEOUT_SECONDS)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
