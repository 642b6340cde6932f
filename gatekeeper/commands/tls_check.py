"""What `serve` checks before it starts listening, so that a bad certificate, a key of another
certificate or a port in use is one line naming the flag and the fix, not a traceback from
deep inside the TLS or socket layer."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from gatekeeper.config import Settings

CERT_FLAG, KEY_FLAG, CA_FLAG = "--tls-cert-file", "--tls-private-key-file", "--client-ca-file"


def load_certificates(path: Path, flag: str) -> list[x509.Certificate]:
    """The PEM certificates of a file (ValueError naming the flag if there are none)."""
    data = path.read_bytes()
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        certificates = []
    if not certificates:
        kind = "a DER (binary) file" if data[:1] == b"\x30" else "not a PEM certificate"
        raise ValueError(f"{flag} {path}: {kind}; expected -----BEGIN CERTIFICATE----- blocks "
                         f"(convert with `openssl x509 -inform der -in {path} -out {path}.pem`)")
    return certificates


def load_key(path: Path, flag: str) -> object:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:
        raise ValueError(f"{flag} {path}: the key is encrypted; give an unencrypted PEM key "
                         f"(`openssl pkey -in {path} -out plain.key`)") from None
    except ValueError:
        raise ValueError(f"{flag} {path}: not a PEM private key; expected a -----BEGIN PRIVATE KEY----- "
                         f"block (the .key file made with the certificate)") from None


def check_pair(cert: Path, key: Path, cert_flag: str = CERT_FLAG, key_flag: str = KEY_FLAG) -> None:
    """The key must be the certificate's: OpenSSL would say KEY_VALUES_MISMATCH."""
    leaf = load_certificates(cert, cert_flag)[0]
    private = load_key(key, key_flag)
    public = getattr(private, "public_key", None)
    if public is None or _spki(public()) != _spki(leaf.public_key()):
        raise ValueError(f"{key_flag} {key} is not the key of {cert_flag} {cert}: give the key the "
                         f"certificate was issued for (a re-issued certificate has a new key)")


def _spki(public: object) -> bytes:
    return public.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def check_tls_files(settings: Settings) -> None:
    assert settings.tls_cert_file and settings.tls_private_key_file
    try:
        check_pair(settings.tls_cert_file, settings.tls_private_key_file)
        if settings.client_ca_file:
            load_certificates(settings.client_ca_file, CA_FLAG)
    except OSError as exc:  # the file vanished or changed mode since the flags were read
        raise ValueError(f"{exc.filename}: {exc.strerror or exc}") from None


def check_port(host: str, port: int) -> None:
    """Bind once and let go, so that a port in use fails here with the flag to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ValueError(_bind_problem(host, port, exc)) from None


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        return (f"--secure-port {port}: {where} is already in use (another gatekeeper serve?); stop it "
                f"or pass another --secure-port")
    if exc.errno == errno.EACCES:
        return f"--secure-port {port}: binding {where} needs privileges; use a port above 1023"
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return f"--bind-address {host}: no interface of this host has that address; try 127.0.0.1 or 0.0.0.0"
    return f"--bind-address {host} --secure-port {port}: cannot listen: {exc.strerror or exc}"
