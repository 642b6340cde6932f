"""kube-apiserver's credential CSV files (--token-auth-file, --basic-auth-file), read as Go's csv does.

Rows are `secret,user,uid[,"group1,group2"]`: blank lines are skipped, quoted fields may hold
commas, columns past the fourth are ignored, groups are split on "," exactly (no trimming), and
a row with fewer than three columns refuses the whole file. Error messages name the file and
line, never the content of a row: the first column is a secret.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.authn.user import UserInfo
from gatekeeper.errors import InvalidFile


class CredentialFileError(InvalidFile):
    """A credential file that cannot be used; the message names the line, never a secret."""


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # 1-based line where the row starts
    record: int  # 1-based number among the rows read (kube-apiserver's "record number")
    secret: str
    user: UserInfo


def read_rows(path: Path, kind: str, secret_name: str) -> Iterator[Row]:
    """Yield each row of a credential file; `kind` and `secret_name` only word the errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CredentialFileError(f"{kind} {path}: not UTF-8 text") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(text.splitlines(keepends=True), strict=True)
    record = 0
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error:
            # csv's own message may quote the row; say where instead.
            raise CredentialFileError(f"{kind} {path}:{line}: malformed CSV (check the quoting)") from None
        if not fields:
            continue  # a blank line
        if len(fields) < 3:
            raise CredentialFileError(
                f"{kind} {path}:{line}: must have at least 3 columns "
                f"({secret_name}, user name, user uid), found {len(fields)}"
            )
        record += 1
        groups = tuple(fields[3].split(",")) if len(fields) >= 4 else ()
        yield Row(line, record, fields[0], UserInfo(name=fields[1], uid=fields[2], groups=groups))
