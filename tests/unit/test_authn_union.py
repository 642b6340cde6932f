"""The union of methods: order, Authorization header parsing, anonymous, system:authenticated."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from gatekeeper import pki
from gatekeeper.authn.basicauth import load_basic_auth_file
from gatekeeper.authn.errors import AuthenticationError
from gatekeeper.authn.tokenfile import load_token_file
from gatekeeper.authn.union import (
    ANONYMOUS_USER,
    BasicCredentials,
    BearerCredentials,
    RequestAuthenticator,
    Unauthenticated,
    parse_authorization,
)
from gatekeeper.authn.user import AUTHENTICATED
from gatekeeper.authn.x509 import PeerCertificates, X509Authenticator
from tests.support.certs import bad_certs


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.make_ca()


@pytest.fixture
def authn(tmp_path: Path, ca: pki.Issued) -> RequestAuthenticator:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text('tok-alice,alice,1,"dev"\n')
    passwords = tmp_path / "basic.csv"
    passwords.write_text("pw-bob,bob,2,ops\n")
    return RequestAuthenticator(
        x509=X509Authenticator([ca.certificate]),
        tokens=load_token_file(tokens),
        basic=load_basic_auth_file(passwords),
    )


def peer(issued: pki.Issued) -> PeerCertificates:
    return PeerCertificates([issued.certificate.public_bytes(Encoding.PEM).decode()])


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("   ", None),
        ("Bearer abc", BearerCredentials("abc")),
        ("bearer abc", BearerCredentials("abc")),
        ("BEARER abc ", BearerCredentials("abc")),  # the header is trimmed, as Go's TrimSpace
        ("Basic " + base64.b64encode(b"u:p:q").decode(), BasicCredentials("u", "p:q")),
        ("basic " + base64.b64encode(b"u:").decode(), BasicCredentials("u", "")),
    ],
)
def test_parse_authorization(header: str | None, expected: object) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer  abc",  # an empty token, then "abc": k8s.io/apiserver's bearertoken refuses it too
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Digest abc",
        "abc",
        "Token abc",
    ],
)
def test_malformed_authorization_is_an_error(header: str) -> None:
    with pytest.raises(AuthenticationError):
        parse_authorization(header)


def test_token_user_gets_system_authenticated(authn: RequestAuthenticator) -> None:
    user = authn.authenticate(authorization="Bearer tok-alice")
    assert user.name == "alice" and user.groups == ("dev", AUTHENTICATED)


def test_basic_user_gets_system_authenticated(authn: RequestAuthenticator) -> None:
    user = authn.authenticate(authorization=basic("bob", "pw-bob"))
    assert user.name == "bob" and user.groups == ("ops", AUTHENTICATED)


def test_x509_comes_first(authn: RequestAuthenticator, ca: pki.Issued) -> None:
    user = authn.authenticate(peer(pki.issue_client(ca, "carol", ["g"])), "Bearer tok-alice")
    assert user.name == "carol" and user.groups == ("g", AUTHENTICATED)


def test_a_bad_certificate_does_not_stop_a_good_token(authn: RequestAuthenticator, ca: pki.Issued) -> None:
    user = authn.authenticate(peer(bad_certs(ca).wrong_ca), "Bearer tok-alice")
    assert user.name == "alice"


@pytest.mark.parametrize(
    "header", [None, "Bearer nope", basic("bob", "nope"), basic("nobody", "x"), "Bearer"]
)
def test_nobody_authenticated_is_unauthenticated(authn: RequestAuthenticator, header: str | None) -> None:
    with pytest.raises(Unauthenticated):
        authn.authenticate(authorization=header)


def test_reasons_never_contain_the_credentials(authn: RequestAuthenticator) -> None:
    for header in ["Bearer secret-tok-123", basic("bob", "secret-pw-456"), "Weird secret-789"]:
        with pytest.raises(Unauthenticated) as info:
            authn.authenticate(authorization=header)
        assert "secret" not in str(info.value)


def test_anonymous_only_when_nothing_was_presented(tmp_path: Path, ca: pki.Issued) -> None:
    tokens = tmp_path / "t.csv"
    tokens.write_text("tok,alice,1\n")
    anonymous = RequestAuthenticator(
        x509=X509Authenticator([ca.certificate]), tokens=load_token_file(tokens), anonymous=True
    )
    assert anonymous.authenticate() == ANONYMOUS_USER
    assert ANONYMOUS_USER.name == "system:anonymous" and ANONYMOUS_USER.groups == ("system:unauthenticated",)
    with pytest.raises(Unauthenticated):
        anonymous.authenticate(authorization="Bearer wrong")  # presented and rejected: no fallback
    with pytest.raises(Unauthenticated):
        anonymous.authenticate(peer(bad_certs(ca).expired))
    with pytest.raises(Unauthenticated):
        anonymous.authenticate(authorization="Garbage")


def test_methods_not_configured_do_not_authenticate() -> None:
    nothing = RequestAuthenticator()
    with pytest.raises(Unauthenticated, match="not enabled"):
        nothing.authenticate(authorization="Bearer x")
    with pytest.raises(Unauthenticated, match="not enabled"):
        nothing.authenticate(authorization=basic("a", "b"))


def test_challenges_name_the_schemes_in_force(authn: RequestAuthenticator) -> None:
    assert authn.challenges() == 'Bearer realm="gatekeeper", Basic realm="gatekeeper", charset="UTF-8"'
    assert RequestAuthenticator().challenges() == 'Bearer realm="gatekeeper"'


def test_may_block_only_for_uncached_hashed_basic_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gatekeeper.authn import passwords

    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    path = tmp_path / "b.csv"
    path.write_text(f'"{passwords.hash_password("pw")}",bob,1\n')
    authn = RequestAuthenticator(basic=load_basic_auth_file(path))
    assert not authn.may_block(None)
    assert not authn.may_block("Bearer x")
    assert authn.may_block(basic("bob", "pw"))
    assert authn.authenticate(authorization=basic("bob", "pw")).name == "bob"
    assert not authn.may_block(basic("bob", "pw"))


def test_a_verified_certificate_keeps_a_password_off_the_hash_pool(
    tmp_path: Path, ca: pki.Issued, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gatekeeper.authn import passwords

    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    path = tmp_path / "b.csv"
    path.write_text(f'"{passwords.hash_password("pw")}",bob,1\n')
    authn = RequestAuthenticator(x509=X509Authenticator([ca.certificate]), basic=load_basic_auth_file(path))
    good, bad = peer(pki.issue_client(ca, "carol")), peer(bad_certs(ca).wrong_ca)
    assert not authn.may_block(basic("bob", "wrong"), good)  # x509 answers first: no hash
    assert authn.authenticate(good, basic("bob", "wrong")).name == "carol"
    assert authn.may_block(basic("bob", "wrong"), bad)  # the password is what gets checked
