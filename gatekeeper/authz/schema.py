"""The JSON Schema of one ABAC policy line (abac.schema.json): the documented format.

The loader takes its field names and types from here, so the two cannot drift apart; the linter
validates decoded lines with it. It never rejects a line kube-apiserver accepts.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema


@functools.cache
def schema() -> dict[str, Any]:
    text = resources.files("gatekeeper.authz").joinpath("abac.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema())


def field_types(definition: str) -> dict[str, type]:
    """{field name: str or bool} of one of the schema's $defs (v0, v1beta1Spec, internalSpec)."""
    properties: dict[str, Any] = schema()["$defs"][definition]["properties"]
    return {name: bool if "boolean" in spec["type"] else str for name, spec in properties.items()}
