"""gatekeeper lint on token and basic-auth files: findings name lines and users, never secrets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatekeeper.authn.passwords import hash_password
from gatekeeper.cli import main

STRONG = "Zp9rK2mWq8Lx4Tn7Vb3Hc6Jd1Fg5Sa0e"
WEAK = "password123"


def _lint(capsys: Any, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["lint", "--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out), out


def test_token_file_findings(tmp_path: Path, capsys: Any) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{STRONG},alice,1\n,nobody,2\n{WEAK},bob,3\n{STRONG},carol,4\n")
    tokens.chmod(0o644)
    code, rows, out = _lint(capsys, str(tokens))
    found = sorted((r["line"], r["rule"]) for r in rows)
    assert found == [
        (1, "credentials-permissions"),
        (2, "token-empty"),
        (3, "token-weak"),
        (4, "token-duplicate"),
    ]
    assert code == 0  # all warnings
    assert STRONG not in out and WEAK not in out


def test_token_file_with_too_few_columns_is_an_error_naming_the_line(tmp_path: Path, capsys: Any) -> None:
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{STRONG},alice,1\n{STRONG}x,bob\n")
    tokens.chmod(0o600)
    code, rows, out = _lint(capsys, str(tokens))
    assert code == 1
    assert [(r["line"], r["rule"]) for r in rows] == [(2, "credentials-load-error")]
    assert STRONG not in out


def test_basic_auth_file_findings(tmp_path: Path, capsys: Any) -> None:
    basic = tmp_path / "basic_auth.csv"
    hashed = hash_password("correct horse battery staple")
    basic.write_text(f'"{hashed}",alice,1\nhunter2,bob,2\n"{hashed}",alice,3\n')
    basic.chmod(0o600)
    code, rows, out = _lint(capsys, str(basic))
    assert sorted((r["line"], r["rule"]) for r in rows) == [
        (2, "basic-plaintext-password"),
        (3, "basic-duplicate-user"),
    ]
    assert code == 0
    assert "hunter2" not in out and hashed not in out
    assert "gatekeeper hash-password" in out


def test_a_malformed_hash_is_an_error_that_does_not_echo_it(tmp_path: Path, capsys: Any) -> None:
    basic = tmp_path / "basic_auth.csv"
    broken = "$scrypt$ln=15,r=8,p=1$!!notbase64!!$AAAA"
    basic.write_text(f'"{broken}",alice,1\n')
    basic.chmod(0o600)
    code, rows, out = _lint(capsys, str(basic))
    assert code == 1
    assert [(r["line"], r["rule"]) for r in rows if r["rule"] == "basic-bad-hash"] == [(1, "basic-bad-hash")]
    assert "notbase64" not in out
