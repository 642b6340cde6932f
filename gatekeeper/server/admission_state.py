"""What the admission endpoints need, built once at start-up: the store, the manifests, the chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.registry import PluginOptions
from gatekeeper.admission.state import Store, StoreError
from gatekeeper.backends.etcd.options import EtcdOptions
from gatekeeper.backends.factory import open_cluster, open_store
from gatekeeper.backends.kube.reflector import KindStatus
from gatekeeper.backends.manifests import ManifestSync
from gatekeeper.config import Settings
from gatekeeper.errors import InvalidFile
from gatekeeper.server import metrics
from gatekeeper.server.reload import Retry, Watched


@runtime_checkable
class WatchesState(Protocol):
    """A store that follows the API server's watches (backends/kube): what /readyz and /metrics show."""

    def watches(self) -> dict[str, KindStatus]: ...

    def disconnected(self) -> str | None: ...


class AdmissionSetupError(InvalidFile):
    """The store cannot be opened or the state manifests cannot be loaded at start-up."""


def watch_manifests(sync: ManifestSync) -> Watched[int]:
    """The state manifests, as the number of objects they hold. The watched files are listed again
    on every reload, so a file added to a watched folder is itself watched from then on. A load the
    store could not take (etcd unreachable) is tried again on every poll, so gatekeeper can start
    before etcd and catch up; a bad manifest (ManifestError) still fails start-up."""
    return Watched("state manifests", sync.watch_paths, sync.load, Retry((StoreError,), 0))


@dataclass
class AdmissionState:
    store: Store
    chain: Chain
    manifests: Watched[int] | None  # the number of objects the manifests hold, reloaded on change

    def __post_init__(self) -> None:
        # Decided once, read on every request.
        self.runs_inline = not self.store.blocks
        self._watches = self.store if isinstance(self.store, WatchesState) else None

    @property
    def watched(self) -> list[Watched[Any]]:
        return [self.manifests] if self.manifests else []

    def request_store(self) -> Store:
        """The store as one request reads it (Store.snapshot): each object read once. StoreError
        when the store cannot answer."""
        return self.store.snapshot()

    def unavailable(self) -> str | None:
        """Why admission cannot use its store now (etcd unreachable), or None."""
        return self.store.unavailable()

    def watches(self) -> WatchesState | None:
        """The live cluster's watches (kind -> status) and any gap in them; None standalone."""
        return self._watches


def build_admission(settings: Settings) -> AdmissionState:
    """UnknownPlugin, StoreURLError, ManifestError or AdmissionSetupError (all ValueError) on failure."""
    options = PluginOptions(service_account_token_volume=settings.service_account_token_volume)
    chain = build_chain(settings.enable_admission_plugins, options)
    try:
        store = _open(settings)
    except StoreError as exc:
        raise AdmissionSetupError(str(exc)) from None
    store.quota_ledger.lock_wait = metrics.record_quota_lock_wait
    manifests = watch_manifests(ManifestSync(store, settings.state)) if settings.state else None
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
    if settings.quota_controller and settings.workers > 1:
        raise AdmissionSetupError(
            "--quota-controller runs one recount loop per process: use --workers 1 for the replica "
            "that runs it (one quota controller per cluster)"
        )
    period = settings.quota_sync_period if settings.quota_controller else None
    return open_cluster(settings.kubeconfig, quota_controller=period)

