"""Static bearer tokens from kube-apiserver's --token-auth-file (`token,user,uid[,"groups"]`).

Tokens are indexed by their SHA-256 digest: a lookup hashes the presented token and does one
dict lookup on the digest, so the time taken does not depend on how much of a stored token the
presented one shares (no string comparison of secrets). The tokens themselves are not kept.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.authn.csvfile import read_rows
from gatekeeper.authn.user import UserInfo

log = logging.getLogger("gatekeeper.authn")


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True, slots=True)
class TokenFile:
    path: Path
    users: Mapping[bytes, UserInfo]  # sha256(token) -> user

    def __len__(self) -> int:
        return len(self.users)

    def authenticate_token(self, token: str) -> UserInfo | None:
        """The user a token belongs to, or None (an empty token is never valid)."""
        if not token:
            return None
        return self.users.get(token_digest(token))


def load_token_file(path: Path) -> TokenFile:
    """kube-apiserver's NewCSV: at least 3 columns per row, empty tokens skipped, last duplicate wins."""
    users: dict[bytes, UserInfo] = {}
    for row in read_rows(path, "token file", "token"):
        if row.secret == "":
            log.warning("token file %s:%d: empty token skipped", path, row.line)
            continue
        digest = token_digest(row.secret)
        if digest in users:
            log.warning("token file %s:%d: duplicate token, this row replaces the earlier", path, row.line)
        users[digest] = row.user
    return TokenFile(path, users)
