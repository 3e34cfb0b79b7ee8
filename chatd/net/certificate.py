"""
The server's TLS certificate: the operator's own (`--tls-cert`,
`--tls-key`), or one chatd makes on its first start and keeps in its state
directory, so that nobody has to make one.

    load(certificate file, key file)       the operator's: checked, or one
                                           line naming the file and why
    self_signed(state directory, names)    chatd's own: made once, then reused

Either way the result is a `Certificate`: the PEM to serve and the SHA-256
fingerprint users compare with what their browser or client shows.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from attrs import frozen
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# chatd's own certificate: the longest validity Apple's platforms accept
# for a TLS server certificate, trusted by hand or not; made again when
# fewer than RENEW_BEFORE days are left.
SELF_SIGNED_DAYS = 825
RENEW_BEFORE_DAYS = 30
# A PEM chain of a few certificates is a few KiB.
MAX_FILE_BYTES = 1024 * 1024
CERTIFICATE_FILE = "certificate.pem"
KEY_FILE = "key.pem"


# The kinds of private key a TLS server can sign its handshakes with.
TLS_KEY_TYPES = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)


class CertificateError(Exception):
    """A certificate or key chatd cannot use: one line naming the file and why."""


@frozen
class Certificate:
    """A certificate (with its chain, if any) and its private key, as PEM, and what users check."""

    certificate_pem: bytes
    key_pem: bytes
    fingerprint: str  # SHA-256 of the server's certificate, as browsers show it: "AB:CD:..."
    not_after: datetime.datetime
    certificate_file: Path
    key_file: Path


def default_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """$XDG_STATE_HOME/chatd, else ~/.local/state/chatd."""
    state_home = environ.get("XDG_STATE_HOME")
    if state_home and Path(state_home).is_absolute():
        return Path(state_home) / "chatd"
    return Path(environ.get("HOME") or Path.home()) / ".local" / "state" / "chatd"


def fingerprint(certificate: x509.Certificate) -> str:
    """The SHA-256 fingerprint of `certificate`, in colon-separated upper-case hex."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def load(certificate_file: Path, key_file: Path, now: datetime.datetime | None = None) -> Certificate:
    """
    The operator's certificate (PEM, the server's first, a chain allowed)
    and its unencrypted private key, checked: both readable PEM, the key the
    certificate's, the certificate valid now.  Else CertificateError.
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    certificate_pem, key_pem = _read(certificate_file), _read(key_file)
    try:
        chain = x509.load_pem_x509_certificates(certificate_pem)
    except ValueError:
        raise CertificateError(f"{certificate_file}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise CertificateError(f"{key_file}: the key is encrypted; chatd needs it without a password") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateError(f"{key_file}: not a PEM private key") from None
    if not isinstance(key, TLS_KEY_TYPES):
        raise CertificateError(f"{key_file}: not a kind of key TLS can use (RSA, ECDSA or EdDSA)")
    server = chain[0]
    if server.public_key().public_bytes(*_PUBLIC) != key.public_key().public_bytes(*_PUBLIC):
        raise CertificateError(f"{key_file}: not the key of the certificate in {certificate_file}")
    if now > server.not_valid_after_utc:
        raise CertificateError(f"{certificate_file}: expired on {server.not_valid_after_utc:%Y-%m-%d}")
    if now < server.not_valid_before_utc:
        raise CertificateError(f"{certificate_file}: not valid before {server.not_valid_before_utc:%Y-%m-%d}")
    return Certificate(certificate_pem, key_pem, fingerprint(server), server.not_valid_after_utc,
                       certificate_file, key_file)


def self_signed(state_dir: Path, host_names: Iterable[str], addresses: Iterable[str],
                now: datetime.datetime | None = None) -> tuple[Certificate, bool]:
    """
    chatd's own certificate, kept in `state_dir`: the one made on an
    earlier start if it is still good for RENEW_BEFORE_DAYS, else a new one
    for `host_names`, `addresses` and localhost.  True with it if it is new.
    (One made earlier is reused as it is, even if chatd now listens on other
    addresses: users who checked its fingerprint keep trusting it.)
    """
    now = now or datetime.datetime.now(datetime.timezone.utc)
    certificate_file, key_file = state_dir / CERTIFICATE_FILE, state_dir / KEY_FILE
    if certificate_file.exists() and key_file.exists():
        try:
            kept = load(certificate_file, key_file, now)
        except CertificateError:
            pass  # damaged or expired: made again below
        else:
            if kept.not_after - now > datetime.timedelta(days=RENEW_BEFORE_DAYS):
                return kept, False
    certificate_pem, key_pem = _make(host_names, addresses, now)
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _write_private(key_file, key_pem)
    _write_private(certificate_file, certificate_pem)
    return load(certificate_file, key_file, now), True


_PUBLIC = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: Path) -> bytes:
    """The file's bytes, at most MAX_FILE_BYTES of them (an operator's typo must not read /dev/zero for ever)."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise CertificateError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CertificateError(f"{path}: a directory, not a file") from None
    except OSError as error:
        raise CertificateError(f"{path}: cannot be read ({error.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise CertificateError(f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; not a certificate or a key")
    return data


def _make(host_names: Iterable[str], addresses: Iterable[str], now: datetime.datetime) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a certificate for it, signed by itself: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys([*host_names, "localhost"]))
    ips = [ip for ip in dict.fromkeys(ipaddress.ip_address(address) for address in [*addresses, "127.0.0.1", "::1"])
           if not ip.is_unspecified]  # 0.0.0.0 and :: are where chatd listens, not addresses a client uses
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "chatd (self-signed)")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))  # a client whose clock is a little behind
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName([*map(x509.DNSName, names), *map(x509.IPAddress, ips)]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    """Write `path` readable by its owner only (0600), whole or not at all."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
