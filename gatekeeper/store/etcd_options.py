"""The etcd store's settings (--store etcd://..., --etcd-prefix, --etcd-cafile/certfile/keyfile).

Kept apart from the client so that naming them costs no import of the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class EtcdOptions:
    endpoints: tuple[tuple[str, int], ...]
    prefix: str = "/gatekeeper/"
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    timeout: float = 5.0  # per HTTP request, and how long a call keeps trying other members

    @property
    def scheme(self) -> str:
        return "https" if self.cafile or self.certfile else "http"

    def describe(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.endpoints)
