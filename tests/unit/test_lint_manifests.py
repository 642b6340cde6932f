"""gatekeeper lint on state manifests: objects the API server would refuse, or that do nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gatekeeper.cli import main

MANIFESTS = """\
apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: team-a}
spec:
  limits:
  - type: Container
    min: {cpu: 100m}
    max: {cpu: "1"}
    default: {cpu: "2", memory: 1Gi}
    defaultRequest: {cpu: 50m, memory: 256Mi}
    maxLimitRequestRatio: {memory: "2"}
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: quota, namespace: team-a}
spec:
  hard: {pods: "10", requets.cpu: "4", count/deployments.apps: "5", memory: lots}
  scopes: [BestEffort, NotBestEffort]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: builder, namespace: team-a}
secrets: [{name: builder-token}]
imagePullSecrets: [{name: registry}]
---
apiVersion: v1
kind: Secret
metadata: {name: registry, namespace: team-a}
type: kubernetes.io/dockerconfigjson
"""

GOOD = """\
apiVersion: v1
kind: LimitRange
metadata: {name: limits, namespace: team-a}
spec:
  limits:
  - type: Container
    min: {cpu: 100m}
    max: {cpu: "2"}
    default: {cpu: "1", memory: 512Mi}
    defaultRequest: {cpu: 200m, memory: 256Mi}
    maxLimitRequestRatio: {memory: "2"}
"""


def _rows(tmp_path: Path, capsys: Any, text: str) -> tuple[int, list[dict[str, Any]]]:
    path = tmp_path / "state.yaml"
    path.write_text(text)
    code = main(["lint", "--format", "json", str(path)])
    return code, json.loads(capsys.readouterr().out)


def test_each_manifest_rule(tmp_path: Path, capsys: Any) -> None:
    code, rows = _rows(tmp_path, capsys, MANIFESTS)
    by_rule: dict[str, list[str]] = {}
    for row in rows:
        by_rule.setdefault(row["rule"], []).append(row["message"])
    assert code == 1
    order = " ".join(by_rule["limitrange-inconsistent"])
    assert "min cpu 100m is greater than defaultRequest cpu 50m" in order
    assert "default cpu 2 is greater than max cpu 1" in order
    assert (
        "default memory 1Gi / defaultRequest 256Mi exceeds maxLimitRequestRatio 2"
        in by_rule["limitrange-ratio"][0]
    )
    assert by_rule["manifest-invalid-quantity"][0].startswith("ResourceQuota team-a/quota: spec.hard.memory:")
    assert ["'requets.cpu'" in m for m in by_rule["resourcequota-unknown-resource"]] == [True]
    assert "BestEffort and NotBestEffort" in by_rule["resourcequota-contradictory-scopes"][0]
    assert by_rule["serviceaccount-missing-secret"] == [
        "ServiceAccount team-a/builder: secrets[0] names Secret team-a/builder-token, "
        "which is not among the linted manifests"
    ]


def test_a_consistent_limit_range_is_clean(tmp_path: Path, capsys: Any) -> None:
    assert _rows(tmp_path, capsys, GOOD) == (0, [])


def test_a_broken_manifest_is_a_load_error(tmp_path: Path, capsys: Any) -> None:
    code, rows = _rows(tmp_path, capsys, "kind: Namespace\nmetadata: {name: [x]}\n")
    assert code == 1
    assert [r["rule"] for r in rows] == ["manifest-load-error"]
    assert "document 0" in rows[0]["message"] and "metadata.name" in rows[0]["message"]


def test_findings_point_at_the_object(tmp_path: Path, capsys: Any) -> None:
    _, rows = _rows(tmp_path, capsys, MANIFESTS)
    lines = {r["rule"]: r["line"] for r in rows}
    assert lines["limitrange-inconsistent"] == 1
    assert lines["resourcequota-unknown-resource"] == 13
    assert lines["serviceaccount-missing-secret"] == 20
