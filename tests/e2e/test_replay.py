"""`gatekeeper replay` on the audit log the real kube-apiserver writes (level Metadata) while users
work through kubectl: the requests it rebuilds are the ones the cluster authorized, and a policy
change is reported as exactly the grants it takes away."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, POLICY_LINES, Cluster

READ_VERBS = ("get", "list", "watch")


@pytest.fixture(scope="module")
def traffic(cluster: Cluster) -> Path:
    """Users' requests through kubectl, alice's as bob by impersonation; then the audit log."""
    cluster.use(AUTHORIZATION_CONFIG)
    ns = "replay"
    scenarios.authorization(cluster, ns)
    alice = cluster.token_kubeconfig("alice")
    assert scenarios.attempt(
        cluster, "get", "pods", "-n", "projectcaribou", "--as", "bob", kubeconfig=alice
    ).ok
    assert scenarios.attempt(cluster, "get", "configmaps", "-n", ns, kubeconfig=alice).ok
    return cluster.control_plane.audit_log


def replay(tmp_path: Path, lines: list[dict[str, Any]], log: Path) -> dict[str, Any]:
    policy = tmp_path / "new.jsonl"
    policy.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "replay",
            "--authorization-policy-file",
            str(policy),
            "--format",
            "json",
            str(log),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == (1 if report["lost"] else 0)
    return report


def recorded(log: Path, user: str, resource: str) -> list[dict[str, Any]]:
    """The log's completed, allowed reads of `resource` authorized as `user`, read without gatekeeper."""
    found = []
    for line in log.read_text().splitlines():
        event = json.loads(line)
        subject = event.get("impersonatedUser") or event["user"]
        if (
            event["stage"] == "ResponseComplete"
            and subject.get("username") == user
            and (event.get("objectRef") or {}).get("resource") == resource
            and event["verb"] in READ_VERBS
            and event.get("annotations", {}).get("authorization.k8s.io/decision") == "allow"
        ):
            found.append(event)
    return found


def lost(report: dict[str, Any], user: str, resource: str) -> list[dict[str, Any]]:
    return [
        c
        for c in report["changes"]
        if c["direction"] == "lost" and c["user"] == user and c["target"] == resource
    ]


def test_the_live_policy_agrees_with_every_decision_gatekeeper_made(
    cluster: Cluster, traffic: Path, tmp_path: Path
) -> None:
    report = replay(tmp_path, POLICY_LINES, traffic)
    assert report["decided"] > 0
    for user in ("ceposta", "bob"):
        pod_changes = [c for c in report["changes"] if c["user"] == user and c["target"] == "pods"]
        assert pod_changes == [], pod_changes
    # RequestReceived is omitted by the audit policy; watches also log ResponseStarted, not decided
    assert set(report["otherStages"]) <= {"ResponseStarted"}


def test_a_removed_line_is_reported_as_exactly_the_reads_it_granted(
    cluster: Cluster, traffic: Path, tmp_path: Path
) -> None:
    without_ceposta_reads = [
        line for line in POLICY_LINES if line.get("user") != "ceposta" or "readonly" not in line
    ]
    report = replay(tmp_path, without_ceposta_reads, traffic)
    groups = lost(report, "ceposta", "pods")
    expected = recorded(traffic, "ceposta", "pods")
    assert expected, "the scenario made no pod reads as ceposta"
    assert sum(g["count"] for g in groups) == len(expected)
    ids = {event["auditID"] for event in expected}
    assert all(g["example"]["auditID"] in ids for g in groups)


def test_an_impersonated_request_is_decided_as_the_impersonated_user(
    cluster: Cluster, traffic: Path, tmp_path: Path
) -> None:
    without_bob = [line for line in POLICY_LINES if line.get("user") != "bob"]
    report = replay(tmp_path, without_bob, traffic)
    groups = lost(report, "bob", "pods")
    impersonated = [g for g in groups if g["impersonatedBy"] == "alice"]
    assert impersonated, groups
    assert impersonated[0]["namespace"] == "projectcaribou"
    assert sum(g["count"] for g in groups) == len(recorded(traffic, "bob", "pods"))
