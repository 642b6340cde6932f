"""deploy/ against a real kube-apiserver: `kubectl apply -k deploy/ --dry-run=server` admits every
object (schema, defaulting and admission, nothing stored). The namespace is created for real first,
as a server-side dry run of objects in a namespace that does not exist yet is refused."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.cluster import Cluster

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_the_deploy_kustomization_is_valid_for_the_api_server(cluster: Cluster) -> None:
    kubectl = cluster.kubectl
    existed = kubectl("get", "namespace", "gatekeeper-system", check=False).returncode == 0
    kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"))
    try:
        done = kubectl("apply", "-k", str(DEPLOY), "--dry-run=server")
    finally:
        if not existed:
            kubectl("delete", "namespace", "gatekeeper-system", "--wait=false")
    applied = done.stdout.splitlines()
    for kind in (
        "deployment.apps/gatekeeper",
        "service/gatekeeper",
        "poddisruptionbudget.policy/gatekeeper",
        "networkpolicy.networking.k8s.io/gatekeeper",
        "configmap/gatekeeper-policy",
        "serviceaccount/gatekeeper",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/gatekeeper",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/gatekeeper",
    ):
        assert any(line.startswith(kind) and "(server dry run)" in line for line in applied), (
            kind,
            done.stdout,
        )
