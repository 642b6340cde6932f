"""Drop-in, measured: the same scenarios against gatekeeper and against Kubernetes' own plugins.

gatekeeper's run: kube-apiserver with `--authorization-mode=Node,Webhook,RBAC` (the legacy flags
webhook-config writes) and gatekeeper's admission webhooks, the in-tree NamespaceLifecycle,
LimitRanger, ServiceAccount and ResourceQuota disabled. The in-tree run, on the same binaries:
`--authorization-mode=Node,ABAC,RBAC` with the same policy file, `--token-auth-file` with the same
tokens, the four plugins enabled and gatekeeper's webhooks removed. Every observation (allowed or
refused, kubectl's message, warnings, the resulting pod's resources, volumes, annotations and
service account) must be equal, or be listed in DIFFERENCES with the reason it must differ.

    python3 -m pytest tests/e2e/test_differential.py -s    # prints the table
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, IN_TREE, LEGACY, Cluster

SCENARIOS: dict[str, Callable[[Cluster, str], scenarios.Observation]] = {
    **scenarios.ADMISSION,
    "authorization": scenarios.authorization,
}
GATEKEEPER, KUBERNETES = "gatekeeper", "in-tree"

# (scenario, observation path) -> why gatekeeper's answer must differ from the in-tree one.
WEBHOOK_AUTHORIZER_NAME = (
    "kube-apiserver prefixes each authorizer's reason with the authorizer's name: 'abac' in-tree, "
    "'default' for a webhook set by the legacy flags (under --authorization-config webhook-config "
    "names it 'gatekeeper'); the reason itself, 'No policy matched.', is the same"
)
WEBHOOK_PREFIX = (
    "kube-apiserver prefixes every webhook's refusal with 'admission webhook \"NAME\" denied the "
    "request: ' (webhook/errors/statuserror.go); the message after it is the in-tree plugin's, exactly"
)
DIFFERENCES: dict[tuple[str, str], str] = {
    ("authorization", path): WEBHOOK_AUTHORIZER_NAME
    for path in (
        "ceposta can-i delete pods",
        "ceposta can-i get secrets",
        "ceposta delete pod/message",
        "bob get pods here/message",
        "bob can-i list pods everywhere",
    )
}


def why_different(scenario: str, path: str, ours: Any, theirs: Any) -> str | None:
    """The listed reason for a difference, or None when gatekeeper's answer is simply wrong."""
    if (scenario, path) in DIFFERENCES:
        return DIFFERENCES[(scenario, path)]
    if (
        path.endswith("/message")
        and isinstance(ours, str)
        and isinstance(theirs, str)
        and scenarios.WEBHOOK_PREFIX.search(ours)
        and scenarios.unprefixed(ours) == theirs
    ):
        return WEBHOOK_PREFIX
    return None


def normalized(value: Any, namespace: str) -> Any:
    """The scenario's own namespace name written as NS, so the two runs' messages compare."""
    if isinstance(value, dict):
        return {key: normalized(item, namespace) for key, item in value.items()}
    if isinstance(value, list):
        return [normalized(item, namespace) for item in value]
    return value.replace(namespace, "NS") if isinstance(value, str) else value


def flattened(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out |= flattened(item, f"{prefix}/{key}" if prefix else str(key))
        return out
    return {prefix: value}


@pytest.fixture(scope="module")
def observed(cluster: Cluster) -> dict[str, dict[str, dict[str, Any]]]:
    """side -> scenario -> flattened observations."""
    results: dict[str, dict[str, dict[str, Any]]] = {GATEKEEPER: {}, KUBERNETES: {}}
    cluster.use(LEGACY)
    for name, scenario in SCENARIOS.items():
        ns = f"diff-gk-{name}"
        results[GATEKEEPER][name] = flattened(normalized(scenario(cluster, ns), ns))
    try:
        cluster.use(IN_TREE)
        for name, scenario in SCENARIOS.items():
            ns = f"diff-it-{name}"
            results[KUBERNETES][name] = flattened(normalized(scenario(cluster, ns), ns))
    finally:
        cluster.use(AUTHORIZATION_CONFIG)
    return results


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_gatekeeper_answers_as_the_in_tree_plugins_do(
    observed: dict[str, dict[str, dict[str, Any]]], scenario: str
) -> None:
    ours, theirs = observed[GATEKEEPER][scenario], observed[KUBERNETES][scenario]
    assert set(ours) == set(theirs)
    unexplained = {
        path: (theirs[path], ours[path])
        for path in ours
        if ours[path] != theirs[path] and why_different(scenario, path, ours[path], theirs[path]) is None
    }
    assert not unexplained, "\n".join(
        f"{p}:\n  in-tree:    {a!r}\n  gatekeeper: {b!r}" for p, (a, b) in unexplained.items()
    )
    listed = {path for (name, path) in DIFFERENCES if name == scenario}
    assert all(ours[path] != theirs[path] for path in listed)  # a listed difference that went away: unlist it


def test_print_the_table(observed: dict[str, dict[str, dict[str, Any]]]) -> None:
    """The table the closing note and docs/real-cluster.md quote (visible with -s)."""
    rows = ["| scenario | observation | in-tree | gatekeeper | same? |", "|---|---|---|---|---|"]
    for scenario in SCENARIOS:
        ours, theirs = observed[GATEKEEPER][scenario], observed[KUBERNETES][scenario]
        for path in sorted(theirs):
            reason = why_different(scenario, path, ours[path], theirs[path]) or "?"
            same = "yes" if ours[path] == theirs[path] else f"no: {reason[:48]}"
            rows.append(f"| {scenario} | {path} | {_cell(theirs[path])} | {_cell(ours[path])} | {same} |")
    print("\n" + "\n".join(rows))
    assert len(rows) > 2 + len(SCENARIOS)


def _cell(value: Any) -> str:
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 70 else text[:67] + "..."
