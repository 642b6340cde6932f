"""The etcd store's settings (--store etcd://..., --etcd-prefix, --etcd-cafile/certfile/keyfile).

Kept apart from the client so that naming them costs no import of the HTTP client.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DEFAULT_PREFIX = "/gatekeeper/"  # --etcd-prefix; kube-apiserver's own objects stay under /registry/


class EtcdFlags(Protocol):
    """--etcd-prefix, --etcd-cafile, --etcd-certfile, --etcd-keyfile: serve's Settings and the
    offline commands' parsed arguments both carry them under these names."""

    @property
    def etcd_prefix(self) -> str: ...
    @property
    def etcd_cafile(self) -> Path | None: ...
    @property
    def etcd_certfile(self) -> Path | None: ...
    @property
    def etcd_keyfile(self) -> Path | None: ...


@dataclass(frozen=True, slots=True)
class EtcdOptions:
    endpoints: tuple[tuple[str, int], ...]
    prefix: str = DEFAULT_PREFIX
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    timeout: float = 5.0  # per HTTP request, and how long a call keeps trying other members

    @classmethod
    def from_flags(cls, flags: EtcdFlags) -> EtcdOptions:
        """The etcd flags; the endpoints come from --store etcd://..."""
        return cls(
            endpoints=(),
            prefix=flags.etcd_prefix,
            cafile=flags.etcd_cafile,
            certfile=flags.etcd_certfile,
            keyfile=flags.etcd_keyfile,
        )

    @property
    def scheme(self) -> str:
        return "https" if self.cafile or self.certfile else "http"

    def describe(self) -> str:
        return ",".join(f"{host}:{port}" for host, port in self.endpoints)
