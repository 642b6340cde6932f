"""HTTP basic auth from kube-apiserver's --basic-auth-file (`password,user,uid[,"groups"]`).

Rows are keyed by user name (a later row for the same user replaces an earlier one, as
kube-apiserver does). The password column is either a plaintext password (compared in constant
time) or a hash made by `gatekeeper hash-password` (see gatekeeper/authn/passwords.py).

A hash check is deliberately slow, so a successful check is remembered for the life of this
loaded file: the key is an HMAC, under a random per-process key, of the user name and the
password, so the cache holds nothing that can be turned back into a password or used offline.
A wrong password is never cached, and an unknown user costs the same hash work as a known one
(so timing does not tell which user names exist).
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
from gatekeeper.authn.passwords import PasswordFormatError, StoredPassword, parse_password
from gatekeeper.authn.user import UserInfo

log = logging.getLogger("gatekeeper.authn")

_PROCESS_KEY = os.urandom(32)
CACHE_SIZE = 4096
# An unknown user is checked against this, so it costs what a known user's check costs.
_DUMMY_PLAIN = parse_password("")


@dataclass(frozen=True, slots=True)
class Entry:
    password: StoredPassword
    user: UserInfo


@dataclass(slots=True)
class BasicAuthFile:
    path: Path
    entries: Mapping[str, Entry]  # user name -> entry
    _dummy: StoredPassword = _DUMMY_PLAIN
    _verified: OrderedDict[bytes, None] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        slow = next((e.password for e in self.entries.values() if e.password.is_slow), None)
        if slow is not None:
            self._dummy = slow

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def has_hashes(self) -> bool:
        return self._dummy.is_slow

    def is_cached(self, username: str, password: str) -> bool:
        with self._lock:
            return self._cache_key(username, password) in self._verified

    def authenticate_password(self, username: str, password: str) -> UserInfo | None:
        """The user if the password is right, else None; may take a hash's time (call off the loop)."""
        entry = self.entries.get(username)
        if entry is None:
            self._dummy.verify(password)  # same work as for a real user; the result is ignored
            return None
        if not entry.password.is_slow:
            return entry.user if entry.password.verify(password) else None
        key = self._cache_key(username, password)
        with self._lock:
            if key in self._verified:
                self._verified.move_to_end(key)
                return entry.user
        if not entry.password.verify(password):
            return None
        with self._lock:
            self._verified[key] = None
            while len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return entry.user

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
    return BasicAuthFile(path, entries)
