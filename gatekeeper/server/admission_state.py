"""What the admission endpoints need, built once at start-up: the store, the manifests, the chain."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatekeeper.admission.chain import Chain, build_chain
from gatekeeper.admission.registry import PluginOptions
from gatekeeper.config import Settings
from gatekeeper.server.reload import Watched
from gatekeeper.store.base import Store, StoreError
from gatekeeper.store.factory import open_store
from gatekeeper.store.manifests import ManifestSync


class AdmissionSetupError(ValueError):
    """The store cannot be opened or the state manifests cannot be loaded at start-up."""


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
            manifests = Watched("state manifests", sync.watch_paths(), sync.load)
        except StoreError as exc:
            raise AdmissionSetupError(str(exc)) from None
    return AdmissionState(store, chain, manifests)
