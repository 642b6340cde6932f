"""Shape checks for the objects inside an AdmissionReview, standing in for kube-apiserver's typed
decoding: a field of the wrong JSON type is a 400 naming its path, never a plugin crash; and the
typed read-only views of the stored objects the admission plugins read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from gatekeeper.k8s import fields
from gatekeeper.k8s.fields import InvalidObject

# A shape maps a key to (expected JSON type, shape of each element or of the value, or None).
Shape = dict[str, tuple[str, "Shape | None"]]

OBJECT, ARRAY, STRING, BOOLEAN = "object", "array", "string", "boolean"

METADATA: Shape = {
    "name": (STRING, None),
    "namespace": (STRING, None),
    "generateName": (STRING, None),
    "annotations": (OBJECT, None),
    "labels": (OBJECT, None),
}
CONTAINER: Shape = {
    "name": (STRING, None),
    "env": (ARRAY, {"name": (STRING, None), "valueFrom": (OBJECT, {"secretKeyRef": (OBJECT, None)})}),
    "envFrom": (ARRAY, {"secretRef": (OBJECT, None)}),
    "volumeMounts": (ARRAY, {"name": (STRING, None), "mountPath": (STRING, None)}),
    "resources": (OBJECT, {"requests": (OBJECT, None), "limits": (OBJECT, None)}),
    "securityContext": (OBJECT, None),
}
POD: Shape = {
    "metadata": (OBJECT, METADATA),
    "spec": (OBJECT, {
        "containers": (ARRAY, CONTAINER),
        "initContainers": (ARRAY, CONTAINER),
        "ephemeralContainers": (ARRAY, CONTAINER),
        "volumes": (ARRAY, {
            "name": (STRING, None),
            "secret": (OBJECT, None),
            "projected": (OBJECT, {"sources": (ARRAY, {})}),
        }),
        "imagePullSecrets": (ARRAY, {"name": (STRING, None)}),
        "serviceAccountName": (STRING, None),
        "automountServiceAccountToken": (BOOLEAN, None),
        "securityContext": (OBJECT, None),
        "resources": (OBJECT, {"requests": (OBJECT, None), "limits": (OBJECT, None)}),
    }),
}
ANY_OBJECT: Shape = {"metadata": (OBJECT, METADATA)}

_PYTHON_TYPES: dict[str, type] = {OBJECT: dict, ARRAY: list, STRING: str, BOOLEAN: bool}


def check_object(obj: dict[str, Any], kind: str, path: str) -> None:
    """InvalidObject naming the first field of `obj` whose JSON type is not what Kubernetes decodes."""
    _check(obj, POD if kind == "Pod" else ANY_OBJECT, path)


def _check(value: dict[str, Any], shape: Shape, path: str) -> None:
    for key, (expected, inner) in shape.items():
        child: Any = value.get(key)
        if child is None:
            continue
        where = f"{path}.{key}"
        if not _is(child, expected):
            raise InvalidObject(f"{where}: expected {_article(expected)}, got {_json_type(child)}")
        if inner is None:
            continue
        if expected == ARRAY:
            for index, item in enumerate(child):
                if not isinstance(item, dict):
                    raise InvalidObject(f"{where}[{index}]: expected an object, got {_json_type(item)}")
                _check(item, inner, f"{where}[{index}]")
        else:
            _check(child, inner, where)


def _is(value: Any, expected: str) -> bool:
    return isinstance(value, _PYTHON_TYPES[expected])


def _article(expected: str) -> str:
    return f"an {expected}" if expected in (OBJECT, ARRAY) else f"a {expected}"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return BOOLEAN
    if isinstance(value, (int, float)):
        return "number"
    return {dict: OBJECT, list: ARRAY, str: STRING, type(None): "null"}.get(type(value), type(value).__name__)


# -- typed read-only views of the stored kinds the admission plugins read --------------------------
#
# Each is decoded from a stored object once, where a plugin takes it from the store; a field of the
# wrong type is an InvalidObject naming the object and the field (a stored object is not the
# caller's: the plugin answers it as an internal error). Absent fields read as Kubernetes' zero.


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    namespace: str
    name: str
    uid: str
    annotations: Mapping[str, str]

    @classmethod
    def decode(cls, obj: Mapping[str, Any], where: str) -> ObjectMeta:
        metadata = fields.obj(obj, "metadata", f"{where}: metadata")
        annotations = fields.obj(metadata, "annotations", f"{where}: metadata.annotations")
        for key, value in annotations.items():
            if not isinstance(value, str):
                got = _json_type(value)
                raise InvalidObject(f"{where}: metadata.annotations.{key}: expected a string, got {got}")
        return cls(
            namespace=fields.string(metadata, "namespace", f"{where}: metadata.namespace"),
            name=fields.string(metadata, "name", f"{where}: metadata.name"),
            uid=fields.string(metadata, "uid", f"{where}: metadata.uid"),
            annotations=MappingProxyType(annotations),
        )


@dataclass(frozen=True, slots=True)
class ServiceAccount:
    metadata: ObjectMeta
    automount_token: bool | None  # automountServiceAccountToken; None: not set
    secrets: tuple[str, ...]  # the names in secrets[]
    image_pull_secrets: tuple[str, ...]  # the names in imagePullSecrets[]

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> ServiceAccount:
        where = _where("serviceaccount", obj)
        automount = "automountServiceAccountToken"
        return cls(
            metadata=ObjectMeta.decode(obj, where),
            automount_token=fields.boolean(obj, automount, f"{where}: {automount}")
            if obj.get(automount) is not None else None,
            secrets=_ref_names(obj, "secrets", where),
            image_pull_secrets=_ref_names(obj, "imagePullSecrets", where),
        )


@dataclass(frozen=True, slots=True)
class Secret:
    metadata: ObjectMeta
    type: str

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> Secret:
        where = _where("secret", obj)
        return cls(ObjectMeta.decode(obj, where), fields.string(obj, "type", f"{where}: type"))


@dataclass(frozen=True, slots=True)
class Namespace:
    metadata: ObjectMeta
    phase: str  # status.phase: "Active", "Terminating", or "" when not reported

    @classmethod
    def decode(cls, obj: Mapping[str, Any]) -> Namespace:
        where = _where("namespace", obj)
        status = fields.obj(obj, "status", f"{where}: status")
        return cls(ObjectMeta.decode(obj, where), fields.string(status, "phase", f"{where}: status.phase"))


def _where(kind: str, obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    return f"{kind} {metadata.get('namespace', '')}/{metadata.get('name', '')}".replace(" /", " ")


def _ref_names(obj: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    """The `name` of each entry of a list of object references (LocalObjectReference)."""
    refs = obj.get(key)
    if refs is None:
        return ()
    if not isinstance(refs, list):
        raise InvalidObject(f"{where}: {key}: expected an array, got {_json_type(refs)}")
    names = []
    for index, ref in enumerate(refs):
        if not isinstance(ref, dict):
            raise InvalidObject(f"{where}: {key}[{index}]: expected an object, got {_json_type(ref)}")
        names.append(fields.string(ref, "name", f"{where}: {key}[{index}].name"))
    return tuple(names)
