"""Client certificates good and bad, for the authentication tests (real keys, real signatures)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper import pki

NOW = dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class BadCerts:
    """One certificate per way a client certificate must fail x509 authentication."""

    wrong_ca: pki.Issued
    expired: pki.Issued
    not_yet_valid: pki.Issued
    server_auth_only: pki.Issued
    self_signed: pki.Issued

    def items(self) -> list[tuple[str, pki.Issued]]:
        return [
            ("wrong-ca", self.wrong_ca),
            ("expired", self.expired),
            ("not-yet-valid", self.not_yet_valid),
            ("server-auth-only", self.server_auth_only),
            ("self-signed", self.self_signed),
        ]


def self_signed_client(user: str) -> pki.Issued:
    key = pki.new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return pki.Issued(cert, key)


def bad_certs(ca: pki.Issued, user: str = "kube-apiserver") -> BadCerts:
    """Each names `user` (a user the policy allows), so only the certificate itself is wrong."""
    other_ca = pki.make_ca("some-other-ca")
    return BadCerts(
        wrong_ca=pki.issue_client(other_ca, user),
        expired=pki.issue_client(
            ca, user, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
        ),
        not_yet_valid=pki.issue_client(
            ca, user, not_before=NOW + dt.timedelta(days=1), not_after=NOW + dt.timedelta(days=30)
        ),
        server_auth_only=pki.issue(
            ca, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)]), ExtendedKeyUsageOID.SERVER_AUTH
        ),
        self_signed=self_signed_client(user),
    )


def no_cn(ca: pki.Issued) -> pki.Issued:
    """A valid client certificate whose subject has an O but no CN."""
    return pki.issue(
        ca,
        x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters")]),
        ExtendedKeyUsageOID.CLIENT_AUTH,
    )


def write_pair(issued: pki.Issued, directory: Path, stem: str) -> tuple[str, str]:
    pair = pki.write(issued, directory, stem)
    return str(pair.cert), str(pair.key)
