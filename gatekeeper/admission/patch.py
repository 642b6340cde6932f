"""The JSONPatch (RFC 6902) that turns an admission object into its mutated copy.

Mutating plugins change a few fields of one object, so a direct walk of both trees is enough and
several times cheaper than jsonpatch.make_patch's general differ (which looks for moves): keys
that appear are added, keys that vanish are removed, a list that only grew gets its new items
appended, and any other changed value is replaced. Types are compared strictly, so `true` and
`1`, or `1` and `1.0`, are different values, as they are in JSON.
"""

from __future__ import annotations

from typing import Any

Operation = dict[str, Any]


def diff(source: Any, target: Any) -> list[Operation]:
    """Operations that, applied in order to `source`, give `target` (values are not copied)."""
    operations: list[Operation] = []
    _diff(source, target, "", operations)
    return operations


def _diff(source: Any, target: Any, path: str, out: list[Operation]) -> None:
    if type(source) is not type(target):
        out.append({"op": "replace", "path": path, "value": target})
    elif isinstance(source, dict):
        _diff_objects(source, target, path, out)
    elif isinstance(source, list):
        _diff_arrays(source, target, path, out)
    elif source != target:
        out.append({"op": "replace", "path": path, "value": target})


def _diff_objects(source: dict[str, Any], target: dict[str, Any], path: str, out: list[Operation]) -> None:
    for key in source:
        if key not in target:
            out.append({"op": "remove", "path": f"{path}/{_escape(key)}"})
    for key, value in target.items():
        where = f"{path}/{_escape(key)}"
        if key in source:
            _diff(source[key], value, where, out)
        else:
            out.append({"op": "add", "path": where, "value": value})


def _diff_arrays(source: list[Any], target: list[Any], path: str, out: list[Operation]) -> None:
    if len(target) < len(source):
        out.append({"op": "replace", "path": path, "value": target})
        return
    for index, item in enumerate(source):
        _diff(item, target[index], f"{path}/{index}", out)
    for index in range(len(source), len(target)):
        out.append({"op": "add", "path": f"{path}/{index}", "value": target[index]})


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1") if "~" in key or "/" in key else key
