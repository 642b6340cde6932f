"""The x509 authenticator on real certificates: kube-apiserver's mapping, and every way to fail."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper import pki
from gatekeeper.authn.errors import AuthenticationError
from gatekeeper.authn.x509 import CREDENTIAL_ID, UID_OID, PeerCertificates, X509Authenticator
from tests.support.certs import NOW, bad_certs, no_cn


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture(scope="module")
def authn(ca: pki.Issued) -> X509Authenticator:
    return X509Authenticator([ca.certificate])


def pem(issued: pki.Issued) -> str:
    return issued.certificate.public_bytes(Encoding.PEM).decode()


def test_user_is_the_cn_groups_every_o_uid_and_credential_id(
    ca: pki.Issued, authn: X509Authenticator
) -> None:
    client = pki.issue_client(ca, "alice", ["dev", "ops"], uid="1234-abcd")
    user = authn.authenticate(PeerCertificates([pem(client)]))
    assert user is not None
    assert user.name == "alice"
    assert user.groups == ("dev", "ops")
    assert user.uid == "1234-abcd"
    digest = hashlib.sha256(client.certificate.public_bytes(Encoding.DER)).hexdigest()
    assert user.extra == {CREDENTIAL_ID: (f"X509SHA256={digest}",)}


def test_without_uid_attribute_the_uid_is_empty(ca: pki.Issued, authn: X509Authenticator) -> None:
    user = authn.authenticate(PeerCertificates([pem(pki.issue_client(ca, "bob"))]))
    assert user is not None and user.uid == "" and user.groups == ()


def test_no_cn_is_not_authenticated_by_this_method_and_not_an_error(
    ca: pki.Issued, authn: X509Authenticator
) -> None:
    assert authn.authenticate(PeerCertificates([pem(no_cn(ca))])) is None


def test_no_certificate_is_nothing(authn: X509Authenticator) -> None:
    assert authn.authenticate(PeerCertificates([])) is None


@pytest.mark.parametrize("kind", ["wrong-ca", "expired", "not-yet-valid", "server-auth-only", "self-signed"])
def test_bad_certificates_are_refused(kind: str, ca: pki.Issued, authn: X509Authenticator) -> None:
    issued = dict(bad_certs(ca).items())[kind]
    with pytest.raises(AuthenticationError) as info:
        authn.authenticate(PeerCertificates([pem(issued)]))
    assert str(info.value).startswith("x509: verifying certificate ")
    assert "PRIVATE" not in str(info.value)


def test_two_uids_are_an_error(ca: pki.Issued, authn: X509Authenticator) -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "carol"),
            x509.NameAttribute(UID_OID, "a"),
            x509.NameAttribute(UID_OID, "b"),
        ]
    )
    issued = pki.issue(ca, name, ExtendedKeyUsageOID.CLIENT_AUTH)
    with pytest.raises(AuthenticationError, match="expected 1 UID"):
        authn.authenticate(PeerCertificates([pem(issued)]))


def test_the_last_cn_is_the_user_name_as_in_go(ca: pki.Issued, authn: X509Authenticator) -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.COMMON_NAME, "second"),
        ]
    )
    user = authn.authenticate(PeerCertificates([pem(pki.issue(ca, name, ExtendedKeyUsageOID.CLIENT_AUTH))]))
    assert user is not None and user.name == "second"


def test_outcome_is_cached_per_connection_until_expiry(ca: pki.Issued, authn: X509Authenticator) -> None:
    client = pki.issue_client(ca, "dave", not_after=NOW + dt.timedelta(hours=1))
    peer = PeerCertificates([pem(client)])
    first = authn.authenticate(peer)
    assert peer._cached is not None and peer._cached[0] is authn
    assert authn.authenticate(peer) is first  # the cached object, no second verification
    # after the certificate expires the cache does not vouch for it any more
    with pytest.raises(AuthenticationError):
        authn.authenticate(peer, now=NOW + dt.timedelta(hours=2))


def test_a_failure_is_cached_too_and_raised_again(ca: pki.Issued, authn: X509Authenticator) -> None:
    peer = PeerCertificates([pem(bad_certs(ca).wrong_ca)])
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            authn.authenticate(peer)


def test_another_authenticator_does_not_reuse_the_cache(ca: pki.Issued, authn: X509Authenticator) -> None:
    peer = PeerCertificates([pem(pki.issue_client(ca, "erin"))])
    assert authn.authenticate(peer) is not None
    other = X509Authenticator([pki.make_ca("other").certificate])
    with pytest.raises(AuthenticationError):
        other.authenticate(peer)


def test_a_bundle_file_with_several_cas(tmp_path: Path, ca: pki.Issued) -> None:
    other = pki.make_ca("other")
    bundle = tmp_path / "bundle.crt"
    bundle.write_text(pem(other) + pem(ca))
    authn = X509Authenticator.from_file(bundle)
    assert authn.authenticate(PeerCertificates([pem(pki.issue_client(other, "x"))])) is not None
    assert authn.authenticate(PeerCertificates([pem(pki.issue_client(ca, "y"))])) is not None


def test_a_file_without_certificates_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.crt"
    empty.write_text("not a certificate\n")
    with pytest.raises(ValueError, match=r"empty\.crt"):
        X509Authenticator.from_file(empty)


def test_a_leaf_issued_by_an_intermediate_verifies_with_the_chain(ca: pki.Issued) -> None:
    # An intermediate CA under the root (the root allows path length 0, so make a fresh root).
    root = pki.make_ca("root")
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root.certificate.subject)
        .issuer_name(root.certificate.subject)
        .public_key(root.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root.key.public_key()), critical=False)
        .sign(root.key, pki.hashes.SHA256())
    )
    root = pki.Issued(root_cert, root.key)
    inter_key = pki.new_key()
    inter_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(root_cert.subject)
        .public_key(inter_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(minutes=5))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(inter_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root.key.public_key()), critical=False
        )
        .sign(root.key, pki.hashes.SHA256())
    )
    intermediate = pki.Issued(inter_cert, inter_key)
    leaf = pki.issue_client(intermediate, "frank")
    authn = X509Authenticator([root_cert])
    with pytest.raises(AuthenticationError):
        authn.authenticate(PeerCertificates([pem(leaf)]))  # the leaf alone does not chain to the root
    user = authn.authenticate(PeerCertificates([pem(leaf), pem(intermediate)]))
    assert user is not None and user.name == "frank"
