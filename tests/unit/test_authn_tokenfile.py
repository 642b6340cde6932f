"""--token-auth-file: kube-apiserver's CSV, exactly, and lookups by digest."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gatekeeper.authn.csvfile import CredentialFileError
from gatekeeper.authn.tokenfile import load_token_file, token_digest


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    return path


def test_rows_with_quoted_groups_blank_lines_and_extra_columns(tmp_path: Path) -> None:
    tokens = load_token_file(
        write(
            tmp_path,
            (
                'tok-a,alice,uid-a,"dev,ops"\n'
                "\n"
                "tok-b,bob,uid-b\n"
                "tok-c,carol,uid-c,viewers,ignored,also ignored\n"
            ),
        )
    )
    alice = tokens.authenticate_token("tok-a")
    assert alice is not None and (alice.name, alice.uid, alice.groups) == ("alice", "uid-a", ("dev", "ops"))
    bob = tokens.authenticate_token("tok-b")
    assert bob is not None and bob.groups == ()
    carol = tokens.authenticate_token("tok-c")
    assert carol is not None and carol.groups == ("viewers",)
    assert len(tokens) == 3


def test_groups_are_split_on_commas_exactly_as_kubernetes(tmp_path: Path) -> None:
    tokens = load_token_file(write(tmp_path, 'tok,alice,1,"a, b"\n'))
    user = tokens.authenticate_token("tok")
    assert user is not None and user.groups == ("a", " b")


def test_unknown_and_empty_tokens_are_nobody(tmp_path: Path) -> None:
    tokens = load_token_file(write(tmp_path, "tok,alice,1\n"))
    assert tokens.authenticate_token("tok2") is None
    assert tokens.authenticate_token("to") is None
    assert tokens.authenticate_token("") is None


def test_a_row_with_fewer_than_three_columns_refuses_the_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path, "tok-a,alice,1\n\nsecret-token-xyz,bob\n")
    with pytest.raises(CredentialFileError) as info:
        load_token_file(path)
    message = str(info.value)
    assert f"{path}:3:" in message
    assert "at least 3 columns" in message and "found 2" in message
    assert "secret-token-xyz" not in message


def test_an_empty_token_is_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tokens = load_token_file(write(tmp_path, ",alice,1\ntok,bob,2\n"))
    assert len(tokens) == 1
    assert "empty token" in caplog.text and ":1:" in caplog.text


def test_a_duplicate_token_the_last_row_wins(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        tokens = load_token_file(write(tmp_path, "dup-secret,alice,1\ndup-secret,bob,2\n"))
    user = tokens.authenticate_token("dup-secret")
    assert user is not None and user.name == "bob"
    assert "duplicate token" in caplog.text and ":2:" in caplog.text
    assert "dup-secret" not in caplog.text


def test_tokens_are_kept_only_as_digests(tmp_path: Path) -> None:
    tokens = load_token_file(write(tmp_path, "plain-secret-token,alice,1\n"))
    assert set(tokens.users) == {token_digest("plain-secret-token")}
    assert "plain-secret-token" not in repr(tokens)


def test_malformed_quoting_names_the_line_not_the_content(tmp_path: Path) -> None:
    path = write(tmp_path, 'tok,alice,1\n"unterminated-secret,bob,2\n')
    with pytest.raises(CredentialFileError) as info:
        load_token_file(path)
    assert f"{path}:2:" in str(info.value)
    assert "unterminated-secret" not in str(info.value)


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftok,alice,1\n".encode())
    assert load_token_file(path).authenticate_token("tok") is not None
