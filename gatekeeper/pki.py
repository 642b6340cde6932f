"""A development PKI made with `cryptography`: a CA, a server certificate, client certificates.

Private keys are written with mode 0600. Nothing here is meant for production trust roots;
`gatekeeper certs init` and `gatekeeper serve` (when no TLS flags are given) use it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "ca"
SERVER_NAME = "server"
VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True, slots=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def make_ca(common_name: str = "gatekeeper-dev-ca") -> Issued:
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY * 10)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    hosts: Sequence[str] = (),
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> Issued:
    """A leaf certificate signed by `ca` for `usage` (server or client auth)."""
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - dt.timedelta(minutes=5))
        .not_valid_after(not_after or now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if hosts:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(hosts)), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _sans(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def issue_server(ca: Issued, hosts: Sequence[str]) -> Issued:
    return issue(ca, _name(hosts[0] if hosts else "localhost"), ExtendedKeyUsageOID.SERVER_AUTH, hosts)


def issue_client(ca: Issued, user: str, groups: Sequence[str] = ()) -> Issued:
    return issue(ca, _name(user, groups), ExtendedKeyUsageOID.CLIENT_AUTH)


def write(issued: Issued, directory: Path, stem: str) -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    key_pem = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(pair.key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(pair.key, 0o600)
    return pair


def load(pair: KeyPair) -> Issued:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pair.key}: expected an EC private key made by `gatekeeper certs init`")
    return Issued(cert, key)


DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")


def ensure_dev_pki(directory: Path, hosts: Sequence[str] = ()) -> tuple[KeyPair, KeyPair]:
    """(CA, server) key pairs under `directory`, created on first use; returns existing ones."""
    ca_pair = KeyPair(directory / f"{CA_NAME}.crt", directory / f"{CA_NAME}.key")
    server_pair = KeyPair(directory / f"{SERVER_NAME}.crt", directory / f"{SERVER_NAME}.key")
    if ca_pair.cert.exists() and ca_pair.key.exists():
        ca = load(ca_pair)
    else:
        ca = make_ca()
        write(ca, directory, CA_NAME)
    if not (server_pair.cert.exists() and server_pair.key.exists()):
        write(issue_server(ca, [*DEFAULT_HOSTS, *hosts]), directory, SERVER_NAME)
    return ca_pair, server_pair
