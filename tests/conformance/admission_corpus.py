"""The admission corpus (tests/conformance/admission/cases.json) and how an outcome is judged.

A case's `expect` is checked against an AdmissionReview response and the object after applying
its patch with the jsonpatch library; see SEMANTICS.md §5 for the format.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import jsonpatch
import pytest

CORPUS = Path(__file__).parent / "admission" / "cases.json"
CASES: list[dict[str, Any]] = json.loads(CORPUS.read_text(encoding="utf-8"))
ABSENT = "{{absent}}"
_REGEX = re.compile(r"\{\{re:(.*)\}\}\Z", re.S)


def params(cases: list[dict[str, Any]]) -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in cases]


def state_list(case: dict[str, Any]) -> dict[str, Any]:
    items = [obj for objects in case["state"].values() for obj in objects]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def object_after(case: dict[str, Any], response: dict[str, Any]) -> Any:
    """The request object with the response's JSONPatch applied (the object itself if no patch)."""
    original = case["request"]["request"].get("object")
    if "patch" not in response:
        return original
    assert response["patchType"] == "JSONPatch"
    patch = json.loads(base64.b64decode(response["patch"]))
    return jsonpatch.apply_patch(original, patch)


def check(case: dict[str, Any], review: dict[str, Any]) -> None:
    """Assert everything the case expects of an AdmissionReview response (quota usage aside)."""
    expect = case["expect"]
    request = case["request"]
    assert review["apiVersion"] == request["apiVersion"]
    assert review["kind"] == "AdmissionReview"
    response = review["response"]
    assert response["uid"] == request["request"]["uid"]
    assert response["allowed"] is expect["allowed"], response.get("status")
    status = response.get("status") or {}
    if expect["allowed"]:
        assert not status or status.get("code") in (None, 200), status
    else:
        assert "patch" not in response
    if "status_code" in expect:
        assert status["code"] == expect["status_code"], status
    if "reason" in expect:
        assert status["reason"] == expect["reason"], status
    message = status.get("message", "")
    if "message_contains" in expect:
        assert expect["message_contains"] in message
    for part in expect.get("message_contains_all", []):
        assert part in message
    for part in expect.get("message_not_contains", []):
        assert part not in message
    causes = (status.get("details") or {}).get("causes", [])
    for cause in expect.get("causes_contain", []):
        assert cause in causes, causes
    _check_object(case, response)


def _check_object(case: dict[str, Any], response: dict[str, Any]) -> None:
    expect = case["expect"]
    after = object_after(case, response)
    if expect.get("mutated") is False:
        patch = json.loads(base64.b64decode(response["patch"])) if "patch" in response else []
        assert patch == [], patch
    if "object_after" in expect:
        problems = mismatches(expect["object_after"], after, "")
        assert not problems, "\n".join(problems)
    for left, right in expect.get("equal_paths", []):
        assert value_at(after, left) == value_at(after, right), (left, right)


def check_quota_used(case: dict[str, Any], quotas: dict[str, Any]) -> None:
    """`quota_used_after`: each named quota's status.used in the store after the request."""
    for name, used in case["expect"].get("quota_used_after", {}).items():
        assert name in quotas, f"quota {name} is not in the store"
        actual = (quotas[name].get("status") or {}).get("used") or {}
        problems = mismatches(used, actual, f"{name}.status.used")
        assert not problems and set(actual) == set(used), (problems, actual, used)


def mismatches(expected: Any, actual: Any, path: str) -> list[str]:
    """Partial match: expected keys must match (extra keys allowed), lists element-wise."""
    if expected == ABSENT:
        return [] if actual in (None, "", [], {}) else [f"{path}: expected absent, got {actual!r}"]
    if isinstance(expected, str) and (m := _REGEX.match(expected)):
        ok = isinstance(actual, str) and re.fullmatch(m.group(1), actual)
        return [] if ok else [f"{path}: {actual!r} does not match {m.group(1)!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: expected an object, got {actual!r}"]
        return [
            problem
            for key, value in expected.items()
            for problem in mismatches(value, actual.get(key), f"{path}.{key}")
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: expected {len(expected)} items, got {actual!r}"]
        return [
            problem
            for index, (want, got) in enumerate(zip(expected, actual, strict=True))
            for problem in mismatches(want, got, f"{path}[{index}]")
        ]
    if expected == actual or _same_quantity(expected, actual):
        return []
    return [f"{path}: expected {expected!r}, got {actual!r}"]


def _same_quantity(expected: Any, actual: Any) -> bool:
    if not (isinstance(expected, str) and isinstance(actual, str)):
        return False
    try:
        from gatekeeper.k8s.quantity import parse_quantity

        return bool(parse_quantity(expected) == parse_quantity(actual))
    except (ImportError, ValueError):
        return False


def value_at(obj: Any, dotted: str) -> Any:
    """The value at a path like spec.volumes[0].name."""
    value = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", dotted):
        value = value[int(part[1:-1])] if part.startswith("[") else value[part]
    return value
