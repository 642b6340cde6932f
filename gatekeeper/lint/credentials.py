"""Lint rules for kube-apiserver credential files: --token-auth-file and --basic-auth-file.

No finding ever quotes a token or a password: they name lines and users only.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from gatekeeper.authn.csvfile import CredentialFileError, Row, read_rows
from gatekeeper.authn.passwords import PasswordFormatError, is_hashed, parse_password
from gatekeeper.lint.report import Finding, RuleInfo, Severity

E, W = Severity.ERROR, Severity.WARNING
LOAD_ERROR = RuleInfo("credentials-load-error", E, "kube-apiserver refuses this credential file")
PERMISSIONS = RuleInfo("credentials-permissions", W, "a credential file readable by group or others")
EMPTY_TOKEN = RuleInfo("token-empty", W, "an empty token: kube-apiserver skips the row")
DUPLICATE_TOKEN = RuleInfo("token-duplicate", W, "the same token on two rows: the last row wins")
WEAK_TOKEN = RuleInfo("token-weak", W, "a short or low-entropy token that can be guessed")
DUPLICATE_USER = RuleInfo("basic-duplicate-user", W, "the same user on two rows: the last row wins")
PLAINTEXT = RuleInfo("basic-plaintext-password", W, "a plaintext password; store a hash instead")
BAD_HASH = RuleInfo("basic-bad-hash", E, "a password column that looks like a hash but is not a valid one")
TOKEN_RULES = (LOAD_ERROR, PERMISSIONS, EMPTY_TOKEN, DUPLICATE_TOKEN, WEAK_TOKEN)
BASIC_RULES = (LOAD_ERROR, PERMISSIONS, DUPLICATE_USER, PLAINTEXT, BAD_HASH)

MIN_TOKEN_LENGTH = 32
MIN_TOKEN_BITS = 128
_LINE = re.compile(r":(\d+): ")


def lint_token_file(path: Path) -> list[Finding]:
    rows, findings = _rows(path, "token file", "token")
    first_line: dict[str, int] = {}
    for row in rows:
        if row.secret == "":
            findings.append(
                _at(
                    path,
                    row,
                    EMPTY_TOKEN,
                    "empty token: kube-apiserver skips this row",
                    "put a long random token in the first column",
                )
            )
            continue
        if row.secret in first_line:
            findings.append(
                _at(
                    path,
                    row,
                    DUPLICATE_TOKEN,
                    f"this row's token is also on line {first_line[row.secret]}; "
                    f"the earlier row for user {row.user.name!r} never authenticates",
                    "give every row its own token",
                )
            )
        first_line.setdefault(row.secret, row.line)
        if _weak(row.secret):
            findings.append(
                _at(
                    path,
                    row,
                    WEAK_TOKEN,
                    f"the token for user {row.user.name!r} is short or has little entropy "
                    f"(want {MIN_TOKEN_LENGTH}+ random characters)",
                    "generate one with: head -c 32 /dev/urandom | base64",
                )
            )
    return findings


def lint_basic_auth_file(path: Path) -> list[Finding]:
    rows, findings = _rows(path, "basic auth file", "password")
    lines_of = Counter(row.user.name for row in rows)
    seen: dict[str, int] = {}
    for row in rows:
        name = row.user.name
        if lines_of[name] > 1 and name in seen:
            findings.append(
                _at(
                    path,
                    row,
                    DUPLICATE_USER,
                    f"user {name!r} is also on line {seen[name]}; only the last row counts",
                    "keep one row per user",
                )
            )
        seen.setdefault(name, row.line)
        if not is_hashed(row.secret):
            findings.append(
                _at(
                    path,
                    row,
                    PLAINTEXT,
                    f"the password for user {name!r} is stored in plaintext",
                    "replace it with the output of `gatekeeper hash-password`",
                )
            )
            continue
        try:
            parse_password(row.secret)
        except PasswordFormatError as exc:
            findings.append(
                _at(
                    path,
                    row,
                    BAD_HASH,
                    f"user {name!r}: {exc}",
                    "make it again with `gatekeeper hash-password`",
                )
            )
    return findings


def _rows(path: Path, kind: str, secret_name: str) -> tuple[list[Row], list[Finding]]:
    findings = list(_permissions(path))
    try:
        return list(read_rows(path, kind, secret_name)), findings
    except CredentialFileError as exc:
        match = _LINE.search(str(exc))
        line = int(match.group(1)) if match else 1
        findings.append(Finding(str(path), line, 1, LOAD_ERROR, str(exc)))
    except OSError as exc:
        findings.append(Finding(str(path), 1, 1, LOAD_ERROR, f"cannot read {kind}: {exc.strerror}"))
    return [], findings


def _permissions(path: Path) -> Iterator[Finding]:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        yield Finding(
            str(path),
            1,
            1,
            PERMISSIONS,
            f"mode {stat.S_IMODE(mode):04o}: group or others may read the credentials",
            f"chmod 600 {path}",
        )


def _weak(token: str) -> bool:
    if len(token) < MIN_TOKEN_LENGTH:
        return True
    counts = Counter(token)
    entropy_per_char = -sum(c / len(token) * math.log2(c / len(token)) for c in counts.values())
    return entropy_per_char * len(token) < MIN_TOKEN_BITS


def _at(path: Path, row: Row, info: RuleInfo, message: str, hint: str) -> Finding:
    return Finding(str(path), row.line, 1, info, message, hint)
