"""The policy-line schema never rejects a line Kubernetes accepts, and agrees on wrong types."""

from __future__ import annotations

from typing import Any

import pytest

from gatekeeper.authz.policy import GO_SPACE, LineError, decode_line
from gatekeeper.authz.schema import validator
from tests.conformance.abac_corpus import CASES


def _value(line: str) -> Any:
    return decode_line(line, 1).value


def _policy_lines(cases: list[dict[str, Any]]) -> list[str]:
    lines = []
    for case in cases:
        for line in case.get("policy", []):
            trimmed = line.strip(GO_SPACE)
            if trimmed and not trimmed.startswith("#"):
                lines.append(line)
    return lines


@pytest.mark.parametrize("line", _policy_lines(CASES))
def test_every_accepted_corpus_line_is_valid(line: str) -> None:
    errors = list(validator().iter_errors(_value(line)))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize(
    "line",
    [
        '{"user":"alice","readonly":"true"}',
        '{"user":5}',
        '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":{"namespace":true}}',
        '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy","spec":[]}',
        '{"apiVersion":7}',
    ],
)
def test_wrong_types_are_refused_by_both_the_loader_and_the_schema(line: str) -> None:
    import json

    with pytest.raises(LineError):
        decode_line(line, 1)
    assert list(validator().iter_errors(json.loads(line)))

