"""What the admission endpoints need, built once at start-up: the store, the manifests, the chain."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.registry import PluginOptions
from gatekeeper.admission.state import ReportsAvailability, Store, StoreError
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.factory import open_store
from gatekeeper.backends.kube.reflector import KindStatus
from gatekeeper.backends.manifests import ManifestError, ManifestSync
from gatekeeper.backends.memory import MemoryStore
from gatekeeper.backends.sqlite.store import SQLiteStore
from gatekeeper.config import Settings
from gatekeeper.errors import InvalidFile
from gatekeeper.server.reload import Watched


@runtime_checkable
class WatchesState(Protocol):
    """A store that follows the API server's watches (store/kube): what /readyz and /metrics show."""

    def watches(self) -> dict[str, KindStatus]: ...

    def disconnected(self) -> str | None: ...


class AdmissionSetupError(InvalidFile):
    """The store cannot be opened or the state manifests cannot be loaded at start-up."""


class WatchedManifests(Watched[int]):
    """The state manifests; the watched files are listed again on every reload, so a file added to
    a watched folder is itself watched from then on. A load the store could not take (etcd
    unreachable) is tried again on every poll, so gatekeeper can start before etcd and catch up."""

    def __init__(self, sync: ManifestSync) -> None:
        self._sync = sync
        self._store_failed = False
        try:
            super().__init__("state manifests", sync.watch_paths(), self._load_into_store)
        except StoreError as exc:  # a bad manifest (ManifestError) still fails start-up
            self.current, self.loaded_at, self.reloads = 0, time.time(), 0
            self.failures, self.error = 1, str(exc)

    def changed(self) -> bool:
        return self._store_failed or super().changed()

    def _load_into_store(self) -> int:
        self._store_failed = False
        try:
            return self._sync.load()
        except StoreError:
            self._store_failed = True
            raise

    def reload(self) -> bool:
        with contextlib.suppress(ManifestError):  # a vanished path: the load below reports it
            self.paths = tuple(self._sync.watch_paths())
        return super().reload()


@dataclass
class AdmissionState:
    store: Store
    chain: Chain
    manifests: Watched[int] | None  # the number of objects the manifests hold, reloaded on change
    # Decided once: an isinstance check against a runtime Protocol costs microseconds per request.
    runs_inline: bool = field(init=False)
    _availability: Callable[[], str | None] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A local store answers in microseconds, so the chain runs on the event loop: a hop to a
        # thread costs more than the work, and dozens of threads contending for the GIL while one
        # of them holds SQLite's write lock make every request wait. A networked store runs in a
        # thread.
        self.runs_inline = isinstance(self.store, MemoryStore | SQLiteStore)
        store = self.store
        self._availability = store.unavailable if isinstance(store, ReportsAvailability) else None

    @property
    def watched(self) -> list[Watched[Any]]:
        return [self.manifests] if self.manifests else []

    def request_store(self) -> Store:
        """The store as one request should read it: a SQLite store through a snapshot, so that the
        request's reads cost one query; the others (memory, etcd's watched copy) read memory anyway."""
        return self.store.snapshot() if isinstance(self.store, SQLiteStore) else self.store

    def unavailable(self) -> str | None:
        """Why admission cannot use its store now (etcd unreachable), or None."""
        return self._availability() if self._availability is not None else None

    def watches(self) -> WatchesState | None:
        """The live cluster's watches (kind -> status) and any gap in them; None standalone."""
        store = self.store
        return store if isinstance(store, WatchesState) else None


def build_admission(settings: Settings) -> AdmissionState:
    """UnknownPlugin, StoreURLError, ManifestError or AdmissionSetupError (all ValueError) on failure."""
    options = PluginOptions(service_account_token_volume=settings.service_account_token_volume)
    chain = build_chain(settings.enable_admission_plugins, options)
    try:
        store = _open(settings)
    except StoreError as exc:
        raise AdmissionSetupError(str(exc)) from None
    manifests: Watched[int] | None = None
    if settings.state:
        sync = ManifestSync(store, settings.state)
        try:
            manifests = WatchedManifests(sync)
        except StoreError as exc:
            raise AdmissionSetupError(str(exc)) from None
    return AdmissionState(store, chain, manifests)


def _open(settings: Settings) -> Store:
    """The live cluster's objects (--kubeconfig), or the standalone store (--store)."""
    if settings.kubeconfig is None:
        if settings.quota_controller:
            raise AdmissionSetupError(
                "--quota-controller recounts a live cluster's quotas: it needs --kubeconfig "
                "(standalone, `gatekeeper quota reconcile` recounts)"
            )
        return open_store(settings.store, EtcdOptions.from_flags(settings))
    from gatekeeper.backends.kube.store import KubeStore

    if settings.quota_controller and settings.workers > 1:
        raise AdmissionSetupError(
            "--quota-controller runs one recount loop per process: use --workers 1 for the replica "
            "that runs it (one quota controller per cluster)"
        )
    period = settings.quota_sync_period if settings.quota_controller else None
    return KubeStore(settings.kubeconfig, quota_controller=period)

