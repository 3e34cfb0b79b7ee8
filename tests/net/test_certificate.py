"""
The server's TLS certificate (chatd.net.certificate): the operator's own,
checked with one clear line per problem, and chatd's self-signed one, made
once and reused.  The operator's certificates come from a test CA (trustme).
"""

import datetime
import hashlib
import ipaddress
import stat

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519

from chatd.net.certificate import (
    CERTIFICATE_FILE,
    KEY_FILE,
    RENEW_BEFORE_DAYS,
    SELF_SIGNED_DAYS,
    CertificateError,
    default_state_dir,
    load,
    self_signed,
)

NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
def operator_files(tmp_path):
    """A certificate for chat.lab with its CA in the chain, and its key, as an operator would have them."""
    ca = trustme.CA()
    issued = ca.issue_cert("chat.lab")
    certificate_file, key_file = tmp_path / "chat.pem", tmp_path / "chat.key"
    certificate_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    key_file.write_bytes(issued.private_key_pem.bytes())
    return certificate_file, key_file


def test_an_operators_certificate_with_its_chain_is_loaded_with_its_fingerprint(operator_files):
    """A PEM chain and its key load; the fingerprint is the server certificate's SHA-256, as browsers show it."""
    certificate_file, key_file = operator_files
    loaded = load(certificate_file, key_file)
    server = x509.load_pem_x509_certificates(certificate_file.read_bytes())[0]
    digest = hashlib.sha256(server.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    assert loaded.fingerprint == ":".join(digest[i:i + 2] for i in range(0, 64, 2))
    assert len(loaded.fingerprint.split(":")) == 32
    assert loaded.certificate_pem == certificate_file.read_bytes()


@pytest.mark.parametrize("problem, expected", [
    ("missing certificate", "{cert}: no such file"),
    ("missing key", "{key}: no such file"),
    ("certificate not PEM", "{cert}: not a PEM certificate"),
    ("key not PEM", "{key}: not a PEM private key"),
    ("another key", "{key}: not the key of the certificate in {cert}"),
    ("encrypted key", "{key}: the key is encrypted; chatd needs it without a password"),
    ("directory", "{cert}: a directory, not a file"),
    ("key exchange key", "{key}: not a kind of key TLS can use (RSA, ECDSA or EdDSA)"),
    ("endless file", "{cert}: larger than 1024 KiB; not a certificate or a key"),
])
def test_a_bad_certificate_or_key_is_one_line_naming_the_file_and_why(operator_files, problem, expected):
    """Each way the operator's files can be wrong gives its own line, naming the file."""
    certificate_file, key_file = operator_files
    if problem == "missing certificate":
        certificate_file.unlink()
    elif problem == "missing key":
        key_file.unlink()
    elif problem == "certificate not PEM":
        certificate_file.write_text("hello\n")
    elif problem == "key not PEM":
        key_file.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    elif problem == "another key":
        key_file.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif problem == "encrypted key":
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.BestAvailableEncryption(b"secret")))
    elif problem == "key exchange key":
        key_file.write_bytes(x25519.X25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    elif problem == "endless file":
        certificate_file.unlink()
        certificate_file.symlink_to("/dev/zero")
    elif problem == "directory":
        certificate_file.unlink()
        certificate_file.mkdir()
    with pytest.raises(CertificateError) as refusal:
        load(certificate_file, key_file)
    assert str(refusal.value) == expected.format(cert=certificate_file, key=key_file)
    assert "\n" not in str(refusal.value)


def test_an_expired_certificate_is_refused_with_its_date(operator_files):
    """A certificate past its end is refused, naming the file and the day it expired."""
    certificate_file, key_file = operator_files
    server = x509.load_pem_x509_certificates(certificate_file.read_bytes())[0]
    later = server.not_valid_after_utc + datetime.timedelta(days=1)
    with pytest.raises(CertificateError, match=f"^{certificate_file}: expired on "
                                                f"{server.not_valid_after_utc:%Y-%m-%d}$"):
        load(certificate_file, key_file, now=later)


def test_the_self_signed_certificate_is_made_once_private_and_for_every_name(tmp_path):
    """A first start makes an ECDSA P-256 certificate for the names, addresses and localhost, in files only the owner reads."""
    state = tmp_path / "state" / "chatd"
    made, new = self_signed(state, ["lab-pc"], ["192.168.1.20", "0.0.0.0"], now=NOW)
    assert new
    for name in (CERTIFICATE_FILE, KEY_FILE):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    certificate = x509.load_pem_x509_certificate(made.certificate_pem)
    assert isinstance(certificate.public_key(), ec.EllipticCurvePublicKey)
    assert certificate.public_key().curve.name == "secp256r1"
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["lab-pc", "localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address(address)
                                                        for address in ("192.168.1.20", "127.0.0.1", "::1")]
    assert made.not_after - NOW > datetime.timedelta(days=SELF_SIGNED_DAYS - 1)
    assert load(state / CERTIFICATE_FILE, state / KEY_FILE).fingerprint == made.fingerprint


def test_a_later_start_reuses_the_certificate_and_a_replaced_one_is_used(tmp_path):
    """The second start keeps the fingerprint; files replaced by other good ones are used as they are."""
    first, _ = self_signed(tmp_path, ["lab-pc"], [], now=NOW)
    again, new = self_signed(tmp_path, ["another-name"], ["10.0.0.1"], now=NOW)
    assert not new and again.fingerprint == first.fingerprint
    other = tmp_path / "other"
    replacement, _ = self_signed(other, ["lab-pc"], [], now=NOW)
    for name in (CERTIFICATE_FILE, KEY_FILE):
        (tmp_path / name).write_bytes((other / name).read_bytes())
    third, new = self_signed(tmp_path, ["lab-pc"], [], now=NOW)
    assert not new and third.fingerprint == replacement.fingerprint != first.fingerprint


def test_a_self_signed_certificate_near_its_end_or_damaged_is_made_again(tmp_path):
    """Fewer than RENEW_BEFORE_DAYS left, or a damaged file: a new certificate, not a failed start."""
    first, _ = self_signed(tmp_path, ["lab-pc"], [], now=NOW)
    near_end = first.not_after - datetime.timedelta(days=RENEW_BEFORE_DAYS - 1)
    renewed, new = self_signed(tmp_path, ["lab-pc"], [], now=near_end)
    assert new and renewed.fingerprint != first.fingerprint
    (tmp_path / KEY_FILE).write_text("damaged")
    remade, new = self_signed(tmp_path, ["lab-pc"], [], now=near_end)
    assert new and remade.fingerprint != renewed.fingerprint


def test_the_state_directory_follows_xdg_and_falls_back_to_home():
    """$XDG_STATE_HOME/chatd when it is set (and absolute), else ~/.local/state/chatd."""
    assert str(default_state_dir({"XDG_STATE_HOME": "/var/lib/x", "HOME": "/home/a"})) == "/var/lib/x/chatd"
    assert str(default_state_dir({"XDG_STATE_HOME": "relative", "HOME": "/home/a"})) == "/home/a/.local/state/chatd"
    assert str(default_state_dir({"HOME": "/home/a"})) == "/home/a/.local/state/chatd"
