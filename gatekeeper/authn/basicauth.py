"""HTTP basic auth from kube-apiserver's --basic-auth-file (`password,user,uid[,"groups"]`).

Rows are keyed by user name (a later row for the same user replaces an earlier one, as
kube-apiserver does). The password column is either a plaintext password (compared in constant
time) or a hash made by `gatekeeper hash-password` (see gatekeeper/authn/passwords.py).

Every attempt costs the same, so timing does not tell which user names exist or which rows are
plaintext: in a file with hashes, an attempt checks exactly one hash of the file's reference
parameters (passwords.dummy_for, those most of its hashes use) — the user's own hash, or for an
unknown user or a plaintext row a dummy hash (a plaintext row is then also compared, in
constant time). A file without hashes costs a SHA-256 digest comparison per attempt, for known
and unknown users alike.

A hash check is deliberately slow, so a successful check is remembered for the life of this
loaded file: the key is an HMAC, under a random per-process key, of the user name and the
password, so the cache holds nothing that can be turned back into a password or used offline.
A wrong password is never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from gatekeeper.authn.csvfile import CredentialFileError, read_rows
from gatekeeper.authn.passwords import PasswordFormatError, StoredPassword, dummy_for, parse_password
from gatekeeper.authn.user import UserInfo

log = logging.getLogger("gatekeeper.authn")

_PROCESS_KEY = os.urandom(32)
CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class Entry:
    password: StoredPassword
    user: UserInfo


@dataclass(slots=True)
class BasicAuthFile:
    path: Path
    entries: Mapping[str, Entry]  # user name -> entry
    _dummy: StoredPassword = field(init=False)  # checked when the row has no hash of its own
    _verified: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._dummy = dummy_for(e.password for e in self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def has_hashes(self) -> bool:
        return self._dummy.is_slow

    @property
    def reference_parameters(self) -> str:
        """The hash parameters every attempt costs ("" for a file without hashes)."""
        return self._dummy.parameters

    def is_cached(self, username: str, password: str) -> bool:
        with self._lock:
            return self._cache_key(username, password) in self._verified

    def authenticate_password(self, username: str, password: str) -> UserInfo | None:
        """The user if the password is right, else None; may take a hash's time (call off the loop)."""
        entry = self.entries.get(username)
        if not self.has_hashes:  # plaintext only: one digest comparison, unknown users too
            matched = (self._dummy if entry is None else entry.password).verify(password)
            return entry.user if matched and entry is not None else None
        key = self._cache_key(username, password)
        if entry is not None and self._remembered(key):
            return entry.user
        if entry is None or not entry.password.is_slow:
            self._dummy.verify(password)  # the hash work a hashed row costs; never matches
        if entry is None or not entry.password.verify(password):
            return None
        self._remember(key)
        return entry.user

    def _remembered(self, key: bytes) -> bool:
        with self._lock:
            if key not in self._verified:
                return False
            self._verified.move_to_end(key)
            return True

    def _remember(self, key: bytes) -> None:
        with self._lock:
            self._verified[key] = None
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)

    @staticmethod
    def _cache_key(username: str, password: str) -> bytes:
        material = username.encode("utf-8") + b"\x00" + password.encode("utf-8")
        return hmac.new(_PROCESS_KEY, material, hashlib.sha256).digest()


def load_basic_auth_file(path: Path) -> BasicAuthFile:
    """kube-apiserver's passwordfile.NewCSV, plus hashed passwords."""
    entries: dict[str, Entry] = {}
    for row in read_rows(path, "basic-auth file", "password"):
        try:
            password = parse_password(row.secret)
        except PasswordFormatError as exc:
            raise CredentialFileError(f"basic-auth file {path}:{row.line}: {exc}") from None
        if row.secret == "":
            # kube-apiserver would accept an empty password here; gatekeeper never does.
            log.warning("basic-auth file %s:%d: empty password, row skipped", path, row.line)
            continue
        if row.user.name in entries:
            log.warning(
                "basic-auth file %s:%d: duplicate user %r, this row replaces the earlier one",
                path, row.line, row.user.name,
            )
        entries[row.user.name] = Entry(password, row.user)
    _warn_mixed_parameters(path, entries)
    return BasicAuthFile(path, entries)


def _warn_mixed_parameters(path: Path, entries: Mapping[str, Entry]) -> None:
    kinds = {e.password.parameters for e in entries.values() if e.password.is_slow}
    if len(kinds) > 1:
        log.warning(
            "basic-auth file %s: the hashes use %d different sets of parameters; an attempt on a user "
            "whose hash is not of the most common set takes a different time, which tells that the "
            "user exists (make those hashes again with `gatekeeper hash-password`)", path, len(kinds),
        )
