"""The admission chain: enabled plugins in order; mutate, validate, or both.

The chain knows plugins only through gatekeeper.admission.plugin's interface. Mutation works on
a deep copy of the object; the JSONPatch from the original to the mutated copy is the result.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import traceback
from collections.abc import Sequence

import jsonpatch

from gatekeeper.admission import stream
from gatekeeper.admission.errors import AdmissionDenied, bad_request, internal
from gatekeeper.admission.outcome import Outcome
from gatekeeper.admission.plugin import MutatingPlugin, Plugin, ValidatingPlugin, Warnings
from gatekeeper.admission.registry import PluginOptions, build_plugins
from gatekeeper.admission.request import AdmissionRequest, JSONObject
from gatekeeper.admission.state import Store, StoreError

log = logging.getLogger("gatekeeper.admission")

# What a plugin raises when it meets a shape it does not check (a string where an object belongs).
# The object is refused as malformed rather than answered with a 500; the log names the plugin
# and the line, but not the exception's text, which may quote a value from the object.
MALFORMED = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError)


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
        name = ""
        try:
            for plugin in self.mutating:
                name = plugin.name  # before handles(): it reads the request too
                if plugin.handles(request):
                    _collect(warnings, plugin.admit(request, obj, store))
        except (AdmissionDenied, StoreError, *MALFORMED) as exc:
            return _refused(exc, name, warnings, request)
        if request.object is None:
            return Outcome(warnings=tuple(warnings), object=None)
        # A well-kept library (issue 9). Without move detection: plugins add and set fields, never
        # move one, and looking for moves serializes every added value (about a fifth of the diff).
        patch = jsonpatch.JsonPatch.from_diff(request.object, obj, optimization=False).patch
        return Outcome(patch=list(patch), warnings=tuple(warnings), object=obj)

    def validate(self, request: AdmissionRequest, store: Store) -> Outcome:
        """Run every handling validating plugin on request.object; /validate. Never patches."""
        warnings: list[str] = []
        name = ""
        try:
            for plugin in self.validating:
                name = plugin.name  # before handles(): it reads the request too
                if plugin.handles(request):
                    _collect(warnings, plugin.validate(request, request.object, store))
        except (AdmissionDenied, StoreError, *MALFORMED) as exc:
            return _refused(exc, name, warnings, request)
        return Outcome(warnings=tuple(warnings), object=request.object)

    def admit(self, request: AdmissionRequest, store: Store) -> Outcome:
        """Mutate, then validate the mutated object; /admit and the offline CLI."""
        mutated = self.mutate(request, store)
        if not mutated.allowed:
            return mutated
        validated = self.validate(dataclasses.replace(request, object=mutated.object), store)
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
        except (AdmissionDenied, StoreError, *MALFORMED) as exc:
            return _refused(exc, "", list(outcome.warnings), request)
        return outcome


def _refused(exc: Exception, plugin: str, warnings: list[str], request: AdmissionRequest) -> Outcome:
    """The outcome of a phase that stopped: a plugin's refusal, the store failing, or an object a
    plugin could not read."""
    if isinstance(exc, AdmissionDenied):
        return Outcome(denied=exc, warnings=tuple(warnings), object=request.object, plugin=plugin)
    if isinstance(exc, StoreError):
        return Outcome(denied=internal(f"admission state is unavailable: {exc}"), object=request.object)
    return Outcome(denied=_malformed(plugin, exc), object=request.object, plugin=plugin)


def _malformed(plugin: str, exc: Exception) -> AdmissionDenied:
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename}:{frame.lineno}" if frame else "?"
    reader = f"admission plugin {plugin}" if plugin else "admission (recording the object)"
    log.error("%s could not read the object: %s at %s", reader, type(exc).__name__, where)
    return bad_request(f"the object is malformed: {reader} could not read it")


def _collect(into: list[str], warnings: Warnings) -> None:
    if warnings:
        into.extend(warnings)


def build_chain(names: Sequence[str], options: PluginOptions | None = None) -> Chain:
    """The chain for an --enable-admission-plugins list; UnknownPlugin names the known ones."""
    return Chain(build_plugins(names, options))
