"""Pod-create AdmissionReviews against one namespace with a ResourceQuota, and reading the answers:
shared by the quota tests on one server and the replica tests on etcd."""

from __future__ import annotations

from typing import Any

import httpx

CALLER = (
    '{"apiVersion":"abac.authorization.kubernetes.io/v1beta1","kind":"Policy",'
    '"spec":{"user":"kube-apiserver","nonResourcePath":"*"}}\n'
)
NAMESPACE = "team-a"


def state(hard: dict[str, str]) -> str:
    hard_yaml = "".join(f"    {name}: \"{value}\"\n" for name, value in hard.items())
    return (
        f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NAMESPACE}}}\nstatus: {{phase: Active}}\n---\n"
        f"apiVersion: v1\nkind: ResourceQuota\nmetadata: {{name: compute, namespace: {NAMESPACE}}}\n"
        f"spec:\n  hard:\n{hard_yaml}"
    )


def pod_review(uid: str, name: str, cpu: str | None = None) -> dict[str, Any]:
    resources = {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}} if cpu else {}
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"containers": [{"name": "app", "image": "nginx", "resources": resources}]},
        "status": {"phase": "Pending"},
    }
    return {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": uid, "name": name, "namespace": NAMESPACE, "operation": "CREATE",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": pod, "oldObject": None, "dryRun": False,
        },
    }


def allowed(response: httpx.Response) -> bool:
    assert response.status_code == 200, response.text
    body = response.json()["response"]
    if not body["allowed"]:
        assert "exceeded quota: compute" in body["status"]["message"], body
    return bool(body["allowed"])


def used(client: httpx.Client) -> dict[str, str]:
    response = client.get("/quota", params={"namespace": NAMESPACE})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["metadata"]["name"] for item in items] == ["compute"]
    return dict(items[0]["status"]["used"])
