"""The one interface every admission plugin implements; the chain knows nothing else of them.

`admit` and `validate` may return warnings (strings shown to the client, as Kubernetes'
`warning.AddWarning` does); returning None means no warnings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol, runtime_checkable

from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store

Warnings = Sequence[str] | None


@runtime_checkable
class Plugin(Protocol):
    name: ClassVar[str]

    def handles(self, request: AdmissionRequest) -> bool:
        """Which operations and resources this plugin looks at; the chain skips the rest."""
        ...


@runtime_checkable
class MutatingPlugin(Plugin, Protocol):
    def admit(self, request: AdmissionRequest, obj: JSONObject, store: Store) -> Warnings:
        """Change `obj` (the chain's private copy of the object) in place, or raise AdmissionDenied.

        `obj` is `{}` when the request carries no object (DELETE, CONNECT); changes to it are ignored.
        """
        ...


@runtime_checkable
class ValidatingPlugin(Plugin, Protocol):
    def validate(self, request: AdmissionRequest, obj: JSONObject | None, store: Store) -> Warnings:
        """Raise AdmissionDenied to refuse; `obj` is the object after all mutation (also request.object)."""
        ...
