"""State manifests: YAML or JSON files (or folders of them), multi-document, `kind: List`.

Every object must be one of the kinds the store keeps, with the fields admission reads in
the right shape. A bad manifest is refused as a whole, naming file, document and field.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from gatekeeper.admission.quota.resources import NEGATIVE, QuotaError, negative_names, parse_list
from gatekeeper.admission.state import KIND_TO_RESOURCE, JSONObject, Key, Store, key_of
from gatekeeper.backends.storable import storable
from gatekeeper.errors import InvalidFile
from gatekeeper.k8s.yamltext import YAMLTextError, documents

SUFFIXES = (".yaml", ".yml", ".json")
PHASES = ("Active", "Terminating")


class ManifestError(InvalidFile):
    """A manifest that cannot be used; the message names file, document index and field (or the
    line and column of a YAML error), never a value from the file."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def manifest_files(paths: Sequence[Path]) -> list[Path]:
    """The files named, and the manifest files under the folders named, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES))
        elif path.exists():
            files.append(path)
        else:
            raise ManifestError(f"{path}: no such file or folder")
    return files


def load_manifests(paths: Sequence[Path]) -> list[JSONObject]:
    """Every object in the manifests; a key defined twice is an error naming both places."""
    objects: list[JSONObject] = []
    seen: dict[Key, str] = {}
    for path in manifest_files(paths):
        for where, obj in _objects_in(path):
            key = key_of(obj)
            if key in seen:
                raise ManifestError(f"{where}: {obj['kind']} {_show(key)} is already defined at {seen[key]}")
            seen[key] = where
            objects.append(obj)
    return objects


def parse_objects(text: str, source: str) -> list[JSONObject]:
    """The objects in one YAML/JSON text (e.g. `kubectl get ... -o json` output)."""
    return [obj for _, obj in _objects_in_text(text, source)]


def _objects_in(path: Path) -> Iterator[tuple[str, JSONObject]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    yield from _objects_in_text(text, str(path))


def _objects_in_text(text: str, source: str) -> Iterator[tuple[str, JSONObject]]:
    try:
        loaded = [doc for _line, doc in documents(text)]
    except YAMLTextError as exc:
        raise ManifestError(f"{source}: {exc}", exc.line) from None
    for index, doc in enumerate(loaded):
        if doc is None:
            continue  # an empty document (a trailing ---)
        where = f"{source}: document {index}"
        if isinstance(doc, dict) and doc.get("kind") == "List":
            items = doc.get("items")
            if not isinstance(items, list):
                raise ManifestError(f"{where}: items: expected a list of objects")
            for item_index, item in enumerate(items):
                item_where = f"{where}, items[{item_index}]"
                yield item_where, checked(item, item_where)
        else:
            yield where, checked(doc, where)


def checked(obj: Any, where: str) -> JSONObject:
    """`obj` if it is a storable object with well-shaped fields, else ManifestError."""
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected an object, got {type(obj).__name__}")
    try:
        key_of(obj)
        for problem in _shape_problems(obj):
            raise ValueError(problem)
    except ValueError as exc:
        raise ManifestError(f"{where}: {exc}") from None
    return obj


def _shape_problems(obj: JSONObject) -> Iterator[str]:
    kind = obj["kind"]
    yield from _expect(obj, "metadata.labels", dict)
    yield from _expect(obj, "metadata.annotations", dict)
    if kind == "Namespace":
        yield from _expect(obj, "status", dict)
        phase = (obj.get("status") or {}).get("phase")
        if phase is not None and phase not in PHASES:
            yield f"status.phase: expected one of {', '.join(PHASES)}, got {phase!r}"
    elif kind == "LimitRange":
        yield from _expect(obj, "spec", dict)
        yield from _expect(obj, "spec.limits", list)
        for index, item in enumerate(_get(obj, "spec.limits") or []):
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                yield f"spec.limits[{index}].type: expected a string (Container, Pod, PersistentVolumeClaim)"
    elif kind == "ResourceQuota":
        for path in ("spec", "spec.hard", "status", "status.hard", "status.used"):
            yield from _expect(obj, path, dict)
        yield from _expect(obj, "spec.scopes", list)
        yield from _quantity_problems(obj)
    elif kind == "ServiceAccount":
        yield from _expect_refs(obj, "secrets")
        yield from _expect_refs(obj, "imagePullSecrets")
        yield from _expect(obj, "automountServiceAccountToken", bool)
    elif kind == "Secret":
        yield from _expect(obj, "data", dict)
        yield from _expect(obj, "stringData", dict)
        yield from _expect(obj, "type", str)


def _quantity_problems(quota: JSONObject) -> Iterator[str]:
    """No negative hard or used (the API server's validation refuses them); a quantity that does
    not parse is named when quota reads it (and by lint's own rule)."""
    for path in ("spec.hard", "status.hard", "status.used"):
        try:
            resources = parse_list(_get(quota, path), path)
        except QuotaError:
            continue
        for name in negative_names(resources):
            yield f"{path}.{name}: {NEGATIVE}"


_TYPE_WORDS = {dict: "an object", list: "a list", bool: "a boolean", str: "a string"}


def _get(obj: JSONObject, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _expect(obj: JSONObject, path: str, kind: type) -> Iterable[str]:
    value = _get(obj, path)
    if value is not None and not isinstance(value, kind):
        return [f"{path}: expected {_TYPE_WORDS[kind]}, got {type(value).__name__}"]
    return []


def _expect_refs(obj: JSONObject, key: str) -> Iterator[str]:
    yield from _expect(obj, key, list)
    for index, ref in enumerate(obj.get(key) or []):
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            yield f"{key}[{index}].name: expected a string"


def _show(key: Key) -> str:
    _resource, namespace, name = key
    return f"{namespace}/{name}" if namespace else name


def is_storable(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("kind") in KIND_TO_RESOURCE


class ManifestSync:
    """Keeps a store in step with manifests. Each load puts the objects that are new or changed
    since the manifests were last applied to this store and deletes the ones the manifests
    dropped; an object the manifests still declare unchanged keeps whatever the admission stream
    made of it (a namespace deleted through the webhook stays Terminating across a restart).
    A bad manifest raises before the store is touched."""

    def __init__(self, store: Store, paths: Sequence[Path]) -> None:
        self.store = store
        self.paths = tuple(paths)

    def watch_paths(self) -> list[Path]:
        """The files and folders (with their sub-folders) whose change means a reload: a folder
        changes when files come or go, a file when it is written."""
        folders = [sub for path in self.paths if path.is_dir() for sub in path.rglob("*") if sub.is_dir()]
        files = [f for f in manifest_files(self.paths) if f not in self.paths]
        return list(dict.fromkeys([*self.paths, *sorted(folders), *files]))

    def load(self) -> int:
        # Digests of the objects as stored: a Secret's data is never kept, not even as a hash.
        objects = [storable(obj) for obj in load_manifests(self.paths)]
        digests = {key_of(obj): digest(obj) for obj in objects}
        previous = self.store.applied_manifests()
        changed = [obj for obj in objects if previous.get(key_of(obj)) != digests[key_of(obj)]]
        dropped = [key for key in previous if key not in digests]
        self.store.apply_manifests(changed, dropped, digests)
        return len(objects)


def digest(obj: JSONObject) -> str:
    return hashlib.sha256(orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)).hexdigest()
