"""Where gatekeeper keeps things when no flag says: one data directory, and the packaged examples.

The data directory holds the dev PKI (certs/) and the SQLite state (gatekeeper.db). It is
--data-dir, else $GATEKEEPER_DATA_DIR, else $XDG_DATA_HOME/gatekeeper, else
~/.local/share/gatekeeper: a per-user place, so `gatekeeper serve` behaves the same from any
folder. The example policy and credentials ship inside the package (gatekeeper/defaults/).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DATA_DIR_ENV = "GATEKEEPER_DATA_DIR"
STORE_FILE = "gatekeeper.db"
CERTS = "certs"


def default_data_dir() -> Path:
    given = os.environ.get(DATA_DIR_ENV)
    if given:
        return Path(given)
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return base / "gatekeeper"


def packaged(name: str) -> Path:
    """A file of gatekeeper/defaults/ (the example policy, credentials, manifests), on disk."""
    return Path(str(resources.files("gatekeeper") / "defaults" / name))


def default_policy() -> Path:
    return packaged("abac.jsonl")


def store_url(data_dir: Path) -> str:
    """The SQLite store inside a data directory, as a --store URL (absolute: sqlite:////...)."""
    return f"sqlite:///{data_dir.absolute() / STORE_FILE}"


def cert_dir(data_dir: Path) -> Path:
    return data_dir / CERTS


def default_cert_dir() -> Path:
    """serve's --cert-dir when neither it nor --data-dir is given (certs init, webhook-config)."""
    return cert_dir(default_data_dir())
