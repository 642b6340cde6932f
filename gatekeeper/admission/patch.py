"""The JSONPatch of a mutation, recorded as the plugins make it rather than diffed afterwards.

kube-apiserver applies the patch, in order, to the object it sent; so each operation is recorded
as the change it makes, with the path it has at that moment (RFC 6901 pointers: "~" is "~0", "/"
is "~1"). An operation only ever sets an object member ("add" creates or replaces it) or appends
to an array; the value is copied when recorded, so a later change inside it is an operation of
its own and the patch replays every step. The property test in tests/unit/test_admission_patch.py
checks the recording against jsonpatch's diff of the whole object.
"""

from __future__ import annotations

from collections.abc import MutableMapping, MutableSequence
from typing import Any

import orjson

Path = tuple[str | int, ...]
"""Where a node is in the object, from its root: ("spec", "containers", 0, "resources")."""


def pointer(path: Path) -> str:
    """The RFC 6901 JSON pointer of `path`."""
    return "".join("/" + str(token).replace("~", "~0").replace("/", "~1") for token in path)


def _snapshot(value: Any) -> Any:
    # JSON in, JSON out: an exact deep copy, cheaper than copy.deepcopy for plain JSON values.
    return orjson.loads(orjson.dumps(value))


class Patch:
    """The operations recorded so far; `set` and `append` change the object and record the change."""

    __slots__ = ("ops",)

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def set(self, parent: MutableMapping[str, Any], at: Path, key: str, value: Any) -> None:
        """parent[key] = value, where `parent` is the node at `at`."""
        parent[key] = value
        self.ops.append({"op": "add", "path": pointer((*at, key)), "value": _snapshot(value)})

    def append(self, array: MutableSequence[Any], at: Path, value: Any) -> None:
        """array.append(value), where `array` is the node at `at`."""
        array.append(value)
        self.ops.append({"op": "add", "path": pointer(at) + "/-", "value": _snapshot(value)})

    def put(self, node: MutableMapping[str, Any], at: Path, keys: tuple[str, ...], value: Any) -> None:
        """node[keys[0]]...[keys[-1]] = value, `node` being at `at`: objects missing (or null) on the
        way are created with the value inside, in one operation at the first of them."""
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if not isinstance(child, dict):
                for outer in reversed(keys[depth + 1:]):
                    value = {outer: value}
                self.set(node, at, key, value)
                return
            node, at = child, (*at, key)
        self.set(node, at, keys[-1], value)

    def extend(self, node: MutableMapping[str, Any], at: Path, key: str, item: Any) -> None:
        """Append `item` to the array node[key], created as [item] when absent or null."""
        array = node.get(key)
        if isinstance(array, list):
            self.append(array, (*at, key), item)
        else:
            self.set(node, at, key, [item])
