"""Admission through the real kube-apiserver, with its in-tree NamespaceLifecycle, LimitRanger,
ServiceAccount and ResourceQuota disabled: every decision below is gatekeeper's, and kubectl shows
it as a cluster user sees it. The seed's walkthrough, then one scenario per plugin."""

from __future__ import annotations

import json

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, Cluster

FORBIDDEN = 'Error from server (Forbidden): error when creating "STDIN": '
# kube-apiserver names the webhook that refused before the plugin's own (Kubernetes') message
MUTATE = FORBIDDEN + 'admission webhook "mutate.gatekeeper.local" denied the request: '
VALIDATE = FORBIDDEN + 'admission webhook "validate.gatekeeper.local" denied the request: '


@pytest.fixture(autouse=True, scope="module")
def wired(cluster: Cluster) -> None:
    cluster.use(AUTHORIZATION_CONFIG)


def test_the_seed_walkthrough(cluster: Cluster) -> None:
    """The workshop's guestbook, start to end, in one namespace: quota and limits, defaults, a
    refusal over quota, then `kubectl delete namespace` and a fresh start."""
    ns = "guestbook"
    scenarios.namespace(cluster, ns)
    assert scenarios.create(cluster, scenarios.quota("guestbook", ns, {"pods": "2", "limits.cpu": "1"})).ok
    assert scenarios.create(cluster, scenarios.limit_range("limits", ns)).ok
    scenarios.quota_synced(cluster, ns, "guestbook")
    made = scenarios.create(cluster, scenarios.pod("frontend-1", ns), "-o", "json")
    assert made.ok, made.message
    assert scenarios.container_view(json.loads(made.stdout))["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "256Mi",
    }
    assert scenarios.create(cluster, scenarios.pod("frontend-2", ns)).ok
    third = scenarios.create(cluster, scenarios.pod("frontend-3", ns))
    assert third.message == VALIDATE + (
        'pods "frontend-3" is forbidden: exceeded quota: guestbook, requested: limits.cpu=500m,pods=1, '
        "used: limits.cpu=1,pods=2, limited: limits.cpu=1,pods=2"
    )
    seen = scenarios.namespace_lifecycle(cluster, ns, exists=True)
    assert seen["pod while terminating"]["message"] == MUTATE + (
        'pods "late" is forbidden: unable to create new content in namespace guestbook because it is '
        "being terminated"
    )
    assert seen["pod after re-creation"]["allowed"], seen["pod after re-creation"]["message"]
    assert cluster.control_plane.get("namespace", ns)["status"]["phase"] == "Active"


def test_a_pod_without_resources_gets_the_limit_ranges_defaults(cluster: Cluster) -> None:
    seen = scenarios.limit_range_defaults(cluster, "e2e-limits")
    defaulted = seen["defaulted"]
    assert defaulted["allowed"], defaulted["message"]
    assert defaulted["resources"] == {
        "limits": {"cpu": "500m", "memory": "256Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert defaulted["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app"
    )
    assert seen["over max"] == {
        "allowed": False,
        "message": VALIDATE + 'pods "big" is forbidden: maximum cpu usage per Container is 2, but limit is 8',
        "warnings": [],
    }


def test_quota_is_charged_on_the_resource_quota_and_refused_with_kubernetes_message(cluster: Cluster) -> None:
    seen = scenarios.quota_enforced(cluster, "e2e-quota")
    assert seen["first"]["allowed"] and seen["dry run"]["allowed"] and seen["second"]["allowed"]
    # kubectl create --dry-run=server was checked but never charged
    assert seen["used after dry run"] == {"limits.cpu": "800m", "pods": "1", "requests.cpu": "400m"}
    assert seen["over quota"]["message"] == VALIDATE + (
        'pods "three" is forbidden: exceeded quota: compute, requested: limits.cpu=800m,pods=1,'
        "requests.cpu=400m, used: limits.cpu=1600m,pods=2,requests.cpu=800m, "
        "limited: limits.cpu=2,pods=2,requests.cpu=1"
    )
    assert seen["no requests"]["message"] == VALIDATE + (
        'pods "unsized" is forbidden: failed quota: compute: must specify limits.cpu for: app; '
        "requests.cpu for: app"
    )
    # `kubectl describe quota` tells the truth: the usage is on the ResourceQuota object
    assert seen["used"] == {"limits.cpu": "1600m", "pods": "2", "requests.cpu": "800m"}
    described = cluster.kubectl("describe", "quota", "compute", "-n", "e2e-quota").stdout
    rows = {line.split()[0]: line.split()[1:] for line in described.splitlines() if line.strip()}
    assert rows["pods"] == ["2", "2"] and rows["requests.cpu"] == ["800m", "1"]


def test_service_account_defaulting_mounts_the_token_and_copies_pull_secrets(cluster: Cluster) -> None:
    seen = scenarios.service_account_defaulting(cluster, "e2e-sa")
    for name in ("robot", "default"):
        pod = seen[name]
        assert pod["allowed"], pod["message"]
        (volume,) = pod["volumes"]
        assert volume["name"] == "kube-api-access-XXXXX"
        sources = volume["projected"]["sources"]
        assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
        assert pod["volumeMounts"] == [
            {
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "name": "kube-api-access-XXXXX",
                "readOnly": True,
            }
        ]
    assert seen["robot"]["serviceAccountName"] == "robot"
    assert seen["robot"]["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert seen["default"]["serviceAccountName"] == "default"
    assert seen["missing account"]["message"] == MUTATE + (
        'pods "lost" is forbidden: error looking up service account e2e-sa/nobody: '
        'serviceaccount "nobody" not found'
    )


def test_enforce_mountable_secrets_and_its_deprecation_warning_reach_kubectl(cluster: Cluster) -> None:
    seen = scenarios.enforce_mountable_secrets(cluster, "e2e-mountable")
    assert seen["account written"]["allowed"]
    assert seen["account written"]["warnings"] == [
        "metadata.annotations[kubernetes.io/enforce-mountable-secrets]: deprecated in v1.32+; "
        "prefer separate namespaces to isolate access to mounted secrets"
    ]
    assert seen["pod mounting another secret"]["message"] == MUTATE + (
        'pods "mounts" is forbidden: volume with secret.secretName="forbidden" is not allowed because '
        "service account strict does not reference that secret"
    )


def test_a_deleted_namespace_refuses_new_pods_until_it_is_gone_and_can_be_made_again(
    cluster: Cluster,
) -> None:
    seen = scenarios.namespace_lifecycle(cluster, "e2e-lifecycle")
    assert seen["pod while terminating"]["message"] == MUTATE + (
        'pods "late" is forbidden: unable to create new content in namespace e2e-lifecycle because it is '
        "being terminated"
    )
    assert seen["pod after re-creation"]["allowed"], seen["pod after re-creation"]["message"]
    assert seen["delete kube-public"] == {
        "allowed": False,
        "message": 'Error from server (Forbidden): admission webhook "namespaces.gatekeeper.local" denied '
        'the request: namespaces "kube-public" is forbidden: this namespace may not be deleted',
        "warnings": [],
    }
    assert cluster.control_plane.get("namespace", "kube-public")["status"]["phase"] == "Active"


def test_other_kinds_are_refused_in_a_terminating_namespace_too(cluster: Cluster) -> None:
    """/validate runs NamespaceLifecycle for every kind it is sent, not only pods."""
    scenarios.namespace(cluster, "e2e-closing")
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": "e2e-closing", "finalizers": [scenarios.HOLD_FINALIZER]},
    }
    assert scenarios.create(cluster, held).ok
    assert scenarios.attempt(cluster, "delete", "namespace", "e2e-closing", "--wait=false").ok
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "late", "namespace": "e2e-closing"}}
    refused = scenarios.create(cluster, secret)
    cluster.kubectl(
        "patch",
        "configmap",
        "held",
        "-n",
        "e2e-closing",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
    )
    assert not refused.ok
    assert "unable to create new content in namespace e2e-closing because it is being terminated" in (
        refused.message
    )
