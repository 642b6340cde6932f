"""Shape checks for the objects inside an AdmissionReview, standing in for kube-apiserver's typed
decoding: a field of the wrong JSON type is a 400 naming its path, never a plugin crash."""

from __future__ import annotations

from typing import Any

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
