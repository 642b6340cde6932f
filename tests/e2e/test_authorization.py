"""Authentication (TokenReview) and authorization (SubjectAccessReview) through the real
kube-apiserver, under both wirings `webhook-config` writes: `--authorization-config` and the legacy
`--authorization-mode=Node,Webhook,RBAC` flags. The users come from gatekeeper's token file; what
they may do comes from the seed's ABAC lines."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import scenarios
from tests.e2e.cluster import AUTHORIZATION_CONFIG, LEGACY, POLICY_LINES, Cluster, policy_text
from tests.support.waiting import wait_for


@pytest.fixture(scope="module", params=[AUTHORIZATION_CONFIG, LEGACY])
def wiring(request: pytest.FixtureRequest, cluster: Cluster) -> Iterator[str]:
    cluster.use(request.param)
    yield str(request.param)
    cluster.use(AUTHORIZATION_CONFIG)


def no_policy(wiring: str) -> str:
    """The authorizer's reason for a request no ABAC line grants, as kubectl prints it: kube-apiserver
    prefixes each reason with the authorizer's name, which the legacy flags cannot set ("default")."""
    return f"{'gatekeeper' if wiring == AUTHORIZATION_CONFIG else 'default'}: No policy matched."


def test_the_seed_policy_decides_through_the_webhook(cluster: Cluster, wiring: str) -> None:
    ns = f"authz-{wiring}"
    seen = scenarios.authorization(cluster, ns)
    reason = no_policy(wiring)
    assert seen["ceposta can-i get pods"] == "yes"
    assert seen["ceposta can-i create events"] == "yes"
    assert seen["ceposta can-i delete pods"] == f"no - {reason}"
    assert seen["ceposta can-i get secrets"] == f"no - {reason}"
    assert seen["ceposta get pods"]["allowed"], seen["ceposta get pods"]["message"]
    assert seen["ceposta delete pod"]["message"] == (
        f'Error from server (Forbidden): pods "victim" is forbidden: User "ceposta" cannot delete '
        f'resource "pods" in API group "" in the namespace "{ns}": {reason}'
    )
    assert seen["bob get pods here"]["message"] == (
        f'Error from server (Forbidden): pods is forbidden: User "bob" cannot list resource "pods" '
        f'in API group "" in the namespace "{ns}": {reason}'
    )
    assert seen["bob can-i get pods in projectcaribou"] == "yes"
    assert seen["bob can-i list pods everywhere"] == f"no - {reason}"


def test_an_unknown_token_is_unauthorized(cluster: Cluster, wiring: str) -> None:
    seen = scenarios.unknown_token(cluster)
    assert seen == {
        "allowed": False,
        "message": "error: You must be logged in to the server (Unauthorized)",
        "warnings": [],
    }


def _write_atomically(path: Path, text: str) -> None:
    staged = path.with_suffix(".staged")
    staged.write_text(text)
    os.replace(staged, path)


def test_a_policy_change_is_live_after_the_cache_ttl_and_a_broken_file_changes_nothing(
    cluster: Cluster, wiring: str
) -> None:
    policy = cluster.gatekeeper.policy
    ceposta = cluster.token_kubeconfig("ceposta")

    def can_list_configmaps() -> bool:
        return scenarios.attempt(cluster, "get", "configmaps", "-n", "default", kubeconfig=ceposta).ok

    assert not can_list_configmaps()
    grant = {"user": "ceposta", "resource": "configmaps", "readonly": True}
    try:
        _write_atomically(policy, policy_text() + json.dumps(grant) + "\n")
        wait_for(can_list_configmaps, timeout=20, interval=0.3)  # the unauthorized TTL is 1 s
        _write_atomically(policy, '{"user": "ceposta", "resource": \n')  # a writer's half-finished file
        wait_for(
            lambda: (
                "authorization policy" in (cluster.gatekeeper.readyz().json()["checks"])
                and not cluster.gatekeeper.readyz().json()["checks"]["authorization policy"]["ok"]
            ),
            timeout=10,
            interval=0.2,
        )
        assert can_list_configmaps()  # the last good policy is still in force
        assert scenarios.can_i(cluster, "ceposta", "get", "pods", "-n", "default") == "yes"
    finally:
        _write_atomically(policy, policy_text())
    wait_for(lambda: not can_list_configmaps(), timeout=20, interval=0.3)  # the authorized TTL is 2 s
    assert len(POLICY_LINES) == len(policy.read_text().splitlines())
