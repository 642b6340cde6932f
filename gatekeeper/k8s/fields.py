"""Typed reads of wire objects: each error names the field path and what was expected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatekeeper.errors import InvalidInput


class InvalidObject(InvalidInput):
    """A wire object that is not what the endpoint accepts; the message names the field."""


def _type_name(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def obj(parent: Mapping[str, Any], key: str, path: str, required: bool = False) -> dict[str, Any]:
    value = parent.get(key)
    if value is None:
        if required:
            raise InvalidObject(f"{path}: required field is missing")
        return {}
    if not isinstance(value, dict):
        raise InvalidObject(f"{path}: expected an object, got {_type_name(value)}")
    return value


def string(parent: Mapping[str, Any], key: str, path: str, required: bool = False) -> str:
    value = parent.get(key)
    if value is None:
        if required:
            raise InvalidObject(f"{path}: required field is missing")
        return ""
    if not isinstance(value, str):
        raise InvalidObject(f"{path}: expected a string, got {_type_name(value)}")
    return value


def boolean(parent: Mapping[str, Any], key: str, path: str) -> bool:
    value = parent.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidObject(f"{path}: expected a boolean, got {_type_name(value)}")
    return value


def strings(parent: Mapping[str, Any], key: str, path: str) -> tuple[str, ...]:
    value = parent.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidObject(f"{path}: expected an array of strings, got {_type_name(value)}")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidObject(f"{path}[{index}]: expected a string, got {_type_name(item)}")
    return tuple(value)


def type_meta(doc: Any, group: str, versions: tuple[str, ...], kind: str) -> str:
    """Check apiVersion/kind of a review document; return its version ("v1", "v1beta1")."""
    if not isinstance(doc, dict):
        raise InvalidObject(f"expected a {kind} JSON object, got {_type_name(doc)}")
    api_version = string(doc, "apiVersion", "apiVersion", required=True)
    accepted = [f"{group}/{v}" for v in versions]
    if api_version not in accepted:
        raise InvalidObject(f"apiVersion: expected one of {', '.join(accepted)}, got {api_version!r}")
    got_kind = string(doc, "kind", "kind", required=True)
    if got_kind != kind:
        raise InvalidObject(f"kind: expected {kind!r}, got {got_kind!r}")
    return api_version.split("/", 1)[1]
