"""The one interface every admission plugin implements; the chain knows nothing else of them."""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.store.base import Store


@runtime_checkable
class Plugin(Protocol):
    name: ClassVar[str]

    def handles(self, request: AdmissionRequest) -> bool:
        """Which operations and resources this plugin looks at; the chain skips the rest."""
        ...


@runtime_checkable
class MutatingPlugin(Plugin, Protocol):
    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store) -> None:
        """Change `obj` (the chain's private copy of the object) in place, or raise AdmissionDenied."""
        ...


@runtime_checkable
class ValidatingPlugin(Plugin, Protocol):
    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> None:
        """Raise AdmissionDenied to refuse; `obj` is the object after all mutation."""
        ...
