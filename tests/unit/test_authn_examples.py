"""The example credential files in policies/ load, and the documented dev-only credentials work."""

from __future__ import annotations

from pathlib import Path

from gatekeeper.authn.basicauth import load_basic_auth_file
from gatekeeper.authn.tokenfile import load_token_file

POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_example_token_file() -> None:
    tokens = load_token_file(POLICIES / "tokens.csv")
    alice = tokens.authenticate_token("devonly-alice-66d7ecc89b36a956fbf2d33e437fe7f1")
    assert alice is not None and alice.groups == ("dev", "viewers")
    kube = tokens.authenticate_token("devonly-kube-apiserver-fe804b5e6535926994a217810bdf0d10")
    assert kube is not None and kube.name == "kube-apiserver"


def test_example_basic_auth_file_hashed_and_plaintext_rows() -> None:
    basic = load_basic_auth_file(POLICIES / "basic_auth.csv")
    assert {e.password.scheme for e in basic.entries.values()} == {"scrypt", "argon2id", "plain"}
    alice = basic.authenticate_password("alice", "devonly-password-alice")
    assert alice is not None and alice.groups == ("dev", "viewers")
    assert basic.authenticate_password("bob", "devonly-password-bob") is not None
    assert basic.authenticate_password("ceposta", "devonly-plaintext-password-ceposta") is not None
    assert basic.authenticate_password("alice", "devonly-password-bob") is None


def test_every_example_credential_is_marked_dev_only() -> None:
    for row in (POLICIES / "tokens.csv").read_text().splitlines():
        assert row.startswith("devonly-")
    for row in (POLICIES / "basic_auth.csv").read_text().splitlines():
        assert "devonly-" in row
