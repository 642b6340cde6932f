"""Finding 6: a basic-auth attempt costs one hash of the file's parameters, whatever the row.

A file that mixed plaintext and hashed rows answered a plaintext user's wrong password in
microseconds and a hashed or unknown user's in a hash's time (8 ms against 330 ms over HTTP),
which told which user names exist and which rows are plaintext. Now an unknown user and a
plaintext row check a dummy hash of the parameters most of the file's hashes use.

The timing test calls the authenticator in process (no network noise), interleaves the three
kinds of attempt so that any slowdown of the machine hits them alike, and compares medians.
"""

from __future__ import annotations

import base64
import logging
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from gatekeeper.authn import passwords
from gatekeeper.authn.basicauth import BasicAuthFile, load_basic_auth_file
from gatekeeper.authn.passwords import dummy_for, dummy_like, hash_password, parse_password
from gatekeeper.authn.union import RequestAuthenticator

ROUNDS = 12


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def pbkdf2(password: str, iterations: int = 60_000) -> str:
    salt = b"0123456789abcdef"
    key = PBKDF2HMAC(hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(password.encode())
    return f"$pbkdf2-sha256$i={iterations}${passwords.b64encode(salt)}${passwords.b64encode(key)}"


HASHERS: dict[str, Callable[[str], str]] = {
    "scrypt": lambda pw: hash_password(pw, "scrypt"),
    "argon2id": lambda pw: hash_password(pw, "argon2id"),
    "pbkdf2-sha256": pbkdf2,
}


@pytest.fixture(autouse=True)
def cheaper_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "SCRYPT_LN", 12)  # ~20 ms: still a thousand times a digest


def load(tmp_path: Path, text: str) -> BasicAuthFile:
    path = tmp_path / "basic.csv"
    path.write_text(text)
    return load_basic_auth_file(path)


def mixed_file(tmp_path: Path, algorithm: str) -> BasicAuthFile:
    hashed = HASHERS[algorithm]
    return load(
        tmp_path,
        f'plain-pw-pat,pat,1\n"{hashed("pw-carol")}",carol,2\n"{hashed("pw-dave")}",dave,3\n',
    )


def medians(basic: BasicAuthFile, users: list[str]) -> dict[str, float]:
    samples: dict[str, list[float]] = {user: [] for user in users}
    for round_ in range(ROUNDS):
        for user in users:
            started = time.perf_counter()
            assert basic.authenticate_password(user, f"wrong-{round_}") is None
            samples[user].append(time.perf_counter() - started)
    return {user: statistics.median(times) for user, times in samples.items()}


@pytest.mark.parametrize("algorithm", list(HASHERS))
def test_plaintext_hashed_and_unknown_users_cost_the_same(tmp_path: Path, algorithm: str) -> None:
    basic = mixed_file(tmp_path, algorithm)
    one_hash = parse_password(HASHERS[algorithm]("x"))
    started = time.perf_counter()
    one_hash.verify("y")
    reference = time.perf_counter() - started

    found = medians(basic, ["pat", "carol", "nobody"])

    assert max(found.values()) < 3 * min(found.values()), found
    # Each is a hash's time, not a digest comparison's (microseconds).
    assert min(found.values()) > reference / 4, (found, reference)


def test_a_plaintext_row_in_a_file_with_hashes_goes_through_a_hash_and_is_then_remembered(
    tmp_path: Path,
) -> None:
    basic = mixed_file(tmp_path, "scrypt")
    authn = RequestAuthenticator(basic=basic)
    assert authn.may_block(basic_header("pat", "plain-pw-pat"))  # off the loop, on the hash pool
    assert authn.may_block(basic_header("pat", "wrong"))
    assert authn.may_block(basic_header("nobody", "wrong"))
    user = basic.authenticate_password("pat", "plain-pw-pat")
    assert user is not None and user.name == "pat"
    assert basic.is_cached("pat", "plain-pw-pat")
    assert not authn.may_block(basic_header("pat", "plain-pw-pat"))
    assert basic.authenticate_password("pat", "plain-pw-pa") is None
    assert not basic.is_cached("pat", "plain-pw-pa")


def test_a_plaintext_only_file_hashes_nothing_for_anyone(tmp_path: Path) -> None:
    basic = load(tmp_path, "pw-a,alice,1\npw-b,bob,2\n")
    authn = RequestAuthenticator(basic=basic)
    assert not basic.has_hashes
    assert basic.reference_parameters == ""
    for header in (basic_header("alice", "pw-a"), basic_header("alice", "x"), basic_header("nobody", "x")):
        assert not authn.may_block(header)
    user = basic.authenticate_password("alice", "pw-a")
    assert user is not None and user.name == "alice"
    assert basic.authenticate_password("nobody", "") is None
    assert basic.authenticate_password("nobody", "pw-a") is None


def parameters(encoded: str) -> str:
    return parse_password(encoded).parameters


def test_the_dummy_takes_the_parameters_most_hashes_use(tmp_path: Path) -> None:
    argon, argon2 = hash_password("a", "argon2id"), hash_password("c", "argon2id")
    scrypt = hash_password("b", "scrypt")
    basic = load(tmp_path, f'"{scrypt}",s,1\n"{argon}",a1,2\n"{argon2}",a2,3\nplain,p,4\n')
    assert basic.reference_parameters == parameters(argon) == "$argon2id$v=19$m=19456,t=2,p=1$keylen=32"

    strong = pbkdf2("d", 90_000)
    weak_twice = [pbkdf2("e", 30_000), pbkdf2("f", 30_000)]
    def reference(*encoded: str) -> str:
        return dummy_for(parse_password(h) for h in encoded).parameters

    assert reference(strong, *weak_twice) == parameters(weak_twice[0])
    assert reference(pbkdf2("g", 30_000), strong) == parameters(strong)  # a tie: the costlier
    assert dummy_for([parse_password("plain")]).parameters == ""


@pytest.mark.parametrize("algorithm", list(HASHERS))
def test_a_dummy_costs_what_its_model_costs_and_matches_no_password(algorithm: str) -> None:
    model = parse_password(HASHERS[algorithm]("pw"))
    dummies = [dummy_like(model) for _ in range(2)]
    assert all(d.parameters == model.parameters and d.scheme == model.scheme for d in dummies)
    assert dummies[0].encoded != dummies[1].encoded  # a fresh random salt and key each time
    assert not any(d.verify(pw) for d in dummies for pw in ("pw", "", "password"))


def test_hashes_of_several_parameter_sets_are_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        load(tmp_path, f'"{hash_password("a", "argon2id")}",a,1\n"{hash_password("b", "scrypt")}",b,2\n')
    assert "2 different sets of parameters" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load(tmp_path, f'"{hash_password("a")}",a,1\n"{hash_password("b")}",b,2\nplain,c,3\n')
    assert "parameters" not in caplog.text
