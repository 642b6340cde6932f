"""The one interface every admission plugin implements; the chain knows nothing else of them.

Every plugin class is built the same way, `Class(options)`, from the PluginOptions the flags give
(a plugin that needs none ignores them). `admit` and `validate` may return warnings (strings
shown to the client, as Kubernetes' `warning.AddWarning` does); returning None means no warnings.

A plugin raises only domain errors: AdmissionDenied to refuse, StoreError (an Unavailable) when
the store cannot answer. Anything else it raises is a bug of the plugin: the chain lets it
through, so the server answers a logged 500 rather than a refusal that blames the object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, Protocol, runtime_checkable

from gatekeeper.admission.patch import Patch
from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store

Warnings = Sequence[str] | None

PROJECTED: Final = "projected"
SECRET: Final = "secret"
TOKEN_VOLUME_MODES = (PROJECTED, SECRET)


@dataclass(frozen=True, slots=True)
class PluginOptions:
    """Plugin settings that come from flags rather than from the cluster state."""

    service_account_token_volume: str = PROJECTED  # "projected" (current Kubernetes) or "secret"


DEFAULT_OPTIONS = PluginOptions()


@runtime_checkable
class Plugin(Protocol):
    name: ClassVar[str]

    def handles(self, request: AdmissionRequest) -> bool:
        """Which operations and resources this plugin looks at; the chain skips the rest."""
        ...


@runtime_checkable
class MutatingPlugin(Plugin, Protocol):
    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store, patch: Patch) -> Warnings:
        """Change `obj` (the chain's private copy of the object) in place, or raise AdmissionDenied.

        Every change goes through `patch` (Patch.set, put, append, extend), which makes it and
        records it: the recording is the JSONPatch kube-apiserver gets. `obj` is `{}` when the
        request carries no object (DELETE, CONNECT); changes to it are ignored.
        """
        ...


@runtime_checkable
class ValidatingPlugin(Plugin, Protocol):
    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        """Raise AdmissionDenied to refuse; `obj` is the object after all mutation (also request.object)."""
        ...


PluginFactory = Callable[[PluginOptions], Plugin]
"""How the registry builds a plugin: every plugin class takes the options (`Class(options)`)."""
