"""`gatekeeper audit`'s renderings: text, JSON, SARIF 2.1.0 and wgpolicyk8s.io/v1alpha2 reports.

PolicyReports are rendered as YAML for the user to read or apply; nothing is written into the
cluster. A namespace's findings go into its PolicyReport; those of a namespace that does not
exist (a PolicyReport could not live there) and of cluster-scoped objects into the
ClusterPolicyReport.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from gatekeeper.admission.quota.reconcile import resource_of
from gatekeeper.inspect.checks import NAMESPACE_MISSING, RULES, Violation
from gatekeeper.lint.report import Finding, Severity, as_sarif

REPORT_API = "wgpolicyk8s.io/v1alpha2"
REPORT_NAME = "gatekeeper-audit"
SOURCE = "gatekeeper"
_RESULT = {Severity.ERROR: "fail", Severity.WARNING: "warn"}
_SEVERITY = {Severity.ERROR: "high", Severity.WARNING: "medium"}


@dataclass(frozen=True, slots=True)
class Outcome:
    violations: list[Violation]
    objects: int
    notes: list[str]


def location(v: Violation) -> str:
    """The object as an API path, e.g. namespaces/team-a/pods/web-1."""
    resource = resource_of(v.obj.kind) if v.obj.kind else "objects"
    return (
        f"namespaces/{v.obj.namespace}/{resource}/{v.obj.name}"
        if v.obj.namespace
        else f"{resource}/{v.obj.name}"
    )


def as_text(outcome: Outcome) -> str:
    lines = [
        f"{v.rule.severity.value}: {v.obj}: {v.policy}: {v.message} [{v.rule.id}]" for v in outcome.violations
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def summary(outcome: Outcome) -> str:
    errors = sum(1 for v in outcome.violations if v.rule.severity is Severity.ERROR)
    warnings = len(outcome.violations) - errors
    return f"audited {outcome.objects} objects: {errors} errors, {warnings} warnings"


def as_json(outcome: Outcome) -> str:
    rows = [
        {
            "rule": v.rule.id,
            "severity": v.rule.severity.value,
            "policy": v.policy,
            "apiVersion": v.obj.api_version,
            "kind": v.obj.kind,
            "namespace": v.obj.namespace,
            "name": v.obj.name,
            "message": v.message,
        }
        for v in outcome.violations
    ]
    document = {"objects": outcome.objects, "findings": rows, "notes": outcome.notes}
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def as_sarif_text(outcome: Outcome) -> str:
    findings = [Finding(location(v), 1, 1, v.rule, f"{v.policy}: {v.message}") for v in outcome.violations]
    return as_sarif(findings, RULES, tool="gatekeeper audit")


def policy_reports(outcome: Outcome, now: float) -> list[dict[str, Any]]:
    """One PolicyReport per namespace with findings, then the ClusterPolicyReport if it has any."""
    by_namespace: dict[str, list[Violation]] = {}
    for v in outcome.violations:
        cluster_wide = not v.obj.namespace or v.rule is NAMESPACE_MISSING
        by_namespace.setdefault("" if cluster_wide else v.obj.namespace, []).append(v)
    reports = [_report(ns, by_namespace[ns], now) for ns in sorted(by_namespace) if ns]
    if "" in by_namespace:
        reports.append(_report("", by_namespace[""], now))
    return reports


def _report(namespace: str, violations: Sequence[Violation], now: float) -> dict[str, Any]:
    results = [_result(v, now) for v in violations]
    metadata: dict[str, Any] = {"name": REPORT_NAME}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/managed-by": SOURCE}
    counts = {kind: sum(1 for r in results if r["result"] == kind) for kind in ("fail", "warn")}
    return {
        "apiVersion": REPORT_API,
        "kind": "PolicyReport" if namespace else "ClusterPolicyReport",
        "metadata": metadata,
        "summary": {"pass": 0, "fail": counts["fail"], "warn": counts["warn"], "error": 0, "skip": 0},
        "results": results,
    }


def _result(v: Violation, now: float) -> dict[str, Any]:
    resource = {"apiVersion": v.obj.api_version, "kind": v.obj.kind, "name": v.obj.name}
    if v.obj.namespace:
        resource["namespace"] = v.obj.namespace
    if v.obj.uid:
        resource["uid"] = v.obj.uid
    return {
        "source": SOURCE,
        "policy": v.policy,
        "rule": v.rule.id,
        "category": "admission",
        "severity": _SEVERITY[v.rule.severity],
        "result": _RESULT[v.rule.severity],
        "scored": True,
        "timestamp": {"seconds": int(now), "nanos": 0},
        "message": v.message,
        "resources": [resource],
    }


def as_yaml(reports: Sequence[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(reports, sort_keys=False, explicit_start=True, width=10_000) if reports else ""


def file_name(report: dict[str, Any]) -> str:
    namespace = report["metadata"].get("namespace")
    return f"policyreport-{namespace}.yaml" if namespace else "clusterpolicyreport.yaml"
