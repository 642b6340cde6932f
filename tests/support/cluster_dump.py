"""A generated cluster dump (a kubectl v1 List) whose violations of the admission rules are known
by construction, for `gatekeeper audit`'s tests and benchmark.

Each namespace holds a LimitRange, two service accounts (one enforcing mountable secrets), two
secrets (with data that must never be printed), a ConfigMap, a ResourceQuota and pods drawn from
kinds that are either clean or break exactly one rule. Some namespaces are terminating, some
quotas have a drifted status.used or a hard below the real usage, and a few pods sit in a
namespace that does not exist. `expected` lists (rule, namespace, name) for every finding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

SECRET_VALUE = "c3VwZXItc2VjcmV0LXZhbHVl"  # base64 of a value that must never appear in a report
GONE = "ns-gone"  # a namespace the dump's pods name and no Namespace object declares

# pod kind -> the rule it breaks (None: clean)
POD_KINDS: dict[str, str | None] = {
    "good": None,
    "good-locked": None,
    "finished": None,
    "over-max": "limitrange-violation",
    "over-ratio": "limitrange-violation",
    "no-account": "serviceaccount-missing",
    "unmountable": "secret-not-mountable",
}
WEIGHTS = (60, 6, 4, 8, 8, 7, 7)


@dataclass
class Dump:
    items: list[dict[str, Any]] = field(default_factory=list)
    expected: list[tuple[str, str, str]] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""}, "items": self.items}


def generate(
    namespaces: int, pods_per_namespace: int, seed: int = 0, gone_pods: int = 2, kinds: tuple[str, ...] = ()
) -> Dump:
    """`kinds` limits the pods to those kinds of POD_KINDS (all of them by default)."""
    rng = random.Random(seed)
    dump = Dump()
    for i in range(namespaces):
        _namespace(dump, rng, f"ns-{i}", i, pods_per_namespace, kinds)
    for j in range(gone_pods):
        dump.items.append(_pod(GONE, f"orphan-{j}", "good", 100))
        dump.expected.append(("namespace-missing", GONE, f"orphan-{j}"))
    rng.shuffle(dump.items)  # the order of a dump must not matter
    return dump


def _namespace(
    dump: Dump, rng: random.Random, ns: str, index: int, pods: int, kinds: tuple[str, ...]
) -> None:
    terminating = index % 10 == 9
    dump.items += [
        _object("Namespace", "", ns, status={"phase": "Terminating" if terminating else "Active"}),
        _limit_range(ns),
        _object("ServiceAccount", ns, "default"),
        _object(
            "ServiceAccount",
            ns,
            "locked",
            annotations={"kubernetes.io/enforce-mountable-secrets": "true"},
            secrets=[{"name": "allowed"}],
        ),
        _object("Secret", ns, "allowed", type="Opaque", data={"password": SECRET_VALUE}),
        _object("Secret", ns, "other", type="Opaque", data={"password": SECRET_VALUE}),
        _object("ConfigMap", ns, "settings", data={"mode": "fast"}),
    ]
    running, cpu_milli = 0, 0
    for j in range(pods):
        kind = rng.choice(kinds) if kinds else rng.choices(list(POD_KINDS), WEIGHTS)[0]
        request = rng.choice((100, 200, 250))
        name = f"{kind}-{j}"
        dump.items.append(_pod(ns, name, kind, request))
        if POD_KINDS[kind]:
            dump.expected.append((str(POD_KINDS[kind]), ns, name))
        if terminating:
            dump.expected.append(("namespace-terminating", ns, name))
        if kind != "finished":
            running += 1
            cpu_milli += request
    dump.items.append(_quota(dump, ns, index, running, cpu_milli))


def _quota(dump: Dump, ns: str, index: int, running: int, cpu_milli: int) -> dict[str, Any]:
    hard_pods, used_pods = running + 10, running
    if index % 7 == 3:
        used_pods = running + 1  # the controller's last count is stale
        dump.expected.append(("quota-drift", ns, "compute"))
    elif index % 11 == 5 and running > 0:
        hard_pods = running - 1  # the quota was lowered under what already runs
        dump.expected.append(("quota-exceeded", ns, "compute"))
    hard = {"pods": str(hard_pods), "requests.cpu": "1000"}
    used = {
        "pods": str(used_pods),
        "requests.cpu": f"{cpu_milli}m" if cpu_milli % 1000 else str(cpu_milli // 1000),
    }
    return _object("ResourceQuota", ns, "compute", spec={"hard": hard}, status={"hard": hard, "used": used})


def _limit_range(ns: str) -> dict[str, Any]:
    limits = [
        {
            "type": "Container",
            "max": {"cpu": "1"},
            "min": {"memory": "16Mi"},
            "maxLimitRequestRatio": {"cpu": "4"},
            "default": {"cpu": "500m"},
            "defaultRequest": {"cpu": "250m"},
        }
    ]
    return _object("LimitRange", ns, "limits", spec={"limits": limits})


def _object(
    kind: str, ns: str, name: str, annotations: dict[str, str] | None = None, **fields: Any
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "uid": f"uid-{ns}-{kind}-{name}"}
    if ns:
        metadata["namespace"] = ns
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": kind, "metadata": metadata, **fields}


def _pod(ns: str, name: str, kind: str, request: int) -> dict[str, Any]:
    limit = {"over-max": 2000, "over-ratio": request * 5}.get(kind, request * 2)
    container: dict[str, Any] = {
        "name": "app",
        "image": "registry.example/app:1.4.2",
        "resources": {
            "requests": {"cpu": f"{request}m", "memory": "64Mi"},
            "limits": {"cpu": f"{limit}m", "memory": "128Mi"},
        },
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
        "volumeMounts": [
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
        ],
    }
    account = {"no-account": "ghost", "unmountable": "locked", "good-locked": "locked"}.get(kind, "default")
    if kind == "unmountable":
        container["env"] = [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "other", "key": "password"}}}
        ]
    elif kind == "good-locked":
        container["env"] = [
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "allowed", "key": "password"}}}
        ]
    pod = _object(
        "Pod",
        ns,
        name,
        annotations={
            "example.com/owner": "team",
            "kubernetes.io/limit-ranger": "LimitRanger plugin set: none",
        },
        spec={
            "serviceAccountName": account,
            "containers": [container],
            "restartPolicy": "Always",
            "nodeName": "node-1",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
            ],
        },
        status=_status("Succeeded" if kind == "finished" else "Running"),
    )
    pod["metadata"]["labels"] = {"app": "web", "pod-template-hash": "5d8f7c9b6d"}
    return pod


def _status(phase: str) -> dict[str, Any]:
    condition = {"lastProbeTime": None, "lastTransitionTime": "2026-11-01T10:00:00Z", "status": "True"}
    return {
        "phase": phase,
        "qosClass": "Burstable",
        "podIP": "10.244.1.17",
        "conditions": [
            {**condition, "type": t} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
        ],
        "containerStatuses": [
            {
                "name": "app",
                "ready": True,
                "restartCount": 0,
                "image": "registry.example/app:1.4.2",
                "state": {"running": {"startedAt": "2026-11-01T10:00:05Z"}},
            }
        ],
    }
