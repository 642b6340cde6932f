"""--basic-auth-file and password hashes: plaintext compatibility, scrypt, argon2id, constant time."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gatekeeper.authn import passwords
from gatekeeper.authn.basicauth import load_basic_auth_file
from gatekeeper.authn.csvfile import CredentialFileError
from gatekeeper.authn.passwords import PasswordFormatError, hash_password, is_hashed, parse_password


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)


@pytest.mark.parametrize("algorithm", ["scrypt", "argon2id"])
def test_hash_round_trip(algorithm: passwords.Algorithm) -> None:
    encoded = hash_password("correct horse", algorithm)
    assert encoded.startswith(f"${algorithm}$")
    assert is_hashed(encoded)
    stored = parse_password(encoded)
    assert stored.is_slow
    assert stored.verify("correct horse")
    assert not stored.verify("correct horse ")
    assert not stored.verify("")


def test_scrypt_format_is_documented_shape() -> None:
    encoded = hash_password("pw", "scrypt")
    scheme, params, salt, digest = encoded.split("$")[1:]
    assert scheme == "scrypt" and params == "ln=10,r=8,p=3"
    assert len(passwords.b64decode(salt)) == 16 and len(passwords.b64decode(digest)) == 32


def test_two_hashes_of_one_password_differ() -> None:
    assert hash_password("pw") != hash_password("pw")


def test_pbkdf2_sha256_verifies() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    salt = b"0123456789abcdef"
    key = PBKDF2HMAC(hashes.SHA256(), length=32, salt=salt, iterations=1000).derive(b"pw")
    stored = parse_password(f"$pbkdf2-sha256$i=1000${passwords.b64encode(salt)}${passwords.b64encode(key)}")
    assert stored.verify("pw") and not stored.verify("pw2")


def test_plaintext_compares_whole_values() -> None:
    stored = parse_password("s3cret")
    assert not stored.is_slow
    assert stored.verify("s3cret")
    assert not stored.verify("s3cre")
    assert not stored.verify("s3cret!")


@pytest.mark.parametrize(
    "column",
    [
        "$scrypt$ln=99,r=8,p=1$c2FsdA$aGFzaA",
        "$scrypt$garbage",
        "$argon2id$v=19$m=1,t=1$c2FsdA$aGFzaA",
        "$pbkdf2-sha256$i=0$c2FsdA$aGFzaA",
        "$scrypt$ln=10,r=8,p=1$***$aGFzaA",
        "$scrypt$ln=22,r=64,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",  # 32 GiB
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaGhhc2g",  # a salt the KDF refuses
        "$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",  # m < 8 * p
        "$argon2id$v=19$m=64,t=0,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
    ],
)
def test_malformed_hashes_are_refused_without_echoing_them(column: str) -> None:
    with pytest.raises(PasswordFormatError) as info:
        parse_password(column)
    assert column not in str(info.value)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "basic.csv"
    path.write_text(text)
    return path


def test_file_plaintext_and_hashed_rows(tmp_path: Path) -> None:
    hashed = hash_password("hashed-pw")
    basic = load_basic_auth_file(write(tmp_path, f'plain-pw,alice,1,"dev,ops"\n"{hashed}",bob,2\n'))
    alice = basic.authenticate_password("alice", "plain-pw")
    assert alice is not None and alice.groups == ("dev", "ops")
    assert basic.authenticate_password("alice", "wrong") is None
    bob = basic.authenticate_password("bob", "hashed-pw")
    assert bob is not None and bob.uid == "2"
    assert basic.authenticate_password("bob", "hashed-pw2") is None
    assert basic.authenticate_password("nobody", "plain-pw") is None
    assert basic.has_hashes


def test_a_verified_hash_is_cached_but_a_wrong_password_is_not(tmp_path: Path) -> None:
    basic = load_basic_auth_file(write(tmp_path, f'"{hash_password("pw")}",bob,2\n'))
    assert not basic.is_cached("bob", "pw")
    assert basic.authenticate_password("bob", "pw") is not None
    assert basic.is_cached("bob", "pw")
    assert basic.authenticate_password("bob", "nope") is None
    assert not basic.is_cached("bob", "nope")
    assert all(b"pw" not in key for key in basic._verified)


def test_rows_are_keyed_by_user_and_the_last_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        basic = load_basic_auth_file(write(tmp_path, "first-pw,alice,1\nsecond-pw,alice,2\n"))
    assert basic.authenticate_password("alice", "first-pw") is None
    user = basic.authenticate_password("alice", "second-pw")
    assert user is not None and user.uid == "2"
    assert "duplicate user" in caplog.text
    assert "first-pw" not in caplog.text and "second-pw" not in caplog.text


def test_an_empty_password_row_is_skipped(tmp_path: Path) -> None:
    basic = load_basic_auth_file(write(tmp_path, ",alice,1\n"))
    assert basic.authenticate_password("alice", "") is None
    assert len(basic) == 0


def test_short_rows_and_bad_hashes_refuse_the_file_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match=r"basic.csv:2: must have at least 3 columns"):
        load_basic_auth_file(write(tmp_path, "pw,alice,1\nonly-secret,bob\n"))
    with pytest.raises(CredentialFileError, match=r"basic.csv:1: malformed scrypt hash") as info:
        load_basic_auth_file(write(tmp_path, "$scrypt$oops-secret,alice,1\n"))
    assert "oops-secret" not in str(info.value)


def test_an_unquoted_hash_is_split_by_its_commas_and_the_error_says_to_quote_it(tmp_path: Path) -> None:
    with pytest.raises(CredentialFileError, match="quote"):
        load_basic_auth_file(write(tmp_path, f"{hash_password('pw')},bob,2\n"))
