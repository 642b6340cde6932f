"""`gatekeeper audit --kubeconfig` against the real kube-apiserver: objects that were admitted and
break the rules later (a LimitRange added over a running pod, a service account deleted or locked
down under its pods, a quota lowered under its usage or whose status.used was rewritten, a
namespace stuck terminating) are found, exactly, through paginated lists; a dump of the same
cluster by kubectl gives the same findings; and the audit writes nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, Cluster
from tests.e2e.controlplane import ADMIN
from tests.support.waiting import wait_for

PREFIX = "audit-"
KINDS = (
    "namespaces,limitranges,resourcequotas,serviceaccounts,pods,services,secrets,configmaps,persistentvolumeclaims"
)


def admitted(cluster: Cluster, obj: dict[str, Any]) -> None:
    """Create `obj`, waiting out gatekeeper's live state catching up (a service account just made)."""
    wait_for(lambda: scenarios.create(cluster, obj).ok, timeout=30, interval=0.3)


def account(name: str, ns: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": ns},
        **fields,
    }


def sized(cpu: str) -> dict[str, Any]:
    return {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": "64Mi"}}


@pytest.fixture(scope="module")
def broken(cluster: Cluster) -> Any:
    """Objects that break the admission rules after they were admitted; the findings expected."""
    cluster.use(AUTHORIZATION_CONFIG)
    lr, sa, quota, term = (f"{PREFIX}{n}" for n in ("limits", "accounts", "quota", "terminating"))
    for ns in (lr, sa, quota, term):
        scenarios.namespace(cluster, ns)

    admitted(cluster, scenarios.pod("big", lr, sized("2")))
    admitted(cluster, scenarios.pod("small", lr, sized("500m")))
    limits = scenarios.limit_range("limits", lr)
    limits["spec"]["limits"][0]["max"]["cpu"] = "1"  # "big" was admitted before it: over the max now
    admitted(cluster, limits)

    admitted(cluster, account("robot", sa))
    admitted(cluster, scenarios.pod("orphaned", sa, serviceAccountName="robot"))
    cluster.kubectl("delete", "serviceaccount", "robot", "-n", sa)
    admitted(cluster, account("strict", sa, secrets=[{"name": "allowed"}]))
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "other", "key": "token"}}}]
    leaky = scenarios.pod("leaky", sa, serviceAccountName="strict")
    leaky["spec"]["containers"][0]["env"] = env
    admitted(cluster, leaky)
    cluster.kubectl(
        "annotate", "serviceaccount", "strict", "-n", sa, "kubernetes.io/enforce-mountable-secrets=true"
    )

    admitted(cluster, scenarios.quota("lowered", quota, {"pods": "5"}))
    admitted(cluster, scenarios.quota("rewritten", quota, {"pods": "5"}))
    scenarios.quota_synced(cluster, quota, "lowered")
    scenarios.quota_synced(cluster, quota, "rewritten")
    for name in ("one", "two"):
        admitted(cluster, scenarios.pod(name, quota, sized("100m")))
    wait_for(lambda: scenarios.used(cluster, quota, "rewritten").get("pods") == "2", timeout=30, interval=0.3)
    cluster.kubectl(
        "patch",
        "resourcequota",
        "lowered",
        "-n",
        quota,
        "--type=merge",
        "-p",
        '{"spec": {"hard": {"pods": "1"}}}',
    )
    wait_for(
        lambda: scenarios.quota_synced(cluster, quota, "lowered")["status"]["hard"]["pods"] == "1",
        timeout=30,
        interval=0.3,
    )
    cluster.kubectl(
        "patch",
        "resourcequota",
        "rewritten",
        "-n",
        quota,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"used": {"pods": "4"}}}',
    )

    stuck = scenarios.pod("stuck", term)
    stuck["metadata"]["finalizers"] = [scenarios.HOLD_FINALIZER]
    admitted(cluster, stuck)
    cluster.kubectl("delete", "namespace", term, "--wait=false")
    wait_for(
        lambda: cluster.control_plane.get("namespace", term)["status"].get("phase") == "Terminating",
        timeout=30,
        interval=0.2,
    )

    yield sorted(
        [
            ("limitrange-violation", lr, "big"),
            ("serviceaccount-missing", sa, "orphaned"),
            ("secret-not-mountable", sa, "leaky"),
            ("quota-exceeded", quota, "lowered"),
            ("quota-drift", quota, "rewritten"),
            ("namespace-terminating", term, "stuck"),
        ]
    )
    cluster.kubectl(
        "patch", "pod", "stuck", "-n", term, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )


def audit(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gatekeeper.cli", "audit", "--format", "json", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def ours(stdout: str) -> list[tuple[str, str, str]]:
    rows = json.loads(stdout)["findings"]
    return sorted((r["rule"], r["namespace"], r["name"]) for r in rows if r["namespace"].startswith(PREFIX))


def test_the_live_cluster_audit_finds_exactly_what_broke(cluster: Cluster, broken: Any) -> None:
    log = cluster.control_plane.audit_log
    seen = len(log.read_text().splitlines())
    done = audit("--kubeconfig", str(cluster.control_plane.admin), "--chunk-size", "3")
    assert done.returncode == 1, done.stderr
    assert ours(done.stdout) == broken
    messages = {r["name"]: r["message"] for r in json.loads(done.stdout)["findings"]}
    assert messages["big"] == "limitrange limits: maximum cpu usage per Container is 1, but limit is 2"
    assert messages["rewritten"] == "status.used drifted: pods recorded 4, counted 2"
    assert messages["lowered"] == "recounted usage pods=2 exceeds hard pods=1"

    def admin_verbs() -> set[str]:
        events = [json.loads(line) for line in log.read_text().splitlines()[seen:]]
        return {e["verb"] for e in events if e["user"]["username"] == ADMIN}

    assert wait_for(admin_verbs, timeout=10, interval=0.5) == {"list"}  # paginated reads, nothing written


def test_a_kubectl_dump_of_the_same_cluster_gives_the_same_findings(cluster: Cluster, broken: Any) -> None:
    dump = cluster.kubectl("get", KINDS, "-A", "-o", "json").stdout
    done = audit("-", stdin=dump)
    assert done.returncode == 1, done.stderr
    assert ours(done.stdout) == broken
