"""What the admission endpoints need, built once at start-up: the store, the manifests, the chain."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.registry import PluginOptions
from gatekeeper.config import Settings
from gatekeeper.server.reload import Watched
from gatekeeper.store.base import Store, StoreError
from gatekeeper.store.factory import open_store
from gatekeeper.store.manifests import ManifestError, ManifestSync


class AdmissionSetupError(ValueError):
    """The store cannot be opened or the state manifests cannot be loaded at start-up."""


class WatchedManifests(Watched[int]):
    """The state manifests; the watched files are listed again on every reload, so a file added to
    a watched folder is itself watched from then on."""

    def __init__(self, sync: ManifestSync) -> None:
        self._sync = sync
        super().__init__("state manifests", sync.watch_paths(), sync.load)

    def reload(self) -> bool:
        with contextlib.suppress(ManifestError):  # a vanished path: the load below reports it
            self.paths = tuple(self._sync.watch_paths())
        return super().reload()


@dataclass
class AdmissionState:
    store: Store
    chain: Chain
    manifests: Watched[int] | None  # the number of objects the manifests hold, reloaded on change

    @property
    def watched(self) -> list[Watched[Any]]:
        return [self.manifests] if self.manifests else []


def build_admission(settings: Settings) -> AdmissionState:
    """UnknownPlugin, StoreURLError, ManifestError or AdmissionSetupError (all ValueError) on failure."""
    options = PluginOptions(service_account_token_volume=settings.service_account_token_volume)
    chain = build_chain(settings.enable_admission_plugins, options)
    try:
        store = open_store(settings.store)
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
