"""
A real redis-server for the cluster tests: Debian's, on a free loopback
port, in a temporary directory of its own, saving nothing (so a restart
loses its data, as the fault tests want).
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import signal
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.chatd_process import Process
from tests.conftest import free_port_run

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"  # Debian's redis-tools, which redis-server needs


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port_run(1)
        self.process: Process | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait for its own word that it is ready."""
        self.process = Process([
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no", "--protected-mode", "yes",
        ], self.directory)
        self.process.wait_for_log("Ready to accept connections")

    def pause(self) -> None:
        """SIGSTOP: its connections stay open and nothing is answered."""
        assert self.process is not None
        self.process.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.process.poll() is None:
            self.process.process.send_signal(signal.SIGCONT)  # a stopped process cannot act on SIGTERM
            self.process.stop()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: gone at once, with everything it held."""
        assert self.process is not None
        self.process.stop(signal.SIGKILL)
        self.process = None

    def cli(self, *args: str) -> str:
        """Debian's redis-cli against this server (`-a PASSWORD`, `-n DB` and the like first), its output."""
        import subprocess

        return subprocess.run([REDIS_CLI, "-p", str(self.port), "--no-auth-warning", *args], capture_output=True,
                              text=True, timeout=10, check=True).stdout

    def command(self, *args: str) -> bytes:
        """One command over a plain socket, its raw reply (for checks the tests make of Redis itself)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            parts = [f"*{len(args)}\r\n".encode()]
            for arg in args:
                data = arg.encode()
                parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
            connection.sendall(b"".join(parts))
            return connection.recv(65536)


def make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A certificate authority, and a certificate it signed for 127.0.0.1 and its key: (ca, certificate, key)."""
    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("chatd test CA")).issuer_name(name("chatd test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    certificate = (x509.CertificateBuilder().subject_name(name("127.0.0.1")).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "redis.pem", directory / "redis.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


class TLSRedisServer(RedisServer):
    """redis-server answering only TLS (rediss://), its certificate signed by a CA of the test's own."""

    def __init__(self, directory: Path) -> None:
        self.ca, self.certificate, self.key = make_tls_files(directory)
        super().__init__(directory)

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = Process([
            REDIS_SERVER, "--bind", "127.0.0.1", "--port", "0", "--tls-port", str(self.port),
            "--tls-cert-file", str(self.certificate), "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no", "--dir", str(self.directory),
            "--save", "", "--appendonly", "no", "--logfile", "", "--daemonize", "no",
        ], self.directory)
        self.process.wait_for_log("Ready to accept connections")
