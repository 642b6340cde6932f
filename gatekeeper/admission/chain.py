"""The admission chain: enabled plugins in order; mutate, validate, or both.

The chain knows plugins only through gatekeeper.admission.plugin's interface. Mutation works on
a deep copy of the object; each plugin records the JSONPatch operations of its changes as it
makes them (admission/patch.py), and the recording is the result: nothing diffs the whole pod.

Only a refusal (AdmissionDenied) stops a phase with an answer. StoreError (an Unavailable) and any
other exception pass through: the store failing is answered 503 by whoever meets it, and anything
else is a bug, answered as a logged 500. The chain only notes which plugin raised it.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence

from gatekeeper.admission import stream
from gatekeeper.admission.errors import AdmissionDenied
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.patch import Patch
from gatekeeper.admission.plugin import MutatingPlugin, Plugin, PluginOptions, ValidatingPlugin, Warnings
from gatekeeper.admission.registry import build_plugins
from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store


class Chain:
    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = tuple(plugins)
        self.mutating = tuple(p for p in self.plugins if isinstance(p, MutatingPlugin))
        self.validating = tuple(p for p in self.plugins if isinstance(p, ValidatingPlugin))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.plugins)

    def mutate(self, request: AdmissionRequest, store: Store) -> Outcome:
        """Run every handling mutating plugin; /mutate. Never changes the store."""
        warnings: list[str] = []
        obj: JSONObject = copy.deepcopy(request.object) if request.object is not None else {}
        patch = Patch()
        for plugin in self.mutating:
            try:
                if plugin.handles(request):
                    _collect(warnings, plugin.admit(request, obj, store, patch))
            except AdmissionDenied as denied:
                return _refused(denied, plugin, warnings, request)
            except Exception as exc:
                _blame(exc, plugin)
                raise
        if request.object is None:
            return Outcome(warnings=tuple(warnings), object=None)
        return Outcome(patch=patch.ops, warnings=tuple(warnings), object=obj)

    def validate(self, request: AdmissionRequest, store: Store) -> Outcome:
        """Run every handling validating plugin on request.object; /validate. Never patches."""
        warnings: list[str] = []
        for plugin in self.validating:
            try:
                if plugin.handles(request):
                    _collect(warnings, plugin.validate(request, request.object, store))
            except AdmissionDenied as denied:
                return _refused(denied, plugin, warnings, request)
            except Exception as exc:
                _blame(exc, plugin)
                raise
        return Outcome(warnings=tuple(warnings), object=request.object)

    def admit(self, request: AdmissionRequest, store: Store) -> Outcome:
        """Mutate, then validate the mutated object; /admit and the offline CLI."""
        mutated = self.mutate(request, store)
        if not mutated.allowed:
            return mutated
        validated = self.validate(request.with_object(mutated.object) if mutated.patch else request, store)
        warnings = mutated.warnings + validated.warnings
        if not validated.allowed:
            return dataclasses.replace(validated, warnings=warnings)
        return dataclasses.replace(mutated, warnings=warnings)

    def simulate(self, request: AdmissionRequest, store: Store) -> Outcome:
        """`admit`, then what an allowed request changes, recorded as storage would keep it.

        Only for the offline `gatekeeper admit`, where each review's answer stands in for the API
        server's storage. A server never records: an admitted request is not a stored object
        (storage or a later webhook can still refuse it)."""
        outcome = self.admit(request, store)
        if not outcome.allowed or request.dry_run:
            return outcome
        try:
            stream.record(request, outcome.object, store)
        except AdmissionDenied as denied:
            return Outcome(denied=denied, warnings=outcome.warnings, object=request.object)
        return outcome


def _refused(
    denied: AdmissionDenied, plugin: Plugin, warnings: list[str], request: AdmissionRequest
) -> Outcome:
    return Outcome(denied=denied, warnings=tuple(warnings), object=request.object, plugin=plugin.name)


def _blame(exc: Exception, plugin: Plugin) -> None:
    """Name the plugin on what escapes it (a store failure, a bug), so the log says whose it is."""
    exc.add_note(f"raised in admission plugin {plugin.name}")


def _collect(into: list[str], warnings: Warnings) -> None:
    if warnings:
        into.extend(warnings)


def build_chain(names: Sequence[str], options: PluginOptions | None = None) -> Chain:
    """The chain for an --enable-admission-plugins list; UnknownPlugin names the known ones."""
    return Chain(build_plugins(names, options))
