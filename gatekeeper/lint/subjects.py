"""The users and groups that the given credential sources can produce, for unknown-subject checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from gatekeeper.authn.csvfile import CredentialFileError, read_rows


@dataclass
class KnownSubjects:
    users: set[str] = field(default_factory=set)
    groups: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)

    def knows_user(self, name: str) -> bool:
        # system: users (service accounts, nodes, components) come from other authenticators.
        return name in self.users or name.startswith("system:")

    def knows_group(self, name: str) -> bool:
        return name in self.groups or name.startswith("system:")

    def describe(self) -> str:
        return ", ".join(self.sources)


def from_csv(known: KnownSubjects, path: Path, kind: str, secret_name: str) -> None:
    """Add a token or basic-auth file's users and groups; a broken file adds nothing (it is linted)."""
    try:
        rows = list(read_rows(path, kind, secret_name))
    except (CredentialFileError, OSError):
        return
    for row in rows:
        known.users.add(row.user.name)
        known.groups.update(g for g in row.user.groups if g)
    known.sources.append(str(path))


def certificate_files(paths: Sequence[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".crt", ".pem")))
        else:
            found.append(path)
    return found


def from_certificate(known: KnownSubjects, path: Path) -> str | None:
    """Add a client certificate's CN (user) and O values (groups); an error message if unreadable."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        return f"{path}: not a PEM certificate ({exc})"
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if names:
        known.users.add(str(names[0].value))
    known.groups.update(
        str(o.value) for o in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    )
    known.sources.append(str(path))
    return None
