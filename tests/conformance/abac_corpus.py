"""The ABAC conformance corpus (tests/conformance/abac), as test parameters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent / "abac"

# Cases deliberately left out, with the reason (the corpus allows it for the `esoteric` tier only).
LEFT_OUT: dict[str, str] = {}


def _load(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = json.loads((HERE / name).read_text())
    return cases


CASES = _load("cases.json")
BAD_POLICIES = _load("bad_policies.json")


def policy_bytes(case: dict[str, Any]) -> bytes:
    if "raw_file" in case:
        return str(case["raw_file"]).encode()
    return "\n".join(case["policy"]).encode()


def params(cases: list[dict[str, Any]]) -> list[Any]:
    return [
        pytest.param(
            c, id=c["id"], marks=[pytest.mark.skip(reason=LEFT_OUT[c["id"]])] if c["id"] in LEFT_OUT else []
        )
        for c in cases
    ]
