"""Password hashes for the basic-auth file's password column, made and checked with `cryptography`.

A password column that starts with one of these prefixes is a hash; anything else is a plaintext
password (kube-apiserver's format, kept for compatibility). Hashes contain commas, so the column
is quoted in the CSV file: `"$scrypt$ln=15,r=8,p=3$...",alice,uid`.

    $scrypt$ln=15,r=8,p=3$<salt>$<hash>            scrypt, N = 2**ln (the default of hash-password)
    $argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>   Argon2id, the PHC string format
    $pbkdf2-sha256$i=600000$<salt>$<hash>          PBKDF2-HMAC-SHA256 (verify only)

<salt> and <hash> are standard base64 without padding (as in the PHC string format). Every
comparison is constant-time, hmac.compare_digest of the derived key with the stored one (for
Argon2id too: derived here, not left to a library's verify); plaintext passwords are compared as
SHA-256 digests, so neither the content nor the length of the stored password leaks. A hash
whose parameters the KDF would refuse is refused when the file loads, never when a caller asks.
Nothing here ever puts a password or a hash into an exception message.

`dummy_for` gives a file its reference hash: random salt and key under the parameters most of
its hashes use, checked for every attempt that has no hash of its own to check (an unknown user,
a plaintext row), so each attempt costs one hash of the same parameters whatever the row.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from gatekeeper.errors import InvalidFile

Algorithm = Literal["scrypt", "argon2id"]
ALGORITHMS: tuple[Algorithm, ...] = ("scrypt", "argon2id")
PREFIXES = ("$scrypt$", "$argon2id$", "$pbkdf2-sha256$")

# scrypt: N=2**15, r=8, p=3 is one of OWASP's equivalent settings (32 MiB, ~0.2 s on one core).
SCRYPT_LN, SCRYPT_R, SCRYPT_P = 15, 8, 3
# Argon2id: OWASP's first recommendation (19 MiB, 2 iterations, 1 lane).
ARGON2_M, ARGON2_T, ARGON2_P = 19456, 2, 1
SALT_BYTES = 16
KEY_BYTES = 32

# Refuse parameters that would make a single check take minutes or gigabytes (a hostile file).
MAX_SCRYPT_LN, MAX_SCRYPT_RP = 22, 64
MAX_SCRYPT_BYTES = 1 << 30  # scrypt's memory, 128 * r * N: 1 GiB
MAX_PBKDF2_ITERATIONS = 10_000_000

_SCRYPT = re.compile(r"^\$scrypt\$ln=(\d{1,2}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")
_ARGON2 = re.compile(
    r"^\$argon2id\$v=19\$m=(\d{1,8}),t=(\d{1,4}),p=(\d{1,3})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$"
)
_PBKDF2 = re.compile(r"^\$pbkdf2-sha256\$i=(\d{1,9})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")


_QUOTE_HINT = ' (a hash has commas: quote the column in the CSV file, "$scrypt$...",user,uid)'


class PasswordFormatError(InvalidFile):
    """A password column that claims to be a hash but is not a valid one (message has no secret)."""


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def is_hashed(column: str) -> bool:
    """True if a password column holds a hash (by prefix), false for a plaintext password."""
    return column.startswith(PREFIXES)


@dataclass(frozen=True, slots=True)
class StoredPassword:
    """One parsed password column; `verify` is constant-time for the stored value."""

    scheme: Literal["plain", "scrypt", "argon2id", "pbkdf2-sha256"]
    encoded: str  # the column as written (a hash, or the plaintext password)
    _digest: bytes = b""  # plain: sha256 of the password

    @property
    def is_slow(self) -> bool:
        """A hash check costs real CPU time (run it off the event loop)."""
        return self.scheme != "plain"

    @property
    def parameters(self) -> str:
        """The hash's scheme and cost parameters with the key length ("" for plaintext): two
        hashes with the same parameters cost the same to check."""
        if not self.is_slow:
            return ""
        head, _salt, key = self.encoded.rsplit("$", 2)
        return f"{head}$keylen={len(b64decode(key))}"

    def verify(self, password: str) -> bool:
        given = password.encode("utf-8")
        if self.scheme == "plain":
            return hmac.compare_digest(hashlib.sha256(given).digest(), self._digest)
        if self.scheme == "argon2id":
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

            m = _ARGON2.match(self.encoded)
            assert m is not None  # checked by parse_password
            expected = b64decode(m[5])
            argon = Argon2id(salt=b64decode(m[4]), length=len(expected), iterations=int(m[2]),
                             lanes=int(m[3]), memory_cost=int(m[1]))
            return hmac.compare_digest(argon.derive(given), expected)
        if self.scheme == "scrypt":
            m = _SCRYPT.match(self.encoded)
            assert m is not None  # checked by parse_password
            ln, r, p = int(m[1]), int(m[2]), int(m[3])
            expected = b64decode(m[5])
            derived = Scrypt(salt=b64decode(m[4]), length=len(expected), n=2**ln, r=r, p=p).derive(given)
            return hmac.compare_digest(derived, expected)
        m = _PBKDF2.match(self.encoded)
        assert m is not None
        expected = b64decode(m[3])
        kdf = PBKDF2HMAC(hashes.SHA256(), length=len(expected), salt=b64decode(m[2]), iterations=int(m[1]))
        return hmac.compare_digest(kdf.derive(given), expected)


def parse_password(column: str) -> StoredPassword:
    """Parse a password column; raises PasswordFormatError for a malformed hash."""
    if not is_hashed(column):
        return StoredPassword("plain", column, hashlib.sha256(column.encode("utf-8")).digest())
    if column.startswith("$scrypt$"):
        m = _SCRYPT.match(column)
        if not m:
            raise PasswordFormatError(
                "malformed scrypt hash: expected $scrypt$ln=N,r=N,p=N$salt$hash" + _QUOTE_HINT
            )
        ln, r, p = int(m[1]), int(m[2]), int(m[3])
        if not (1 <= ln <= MAX_SCRYPT_LN and 1 <= r <= MAX_SCRYPT_RP and 1 <= p <= MAX_SCRYPT_RP):
            raise PasswordFormatError(f"scrypt parameters out of range (ln 1..{MAX_SCRYPT_LN}, r, p 1..64)")
        if 128 * r << ln > MAX_SCRYPT_BYTES:
            raise PasswordFormatError("scrypt memory cost (128 * r * 2**ln bytes) above 1 GiB")
        _check_b64(m[4], m[5])
        return StoredPassword("scrypt", column)
    if column.startswith("$argon2id$"):
        m = _ARGON2.match(column)
        if not m:
            raise PasswordFormatError(
                "malformed argon2id hash: expected $argon2id$v=19$m=N,t=N,p=N$salt$hash" + _QUOTE_HINT
            )
        memory, iterations, lanes = int(m[1]), int(m[2]), int(m[3])
        if memory > 4 * 1024 * 1024:
            raise PasswordFormatError("argon2id memory cost above 4 GiB")
        if not (iterations >= 1 and lanes >= 1 and memory >= 8 * lanes):
            raise PasswordFormatError("argon2id parameters out of range (t >= 1, p >= 1, m >= 8 * p)")
        _check_b64(m[4], m[5])
        if len(b64decode(m[4])) < 8 or len(b64decode(m[5])) < 4:
            raise PasswordFormatError("argon2id salt shorter than 8 bytes or hash shorter than 4")
        return StoredPassword("argon2id", column)
    m = _PBKDF2.match(column)
    if not m:
        raise PasswordFormatError("malformed pbkdf2-sha256 hash: expected $pbkdf2-sha256$i=N$salt$hash")
    if not 1 <= int(m[1]) <= MAX_PBKDF2_ITERATIONS:
        raise PasswordFormatError("pbkdf2-sha256 iteration count out of range")
    _check_b64(m[2], m[3])
    return StoredPassword("pbkdf2-sha256", column)


def _check_b64(*parts: str) -> None:
    for part in parts:
        try:
            b64decode(part)
        except ValueError:
            raise PasswordFormatError("malformed hash: salt or hash is not base64") from None


def hash_password(password: str, algorithm: Algorithm = "scrypt") -> str:
    """A new hash of `password` with a random salt, for the basic-auth file's password column."""
    salt = os.urandom(SALT_BYTES)
    given = password.encode("utf-8")
    if algorithm == "scrypt":
        key = Scrypt(salt=salt, length=KEY_BYTES, n=2**SCRYPT_LN, r=SCRYPT_R, p=SCRYPT_P).derive(given)
        return f"$scrypt$ln={SCRYPT_LN},r={SCRYPT_R},p={SCRYPT_P}${b64encode(salt)}${b64encode(key)}"
    if algorithm == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        kdf = Argon2id(salt=salt, length=KEY_BYTES, iterations=ARGON2_T, lanes=ARGON2_P, memory_cost=ARGON2_M)
        return kdf.derive_phc_encoded(given)
    raise ValueError(f"unknown password hash algorithm {algorithm!r}; expected {' or '.join(ALGORITHMS)}")


_PLAIN_DUMMY = StoredPassword("plain", "", hashlib.sha256(os.urandom(32)).digest())


def dummy_like(stored: StoredPassword) -> StoredPassword:
    """A hash no password matches (random salt and key) that costs what checking `stored` costs."""
    if not stored.is_slow:
        return _PLAIN_DUMMY
    head, salt, key = stored.encoded.rsplit("$", 2)
    salt_bytes, key_bytes = len(b64decode(salt)), len(b64decode(key))
    return parse_password(f"{head}${b64encode(os.urandom(salt_bytes))}${b64encode(os.urandom(key_bytes))}")


def dummy_for(stored: Iterable[StoredPassword]) -> StoredPassword:
    """The reference hash of a file: like its most common hash parameters (a tie goes to the
    costlier), or a plaintext dummy when the file has no hashes."""
    slow = [s for s in stored if s.is_slow]
    if not slow:
        return _PLAIN_DUMMY
    counts = Counter(s.parameters for s in slow)
    first = {s.parameters: s for s in reversed(slow)}
    best = max(counts, key=lambda params: (counts[params], work(first[params])))
    return dummy_like(first[best])


def work(stored: StoredPassword) -> int:
    """Roughly the bytes of memory a check of `stored` touches: only to break ties between
    parameter sets that are equally common."""
    if stored.scheme == "scrypt":
        m = _SCRYPT.match(stored.encoded)
        assert m is not None
        return 256 * (1 << int(m[1])) * int(m[2]) * int(m[3])
    if stored.scheme == "argon2id":
        m = _ARGON2.match(stored.encoded)
        assert m is not None
        return 2048 * int(m[1]) * int(m[2])
    if stored.scheme == "pbkdf2-sha256":
        m = _PBKDF2.match(stored.encoded)
        assert m is not None
        return 128 * int(m[1])
    return 0
