"""Open a store from a --store URL: memory://, sqlite:///relative/path, sqlite:////abs/path, or
etcd://HOST:PORT[,HOST:PORT...] (with EtcdOptions for the prefix and TLS)."""

from __future__ import annotations

from pathlib import Path

from gatekeeper.admission.state import Store
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.errors import InvalidInput

EXPECTED = (
    "expected memory:// or sqlite:///PATH (sqlite:////abs/path for an absolute path), "
    "or etcd://HOST:PORT[,HOST:PORT...]"
)


class StoreURLError(InvalidInput):
    """A --store value that names no store this build can open."""


def open_store(url: str, etcd: EtcdOptions | None = None) -> Store:
    """`etcd` carries the etcd flags (prefix, TLS); its endpoints come from the URL."""
    if url in ("memory://", "memory:"):
        return MemoryStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path or path.endswith("/"):
            raise StoreURLError(f"--store {url!r}: a file path is missing; {EXPECTED}")
        from gatekeeper.backends.sqlite.store import SQLiteStore

        return SQLiteStore(Path(path))
    if url.startswith("etcd://"):
        return _open_etcd(url, etcd)
    raise StoreURLError(f"--store {url!r}: {EXPECTED}")


def _open_etcd(url: str, options: EtcdOptions | None) -> Store:
    import dataclasses

    from gatekeeper.backends.etcd.store import EtcdStore, parse_endpoints

    try:
        endpoints = parse_endpoints(url[len("etcd://") :])
    except ValueError as exc:
        raise StoreURLError(f"--store {url!r}: {exc}; {EXPECTED}") from None
    given = options or EtcdOptions(endpoints=())
    return EtcdStore(dataclasses.replace(given, endpoints=endpoints))


def open_cluster(kubeconfig: str, quota_controller: float | None = None) -> Store:
    """A live cluster's objects (serve --kubeconfig): KubeConfigError or StoreError on failure.
    `quota_controller`: recount quotas from watches, fully every this many seconds."""
    from gatekeeper.backends.kube.store import KubeStore

    return KubeStore(kubeconfig, quota_controller=quota_controller)
