"""What a cluster user does, and what they see: each scenario drives the real kubectl and returns
observations (allowed or refused, the message kubectl printed, the resulting object's fields).

The e2e tests assert on these observations with gatekeeper wired in; the differential runs the
same scenarios against the in-tree plugins and ABAC authorizer and compares them outcome by outcome.
A scenario works in a namespace of its own, named by the caller, so the two runs never meet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.e2e.cluster import Cluster
from tests.support.waiting import wait_for

Observation = dict[str, Any]
HOLD_FINALIZER = "e2e.gatekeeper.invalid/hold"
# kube-apiserver prefixes every webhook's refusal with the webhook's name (webhook/errors/
# statuserror.go); the in-tree plugins' refusals have no such prefix. After it comes the plugin's
# own message.
WEBHOOK_PREFIX = re.compile(r'admission webhook "[^"]+" denied the request: ')


@dataclass(frozen=True)
class Attempt:
    ok: bool
    message: str
    warnings: tuple[str, ...]
    stdout: str

    def observed(self) -> Observation:
        return {"allowed": self.ok, "message": self.message, "warnings": list(self.warnings)}


def attempt(cluster: Cluster, *args: str, stdin: str | None = None, kubeconfig: Any = None) -> Attempt:
    done = cluster.kubectl(*args, stdin=stdin, kubeconfig=kubeconfig, check=False)
    lines = done.stderr.splitlines()
    warnings = tuple(line.removeprefix("Warning: ") for line in lines if line.startswith("Warning: "))
    errors = [line for line in lines if not line.startswith("Warning: ")]
    return Attempt(done.returncode == 0, "\n".join(errors).strip(), warnings, done.stdout)


def create(cluster: Cluster, obj: dict[str, Any], *flags: str, kubeconfig: Any = None) -> Attempt:
    return attempt(cluster, "create", "-f", "-", *flags, stdin=json.dumps(obj), kubeconfig=kubeconfig)


def unprefixed(message: str) -> str:
    return WEBHOOK_PREFIX.sub("", message)


def namespace(cluster: Cluster, name: str, labels: dict[str, str] | None = None) -> None:
    obj = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
    assert create(cluster, obj).ok
    wait_for(
        lambda: cluster.control_plane.get("serviceaccount", "default", "-n", name),
        timeout=60,
        interval=0.2,
        tolerate=(AssertionError,),
    )


def pod(name: str, ns: str, resources: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "registry.invalid/app:1"}
    if resources is not None:
        container["resources"] = resources
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [container], **spec},
    }


def quota(name: str, ns: str, hard: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"hard": hard},
    }


def limit_range(name: str, ns: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "default": {"cpu": "500m", "memory": "256Mi"},
                    "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
                    "max": {"cpu": "2", "memory": "1Gi"},
                }
            ]
        },
    }


def quota_synced(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    """The quota once the resourcequota controller has written status.hard (before it, unenforced)."""

    def synced() -> dict[str, Any] | None:
        obj = cluster.control_plane.get("resourcequota", name, "-n", ns)
        return obj if (obj.get("status") or {}).get("hard") else None

    return dict(wait_for(synced, timeout=30, interval=0.2))


def used(cluster: Cluster, ns: str, name: str) -> dict[str, str]:
    return dict(
        (cluster.control_plane.get("resourcequota", name, "-n", ns).get("status") or {}).get("used") or {}
    )


def container_view(obj: dict[str, Any]) -> Observation:
    """The fields admission sets on a pod: resources, volumes, mounts, pull secrets, annotations."""
    spec = obj["spec"]
    container = spec["containers"][0]
    volumes = [{**v, "name": re.sub(r"-[a-z0-9]{5}$", "-XXXXX", v["name"])} for v in spec.get("volumes", [])]
    mounts = [
        {**m, "name": re.sub(r"-[a-z0-9]{5}$", "-XXXXX", m["name"])}
        for m in container.get("volumeMounts", [])
    ]
    return {
        "resources": container.get("resources", {}),
        "serviceAccountName": spec.get("serviceAccountName"),
        "volumes": volumes,
        "volumeMounts": mounts,
        "imagePullSecrets": spec.get("imagePullSecrets", []),
        "annotations": obj["metadata"].get("annotations", {}),
    }


# -- admission scenarios ---------------------------------------------------------------------


def limit_range_defaults(cluster: Cluster, ns: str) -> Observation:
    namespace(cluster, ns)
    assert create(cluster, limit_range("limits", ns)).ok
    made = create(cluster, pod("web", ns), "-o", "json")
    over = create(cluster, pod("big", ns, {"limits": {"cpu": "8"}}))
    return {
        "defaulted": {**made.observed(), **(container_view(json.loads(made.stdout)) if made.ok else {})},
        "over max": over.observed(),
    }


def quota_enforced(cluster: Cluster, ns: str) -> Observation:
    namespace(cluster, ns)
    assert create(cluster, quota("compute", ns, {"pods": "2", "requests.cpu": "1", "limits.cpu": "2"})).ok
    quota_synced(cluster, ns, "compute")
    sized = {"requests": {"cpu": "400m"}, "limits": {"cpu": "800m"}}
    first = create(cluster, pod("one", ns, sized))
    dry = create(cluster, pod("dry", ns, sized), "--dry-run=server")
    after_dry = used(cluster, ns, "compute")
    second = create(cluster, pod("two", ns, sized))
    third = create(cluster, pod("three", ns, sized))
    unsized = create(cluster, pod("unsized", ns))
    return {
        "first": first.observed(),
        "dry run": dry.observed(),
        "used after dry run": after_dry,
        "second": second.observed(),
        "over quota": third.observed(),
        "no requests": unsized.observed(),
        "used": used(cluster, ns, "compute"),
    }


def service_account_defaulting(cluster: Cluster, ns: str) -> Observation:
    namespace(cluster, ns)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "robot", "namespace": ns},
        "imagePullSecrets": [{"name": "registry-creds"}],
    }
    assert create(cluster, account).ok
    made = create(cluster, pod("robot-pod", ns, serviceAccountName="robot"), "-o", "json")
    default = create(cluster, pod("default-pod", ns), "-o", "json")
    missing = create(cluster, pod("lost", ns, serviceAccountName="nobody"))
    return {
        "robot": {**made.observed(), **(container_view(json.loads(made.stdout)) if made.ok else {})},
        "default": {
            **default.observed(),
            **(container_view(json.loads(default.stdout)) if default.ok else {}),
        },
        "missing account": missing.observed(),
    }


def enforce_mountable_secrets(cluster: Cluster, ns: str) -> Observation:
    namespace(cluster, ns)
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {
            "name": "strict",
            "namespace": ns,
            "annotations": {"kubernetes.io/enforce-mountable-secrets": "true"},
        },
        "secrets": [{"name": "allowed"}],
    }
    written = create(cluster, account)
    secret_volume = [{"name": "creds", "secret": {"secretName": "forbidden"}}]
    refused = create(cluster, pod("mounts", ns, serviceAccountName="strict", volumes=secret_volume))
    return {
        "account written": written.observed(),
        "pod mounting another secret": refused.observed(),
    }


def namespace_lifecycle(cluster: Cluster, ns: str, exists: bool = False) -> Observation:
    """The seed's walkthrough end: delete a namespace, refused while terminating, gone, made again."""
    if not exists:
        namespace(cluster, ns)
    held = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "held", "namespace": ns, "finalizers": [HOLD_FINALIZER]},
    }
    assert create(cluster, held).ok
    assert attempt(cluster, "delete", "namespace", ns, "--wait=false").ok
    wait_for(
        lambda: cluster.control_plane.get("namespace", ns)["status"].get("phase") == "Terminating",
        timeout=30,
        interval=0.2,
    )
    terminating = create(cluster, pod("late", ns))
    cluster.kubectl(
        "patch", "configmap", "held", "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    wait_for(lambda: not attempt(cluster, "get", "namespace", ns).ok, timeout=60, interval=0.3)
    namespace(cluster, ns)
    again = create(cluster, pod("again", ns))
    immortal = attempt(cluster, "delete", "namespace", "kube-public", "--wait=false")
    return {
        "pod while terminating": terminating.observed(),
        "pod after re-creation": again.observed(),
        "delete kube-public": immortal.observed(),
    }


ADMISSION: dict[str, Callable[[Cluster, str], Observation]] = {
    "limitrange": limit_range_defaults,
    "quota": quota_enforced,
    "serviceaccount": service_account_defaulting,
    "mountable-secrets": enforce_mountable_secrets,
    "namespace-lifecycle": namespace_lifecycle,
}


# -- authorization scenarios -----------------------------------------------------------------


def can_i(cluster: Cluster, user: str, *args: str) -> str:
    done = attempt(cluster, "auth", "can-i", *args, kubeconfig=cluster.token_kubeconfig(user))
    return done.stdout.strip() or done.message


def authorization(cluster: Cluster, ns: str) -> Observation:
    namespace(cluster, ns)
    ceposta, bob = cluster.token_kubeconfig("ceposta"), cluster.token_kubeconfig("bob")
    assert create(cluster, pod("victim", ns)).ok
    return {
        "ceposta can-i get pods": can_i(cluster, "ceposta", "get", "pods", "-n", ns),
        "ceposta can-i delete pods": can_i(cluster, "ceposta", "delete", "pods", "-n", ns),
        "ceposta can-i create events": can_i(cluster, "ceposta", "create", "events", "-n", ns),
        "ceposta can-i get secrets": can_i(cluster, "ceposta", "get", "secrets", "-n", ns),
        "ceposta get pods": attempt(
            cluster, "get", "pods", "-n", ns, "-o", "name", kubeconfig=ceposta
        ).observed(),
        "ceposta delete pod": attempt(
            cluster, "delete", "pod", "victim", "-n", ns, kubeconfig=ceposta
        ).observed(),
        "bob get pods here": attempt(cluster, "get", "pods", "-n", ns, kubeconfig=bob).observed(),
        "bob can-i get pods in projectcaribou": can_i(cluster, "bob", "get", "pods", "-n", "projectcaribou"),
        "bob can-i list pods everywhere": can_i(cluster, "bob", "list", "pods", "-A"),
    }


def unknown_token(cluster: Cluster) -> Observation:
    kubeconfig = cluster.control_plane.kubeconfig("stranger", token="e2e-token-nobody-has-this")
    return attempt(cluster, "get", "pods", "-n", "default", kubeconfig=kubeconfig).observed()
