"""Client-certificate authentication, as kube-apiserver's x509 authenticator (CommonNameUserConversion).

The chain is verified against the client CA bundle with the ClientAuth extended key usage, at
the current time, by cryptography's X.509 verifier. The TLS layer verified the same certificate
during the handshake; this is the second, independent check (and the only one offline).

- username: the subject's CommonName (the last one, as Go's pkix.Name); no CN means "not
  authenticated by this method" (not an error), as in Kubernetes;
- groups: every Organization of the subject, in order;
- uid: the subject attribute 1.3.6.1.4.1.57683.2 when present (exactly one, non-empty);
- extra: authentication.kubernetes.io/credential-id = ["X509SHA256=<sha256 of the leaf's DER, hex>"].

Profile: cryptography's Web PKI profile with two relaxations that match Go's verifier (which
kube-apiserver uses): a client certificate needs no subjectAltName and no authorityKeyIdentifier.
An EKU extension, when present, must list clientAuth; a certificate without one is accepted,
as Go and OpenSSL do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from gatekeeper.authn.errors import AuthenticationError
from gatekeeper.authn.user import UserInfo

UID_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57683.2")
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
MAX_CHAIN_DEPTH = 8
# A failed verification is remembered on the connection this long before it is tried again.
FAILURE_TTL = dt.timedelta(seconds=60)

Outcome = UserInfo | AuthenticationError | None


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class PeerCertificates:
    """The certificates a client presented on one TLS connection (leaf first, PEM), and what the
    authenticator made of them. One object per connection, so a keep-alive connection verifies
    and parses its certificate once, not on every request."""

    __slots__ = ("_cached", "chain_pem")

    def __init__(self, chain_pem: Sequence[str]) -> None:
        self.chain_pem = tuple(chain_pem)
        self._cached: tuple[object, Outcome, dt.datetime] | None = None

    def __bool__(self) -> bool:
        return bool(self.chain_pem)

    def certificates(self) -> list[x509.Certificate]:
        return [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in self.chain_pem]


class X509Authenticator:
    """Verifies client certificates against a CA bundle; immutable, safe to share."""

    def __init__(self, roots: Sequence[x509.Certificate], source: str = "client CA") -> None:
        if not roots:
            raise ValueError(f"{source}: no certificates found")
        self.source = source
        self._store = Store(list(roots))
        ee = (
            ExtensionPolicy.webpki_defaults_ee()
            .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
            .may_be_present(x509.AuthorityKeyIdentifier, Criticality.NON_CRITICAL, None)
        )
        self._ee_policy = ee
        self._ca_policy = ExtensionPolicy.webpki_defaults_ca()

    @classmethod
    def from_file(cls, path: Path) -> X509Authenticator:
        try:
            roots = x509.load_pem_x509_certificates(path.read_bytes())
        except ValueError:
            raise ValueError(f"client CA file {path}: not a PEM certificate bundle") from None
        return cls(roots, str(path))

    def authenticate(self, peer: PeerCertificates, now: dt.datetime | None = None) -> UserInfo | None:
        """The user a connection's certificate names; None without a certificate or without a CN.

        Raises AuthenticationError when a certificate was presented but does not verify. The
        outcome is cached on `peer` until the chain expires (a failure: for FAILURE_TTL).
        """
        if not peer:
            return None
        now = now or now_utc()
        cached = peer._cached
        if cached is not None and cached[0] is self and now < cached[2]:
            outcome = cached[1]
        else:
            outcome, until = self._outcome(peer, now)
            peer._cached = (self, outcome, until)
        if isinstance(outcome, AuthenticationError):
            raise outcome
        return outcome

    def _outcome(self, peer: PeerCertificates, now: dt.datetime) -> tuple[Outcome, dt.datetime]:
        try:
            chain = peer.certificates()
        except ValueError:
            return AuthenticationError("x509: the client certificate could not be parsed"), now + FAILURE_TTL
        try:
            user = self.authenticate_chain(chain, now)
        except AuthenticationError as exc:
            return exc, now + FAILURE_TTL
        # Good until the first certificate of the chain expires; "no CN" is as stable as a success.
        until = min(c.not_valid_after_utc for c in chain)
        return user, until

    def verify(self, chain: Sequence[x509.Certificate], now: dt.datetime) -> list[x509.Certificate]:
        """The verified chain (leaf to root); raises AuthenticationError."""
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(ca_policy=self._ca_policy, ee_policy=self._ee_policy)
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(chain[0], list(chain[1:]))
        except VerificationError as exc:
            raise AuthenticationError(
                f"x509: verifying certificate {describe(chain[0])} failed: {_short(exc)}"
            ) from None
        return list(verified.chain)

    def authenticate_chain(
        self, chain: Sequence[x509.Certificate], now: dt.datetime | None = None
    ) -> UserInfo | None:
        if not chain:
            return None
        verified = self.verify(chain, now or now_utc())
        return user_from_certificate(verified[0])


def user_from_certificate(leaf: x509.Certificate) -> UserInfo | None:
    """Kubernetes' CommonNameUserConversion of a verified leaf certificate."""
    common_names = _strings(leaf.subject, NameOID.COMMON_NAME)
    if not common_names or not common_names[-1]:
        return None
    uids = _strings(leaf.subject, UID_OID)
    if len(uids) > 1:
        raise AuthenticationError(f"x509: expected 1 UID in {describe(leaf)}, found {len(uids)}")
    if uids and not uids[0]:
        raise AuthenticationError(f"x509: the UID of {describe(leaf)} cannot be an empty string")
    fingerprint = hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest()
    return UserInfo(
        name=common_names[-1],
        uid=uids[0] if uids else "",
        groups=tuple(_strings(leaf.subject, NameOID.ORGANIZATION_NAME)),
        extra={CREDENTIAL_ID: (f"X509SHA256={fingerprint}",)},
    )


def describe(cert: x509.Certificate) -> str:
    """How a certificate is named in logs: subject, serial and validity (nothing secret)."""
    return (
        f'"{cert.subject.rfc4514_string()}" [serial={cert.serial_number:x}, '
        f"validity={cert.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}..{cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}]"
    )


def _strings(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    values: list[str] = []
    for attribute in name.get_attributes_for_oid(oid):
        value = attribute.value
        if not isinstance(value, str):
            raise AuthenticationError(f"x509: subject attribute {oid.dotted_string} is not a string")
        values.append(value)
    return values


def _short(exc: VerificationError) -> str:
    # cryptography appends "(encountered processing <Certificate(...)>)"; describe() says that better.
    return str(exc).split(" (encountered processing", 1)[0]

